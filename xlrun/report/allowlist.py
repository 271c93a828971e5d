"""Which SQL ``xlrun sql`` runs: one query, parsed by a real SQL parser, calling only
allow-listed functions.

A read-only transaction does not stop a function from acting outside it: on Postgres
``dblink_exec`` writes through a second connection, ``lo_export`` and adminpack's
``pg_file_write`` write files, ``pg_terminate_backend`` kills sessions. So before anything is
sent, the statement is parsed with sqlglot (https://github.com/tobymao/sqlglot, in the
database's dialect) and accepted only when

1. sqlglot and xlrun's own dialect tokenizer (:mod:`xlrun.report.readonly`, checked against
   the server's parser in the tests) read the same words outside strings, quoted identifiers
   and comments, so no call can hide in what one of them takes for a string;
2. it is a query (``SELECT``, ``WITH … SELECT``, ``VALUES``, ``TABLE``, set operations),
   holding no data-modifying statement, ``SELECT … INTO`` or row lock (``FOR UPDATE``);
3. every function it calls — by sqlglot's parse tree and, again, every word followed by ``(``
   in the token stream — is in :data:`ALLOWED_FUNCTIONS` (aggregates, window, math, string,
   date/time, JSON accessors, casts: docs/sql.md lists them), called without a schema other
   than ``pg_catalog``.

Text that cannot be parsed is refused with an error saying "could not parse".
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Sequence
from typing import Any

from xlrun.errors import UsageError

ALLOWED_FUNCTIONS: dict[str, tuple[str, ...]] = {
    "aggregates": (
        "count", "sum", "avg", "min", "max", "total", "stddev", "stddev_samp", "stddev_pop",
        "variance", "var_samp", "var_pop", "corr", "covar_pop", "covar_samp", "regr_slope",
        "regr_intercept", "regr_r2", "regr_count", "regr_avgx", "regr_avgy", "regr_sxx",
        "regr_syy", "regr_sxy", "bool_and", "bool_or", "every", "bit_and", "bit_or",
        "string_agg", "group_concat", "array_agg", "json_agg", "jsonb_agg", "json_object_agg",
        "jsonb_object_agg", "json_group_array", "json_group_object", "percentile_cont",
        "percentile_disc", "mode", "grouping"),
    "window": (
        "row_number", "rank", "dense_rank", "percent_rank", "cume_dist", "ntile", "lag", "lead",
        "first_value", "last_value", "nth_value"),
    "math": (
        "abs", "ceil", "ceiling", "floor", "round", "trunc", "sign", "sqrt", "cbrt", "exp",
        "ln", "log", "log10", "log2", "power", "pow", "mod", "div", "pi", "degrees", "radians",
        "sin", "cos", "tan", "cot", "asin", "acos", "atan", "atan2", "sinh", "cosh", "tanh",
        "greatest", "least", "width_bucket", "gcd", "lcm", "factorial", "scale", "random"),
    "conditional": ("coalesce", "nullif", "ifnull", "iif", "likely", "unlikely", "likelihood"),
    "string": (
        "length", "char_length", "character_length", "octet_length", "bit_length", "lower",
        "upper", "initcap", "trim", "ltrim", "rtrim", "btrim", "substr", "substring",
        "replace", "concat", "concat_ws", "left", "right", "lpad", "rpad", "position",
        "strpos", "instr", "split_part", "reverse", "repeat", "translate", "format", "printf",
        "regexp_replace", "regexp_match", "regexp_matches", "regexp_like", "regexp_count",
        "regexp_substr", "regexp_split_to_array", "regexp_split_to_table", "starts_with",
        "md5", "to_hex", "hex", "ascii", "chr", "char", "unicode", "quote_ident",
        "quote_literal", "quote_nullable", "quote", "string_to_array", "array_to_string",
        "overlay", "encode", "decode", "glob", "like"),
    "arrays and series": (
        "array", "row", "unnest", "array_length", "cardinality", "array_position",
        "array_positions", "array_lower", "array_upper", "generate_series"),
    "date/time": (
        "now", "current_date", "current_time", "current_timestamp", "localtime",
        "localtimestamp", "clock_timestamp", "statement_timestamp", "transaction_timestamp",
        "date_trunc", "date_part", "date_bin", "extract", "age", "to_char", "to_date",
        "to_timestamp", "to_number", "make_date", "make_time", "make_timestamp",
        "make_timestamptz", "make_interval", "justify_days", "justify_hours",
        "justify_interval", "isfinite", "date", "time", "datetime", "julianday", "strftime",
        "unixepoch", "timediff"),
    "JSON accessors": (
        "json_extract", "json_extract_path", "json_extract_path_text", "jsonb_extract_path",
        "jsonb_extract_path_text", "json_array_length", "jsonb_array_length", "json_typeof",
        "jsonb_typeof", "json_type", "json_valid", "json", "json_object", "json_array",
        "json_array_elements", "json_array_elements_text", "jsonb_array_elements",
        "jsonb_array_elements_text", "json_each", "json_each_text", "jsonb_each",
        "jsonb_each_text", "json_tree", "json_object_keys", "jsonb_object_keys",
        "json_build_object", "jsonb_build_object", "json_build_array", "jsonb_build_array",
        "to_json", "to_jsonb", "jsonb_pretty", "json_strip_nulls", "jsonb_strip_nulls"),
    "casts and types": ("cast", "typeof", "pg_typeof"),
}
"""The functions ``xlrun sql`` lets a query call, by category (names in lower case; a quoted
name must be written in lower case). Each only computes a value from its arguments or the
clock: none reads or writes files, other sessions, sequences, large objects, settings or
other databases. docs/sql.md prints this list."""

ALLOWED: frozenset[str] = frozenset(n for names in ALLOWED_FUNCTIONS.values() for n in names)

ALLOWED_SCHEMAS = frozenset({"pg_catalog"})
"""A function may be qualified with these schemas only (``pg_catalog.lower(x)``); any other
qualifier could name a function someone created under an allow-listed name."""

KEYWORDS_BEFORE_PAREN = frozenset({
    "all", "and", "any", "array", "as", "bernoulli", "between", "by", "case", "collate",
    "cross", "cube", "distinct", "else", "end", "escape", "except", "exists", "fetch",
    "filter", "from", "full", "group", "groups", "having", "ilike", "in", "inner",
    "intersect", "is", "join", "lateral", "left", "like", "limit", "natural", "not",
    "offset", "on", "only", "or", "order", "ordinality", "outer", "over", "partition",
    "range", "recursive", "repeatable", "right", "rollup", "row", "rows", "select", "sets",
    "similar", "some", "system", "tablesample", "then", "to", "union", "using", "values",
    "when", "where", "window", "with", "within"})
"""Keywords that may stand before ``(`` without being a function call (``IN (…)``,
``OVER (…)``, ``FILTER (…)``, ``TABLESAMPLE BERNOULLI (…)`` …)."""

TYPE_WORDS = frozenset({
    "bigint", "bit", "boolean", "char", "character", "dec", "decimal", "double", "float",
    "float4", "float8", "int", "int2", "int4", "int8", "integer", "interval", "numeric",
    "precision", "real", "smallint", "text", "time", "timestamp", "timestamptz", "timetz",
    "varbit", "varchar", "varying", "with", "without", "zone"})
"""Type names that take parameters in parentheses (``numeric(10, 2)``, ``varchar(3)``)."""

_STRING_TOKENS = frozenset({
    "STRING", "BYTE_STRING", "HEREDOC_STRING", "UNICODE_STRING", "HEX_STRING", "BIT_STRING",
    "NATIONAL_STRING", "RAW_STRING", "IDENTIFIER"})
_TOKEN_REPR = re.compile(r"<Token token_type: [\w.]+, text: (.*?), line: \d+.*?>")
"""sqlglot's repr of a token in its error messages (shown as the token's text)."""
_WORD_RE = re.compile(r"[A-Za-z_\x80-\U0010ffff][A-Za-z0-9_$\x80-\U0010ffff]*")

SQLGLOT_DIALECT = {"postgresql": "postgres", "sqlite": "sqlite"}
DIALECT_NAME = {"postgresql": "PostgreSQL", "sqlite": "SQLite"}

ALLOWED_HINT = ("only these functions are allowed: aggregates, window, math, string, "
                "date/time, JSON accessors and casts (the list is in docs/sql.md)")


def _quiet_sqlglot() -> None:
    """sqlglot logs a warning when it falls back to an opaque ``Command``; xlrun refuses
    those statements itself, so the warning would only be noise on stderr."""
    logging.getLogger("sqlglot").setLevel(logging.ERROR)


def could_not_parse(dialect: str, detail: str) -> UsageError:
    """The error for a text that is not one SQL query xlrun can read."""
    return UsageError(f"could not parse the query as {DIALECT_NAME.get(dialect, dialect)} "
                      f"SQL: {detail}")


def _parse_error_detail(err: Exception) -> str:
    errors = getattr(err, "errors", None) or []
    if errors:
        e = errors[0]
        near = (e.get("highlight") or "").strip()
        where = f"line {e.get('line')}, column {e.get('col')}"
        desc = str(e.get("description") or "syntax error").replace("Invalid expression / ", "")
        desc = _TOKEN_REPR.sub(lambda m: repr(m.group(1)), desc)
        desc = re.sub(r"<class '[\w.]*?(\w+)'>", r"\1", desc)
        return f"{desc} at {where}" + (f" near {near!r}" if near else "")
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def sqlglot_words(tokens: Iterable[Any]) -> list[str]:
    """The words (keywords and unquoted identifiers, lower case) of sqlglot's tokens."""
    out: list[str] = []
    for t in tokens:
        if t.token_type.name in _STRING_TOKENS or t.token_type.name == "NUMBER":
            continue
        out.extend(w.lower() for w in str(t.text).split() if _WORD_RE.fullmatch(w))
    return out


def _check_same_words(ours: Sequence[str], theirs: Sequence[str], dialect: str) -> None:
    if list(ours) == list(theirs):
        return
    i = next((k for k, (a, b) in enumerate(zip(ours, theirs, strict=False)) if a != b),
             min(len(ours), len(theirs)))
    near = ours[i] if i < len(ours) else (theirs[i] if i < len(theirs) else "")
    raise could_not_parse(dialect, "its quoting is ambiguous (two SQL tokenizers read "
                          f"different words near {near!r}); simplify the quoting")


def _forbidden(node: Any) -> str | None:
    """Why a parse-tree node makes the query something other than a pure read."""
    from sqlglot import exp  # deferred on purpose: only `xlrun sql` needs the parser

    if isinstance(node, (exp.Insert, exp.Update, exp.Delete, exp.Merge)):
        return f"a data-modifying {type(node).__name__.upper()} inside the query"
    if isinstance(node, exp.Into):
        return "SELECT … INTO (it creates a table)"
    if isinstance(node, exp.Lock):
        return "row locks (FOR UPDATE / FOR SHARE)"
    for name in ("Create", "Drop", "Alter", "Command", "Set", "Pragma", "Transaction", "Commit",
                 "Rollback", "Copy", "Attach", "Detach", "TruncateTable", "Use", "LoadData",
                 "Grant", "Revoke", "Analyze", "Kill"):
        cls = getattr(exp, name, None)
        if cls is not None and isinstance(node, cls):
            return f"a {name.upper()} statement"
    return None


def _source_name(node: Any, sql: str) -> str | None:
    """The function name as written in ``sql`` (sqlglot keeps its span in ``meta``), or
    ``None`` for nodes that come from syntax (``CAST(… AS …)``, ``->>``, ``CURRENT_DATE``)."""
    from sqlglot import exp  # deferred on purpose: only `xlrun sql` needs the parser

    meta = node.meta if hasattr(node, "meta") else {}
    if "start" in meta and "end" in meta:
        return sql[meta["start"]:meta["end"] + 1]
    if isinstance(node, exp.Anonymous):
        return str(node.name)
    return None


def normalize_name(written: str) -> str:
    """``LOWER`` → ``lower``; a quoted ``"lower"`` stays as written (quoted names are case
    sensitive, so ``"LOWER"`` names another function)."""
    w = written.strip()
    if len(w) >= 2 and w[0] == w[-1] and w[0] in "\"`[":
        return w[1:-1].replace('""', '"')
    if len(w) >= 2 and w[0] == "[" and w[-1] == "]":
        return w[1:-1]
    return w.lower()


def _qualifier(node: Any) -> str | None:
    """The schema a call is qualified with (``pg_catalog`` in ``pg_catalog.lower(x)``)."""
    from sqlglot import exp  # deferred on purpose: only `xlrun sql` needs the parser

    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        left = parent.this
        return left.sql() if left is not None else ""
    return None


def _refuse_function(name: str) -> UsageError:
    return UsageError(f"xlrun sql refused the query: {name}() is not on its allow-list of "
                      f"functions; {ALLOWED_HINT}")


def _alias_names(tree: Any) -> set[str]:
    """Names that stand before ``(`` without being calls: table and CTE aliases with column
    lists (``AS t(a, b)``, ``WITH c(x) AS …``) and named windows."""
    from sqlglot import exp  # deferred on purpose: only `xlrun sql` needs the parser

    out: set[str] = set()
    for node in tree.find_all(exp.TableAlias):
        ident = node.args.get("this")
        if isinstance(ident, exp.Identifier) and ident.name:
            out.add(ident.name if ident.quoted else ident.name.lower())
    return out


def check_functions_in_tokens(tokens: Sequence[tuple[str, str]], aliases: set[str]) -> None:
    """Every word or quoted identifier directly followed by ``(`` (comments and spaces
    between allowed) is an allowed function, a keyword, a type name or an alias.

    ``tokens``: (kind, text) from xlrun's own tokenizer, which reads quotes as the server does.

    Raises:
        UsageError: a call of a function that is not allowed.
    """
    code = [(k, t) for k, t in tokens if k not in ("space", "comment")]
    for i, (kind, text) in enumerate(code[:-1]):
        if code[i + 1][1] != "(" or kind not in ("word", "ident"):
            continue
        name = normalize_name(text)
        if name in ALLOWED:
            continue
        qualified = i > 0 and code[i - 1][1] == "."  # `a.b(` is always a call
        keyword = kind == "word" and (name in KEYWORDS_BEFORE_PAREN or name in TYPE_WORDS)
        if not qualified and (name in aliases or keyword):
            continue
        raise _refuse_function(name)


def check_query(stmt: str, dialect: str, tokens: Sequence[tuple[str, str]]) -> None:
    """Refuse ``stmt`` unless it is one pure query that calls only allowed functions.

    ``dialect``: ``postgresql`` or ``sqlite``; ``tokens``: (kind, text) pairs from xlrun's own
    tokenizer for the same text.

    Raises:
        UsageError: "could not parse …" when sqlglot cannot parse it (or reads its quoting
            differently from the database); a refusal naming the statement kind, clause or
            function otherwise.
    """
    import sqlglot  # deferred on purpose: only `xlrun sql` needs the parser
    from sqlglot import exp
    from sqlglot.errors import ParseError, TokenError

    _quiet_sqlglot()
    glot = SQLGLOT_DIALECT.get(dialect, dialect)
    ours = [t.lower() for k, t in tokens if k == "word"]
    try:
        theirs = sqlglot.Dialect.get_or_raise(glot).tokenize(stmt)
    except (TokenError, ValueError) as e:
        raise could_not_parse(dialect, _parse_error_detail(e)) from e
    _check_same_words(ours, sqlglot_words(theirs), dialect)
    try:
        trees = [t for t in sqlglot.parse(stmt, read=glot) if t is not None]
    except (ParseError, TokenError, ValueError) as e:
        raise could_not_parse(dialect, _parse_error_detail(e)) from e
    except RecursionError as e:
        raise could_not_parse(dialect, "it nests too deeply") from e
    if len(trees) != 1:
        raise UsageError("xlrun sql runs exactly one statement; remove everything after the "
                         "first ';'")
    tree = trees[0]
    if not isinstance(tree, (exp.Query, exp.Values)):
        why = _forbidden(tree) or f"a {type(tree).__name__.upper()} statement"
        raise UsageError(f"xlrun sql is read-only: {why} is refused; write one query "
                         "(SELECT, WITH … SELECT, VALUES, TABLE, EXPLAIN or SHOW)")
    for node in tree.walk():
        why = _forbidden(node)
        if why:
            raise UsageError(f"xlrun sql is read-only: {why} is refused")
        if isinstance(node, exp.Func):
            written = _source_name(node, stmt)
            if written is None:
                continue  # syntax, not a call by name (its words are checked below)
            name = normalize_name(written)
            qualifier = _qualifier(node)
            if qualifier is not None and normalize_name(qualifier) not in ALLOWED_SCHEMAS:
                raise UsageError(f"xlrun sql refused the query: {qualifier}.{name}() calls a "
                                 "function in a schema of its own; call the built-in function "
                                 "without a schema (or with pg_catalog.)")
            if name not in ALLOWED:
                raise _refuse_function(name)
    check_functions_in_tokens(tokens, _alias_names(tree))
