"""Paper-shaped tables: ``--layout wide`` (arms × cells with mean, difference ± interval and
marks; the language-pair matrix) and ``--format latex`` (booktabs) for every report kind, on
a quickstart-shaped database; whole counts print as integers."""

from __future__ import annotations

import json
import re

import pytest
from click.testing import CliRunner

from xlrun.cli.report import report_command
from xlrun.report.layout import MISSING
from xlrun.report.render import format_value, latex_escape

FAST = ["--permutations", "300"]


def _run(url: str, *args: str) -> str:
    res = CliRunner().invoke(report_command, ["--db", url, "--experiment", "quickstart",
                                              *args])
    assert res.exit_code == 0, res.output
    return res.stdout


def _json(url: str, *args: str) -> dict:
    return json.loads(_run(url, *args, "--format", "json"))


def _wide_rows(url: str, *args: str) -> list[dict]:
    out = _json(url, *args, "--layout", "wide")
    assert out["meta"]["layout"] == "wide" and out["meta"]["legend"]
    return out["rows"]


def _f(x: float) -> str:
    return format_value("mean", x)


def test_wide_setting_table_holds_the_long_numbers(quickstart_like_url: str) -> None:
    args = ("--by", "setting", "--compare", "arm", "--baseline", "hybrid/size")
    long = _json(quickstart_like_url, *args)["rows"]
    wide = _wide_rows(quickstart_like_url, *args)
    assert wide[0]["arm"] == "hybrid/size"  # the baseline first
    assert set(wide[0]) == {"arm", "mono", "cross", "multi"}
    assert list(wide[0]) == ["arm", "mono", "cross", "multi"]  # settings in paper order
    entries = {(r["arm"], s): r[s] for r in wide for s in ("mono", "cross", "multi")}
    marked = 0
    for r in long:
        entry = entries[(r["arm"], r["setting"])]
        assert entry.startswith(_f(r["mean"]))
        if r["arm"] == "hybrid/size":
            assert entry == _f(r["mean"])
            continue
        delta = format_value("delta", r["delta"])
        delta = delta if delta.startswith("-") else "+" + delta
        if r["ci_low"] is None:  # one run (the untrained model): no interval, no mark
            assert entry == f"{_f(r['mean'])} ({delta})"
            continue
        half = _f((r["ci_high"] - r["ci_low"]) / 2)
        assert entry == f"{_f(r['mean'])} ({delta} ± {half}){r['mark']}"
        marked += bool(r["mark"])
    assert marked >= 1  # the planted clustered-arm effect on cross


def test_wide_language_pair_matrix(quickstart_like_url: str) -> None:
    args = ("--by", "language-pair", "--setting", "cross", "--compare", "arm")
    long = _json(quickstart_like_url, *args)["rows"]
    text = _run(quickstart_like_url, *args, "--layout", "wide")
    wide = _wide_rows(quickstart_like_url, *args)
    assert list(wide[0]) == ["arm", "query_lang", "de", "el", "en", "ru"]
    assert "rows: query language, columns: document language" in text
    by_key = {(r["arm"], r["query_lang"]): r for r in wide}
    for r in long:
        label = ("hybrid/size (mean)" if r["arm"] == "hybrid/size"
                 else f"{r['arm']} − hybrid/size")
        entry = by_key[(label, r["query_lang"])][r["doc_lang"]]
        if r["arm"] == "hybrid/size":
            assert entry == _f(r["mean"])
        else:
            delta = format_value("delta", r["delta"])
            assert entry == (delta if delta.startswith("-") else "+" + delta) + (
                r["mark"] or "")
    for row in wide:  # cross only: a language with itself has no data, shown as missing
        assert row[row["query_lang"]] == MISSING


def test_wide_summary_is_the_pair_matrix(quickstart_like_url: str) -> None:
    wide = _wide_rows(quickstart_like_url, "--where", "sampler=hybrid",
                      "--where", "language_sampling=size")
    long = _json(quickstart_like_url, "--where", "sampler=hybrid",
                 "--where", "language_sampling=size")["rows"]
    assert list(wide[0]) == ["query_lang", "de", "el", "en", "ru", "all"]
    matrix = {(r["query_lang"], d): r[d] for r in wide for d in ("de", "el", "en", "ru", "all")}
    assert {(r["query_lang"], r["doc_lang"]): _f(r["mean"]) for r in long} == matrix


def test_wide_bias_and_regression(quickstart_like_url: str) -> None:
    bias = _json(quickstart_like_url, "--bias", "--by", "query-language", "--setting", "multi",
                 "--compare", "arm")["rows"]
    wide = _wide_rows(quickstart_like_url, "--bias", "--by", "query-language", "--setting",
                      "multi", "--compare", "arm")
    assert {r["measure"] for r in wide} == {"rank distance", "same-language excess"}
    rd = {(r["arm"]): r for r in wide if r["measure"] == "rank distance"}
    for r in bias:
        entry = rd[r["arm"]][r["query_lang"]]
        assert entry.startswith(f"{r['rank_distance']:.2f}")
        if r["rd_ci_low"] is not None:
            assert entry.endswith(f" ± {(r['rd_ci_high'] - r['rd_ci_low']) / 2:.2f}")
    regress = _json(quickstart_like_url, "--regress", "--compare", "arm", "--setting", "cross",
                    *FAST)["rows"]
    wide = _wide_rows(quickstart_like_url, "--regress", "--compare", "arm", "--setting",
                      "cross", *FAST)
    assert [r["term"] for r in wide] == [r["term"] for r in regress]
    for w, r in zip(wide, regress, strict=True):
        coef = format_value("coef", r["coef"])
        assert w["estimate"].startswith(coef if coef.startswith("-") else "+" + coef)
        assert w["p"] == r["p"]


def test_wide_refuses_run_rows(quickstart_like_url: str) -> None:
    res = CliRunner().invoke(report_command, ["--db", quickstart_like_url, "--by", "run",
                                              "--layout", "wide"])
    assert res.exit_code == 2
    assert "--layout long" in res.stderr


def _check_latex(text: str) -> list[str]:
    """Structural checks of a LaTeX table; its data rows."""
    assert text.count(r"\begin{table}") == text.count(r"\end{table}") == 1
    assert text.count(r"\begin{tabular}") == text.count(r"\end{tabular}") == 1
    for rule in (r"\toprule", r"\midrule", r"\bottomrule"):
        assert text.count(rule) == 1
    depth = 0
    for ch in re.sub(r"\\[{}]", "", text):
        depth += {"{": 1, "}": -1}.get(ch, 0)
        assert depth >= 0
    assert depth == 0
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0]
    cols = len(re.search(r"\\begin\{tabular\}\{([lr]+)\}", text).group(1))
    rows = [line for line in body.splitlines() if line.endswith(r"\\")]
    for line in rows:
        assert len(re.findall(r"(?<!\\)&", line)) == cols - 1, line
    stripped = re.sub(r"\\[_%#&$]", "", text)
    stripped = re.sub(r"\$[^$]*\$", "", stripped.split(r"\begin{tabular}")[1])
    assert not re.search(r"(?<!\\)[_%#]", stripped.replace("% xlrun", ""))
    return rows


@pytest.mark.parametrize("args", [
    ("--by", "setting", "--compare", "arm"),
    ("--by", "language-pair", "--setting", "cross", "--compare", "arm"),
    ("--bias", "--by", "query-language", "--setting", "multi", "--compare", "arm"),
    ("--regress", "--compare", "arm", "--setting", "cross", *FAST),
    ("--exposure",),
    ("--exposure", "pairs", "--top", "3"),
], ids=["setting", "language-pair", "bias", "regression", "exposure", "exposure-pairs"])
@pytest.mark.parametrize("layout", ["long", "wide"])
def test_latex_for_every_report_kind(quickstart_like_url: str, args: tuple[str, ...],
                                     layout: str) -> None:
    if layout == "wide" and "pairs" in args:
        pytest.skip("exposure pairs has no wide form")
    text = _run(quickstart_like_url, *args, "--format", "latex", "--layout", layout)
    rows = _check_latex(text)
    assert rows
    caption = text.split(r"\caption{")[1].split("\n")[0]
    if "--compare" in args and "--bias" not in args and (layout == "wide"
                                                        or "--regress" not in args):
        # the marks are explained where they are used
        assert "Holm" in caption or "not adjusted" in caption
        assert r"$<$ 0.05 *" in caption
    if layout == "wide" and ("setting" in args and "--bias" not in args):
        assert any("$^{" in r for r in rows)  # a significance mark as a superscript
    if "--exposure" not in args:  # exposure reports have no notes
        assert r"\parbox" in text  # the notes (baseline chosen, 2-seed arms, …): a footnote


def test_latex_escapes_what_latex_reads_as_commands() -> None:
    assert latex_escape("hybrid/clustered[script/k=3] 50% a_b #1 {x} ~ ^ \\ & $") == (
        r"hybrid/clustered[script/k=3] 50\% a\_b \#1 \{x\} \textasciitilde{} "
        r"\textasciicircum{} \textbackslash{} \& \$")
    assert latex_escape("-0.0063 ± 0.0017 × → 2e-05") == (
        r"$-$0.0063 $\pm$ 0.0017 $\times$ $\rightarrow$ 2e-05")


def test_whole_counts_print_as_integers(quickstart_like_url: str) -> None:
    assert format_value("pool", 500.0) == "500"
    assert format_value("pairs_per_run", 64.0) == "64"
    assert format_value("pairs_per_run", 63.5) == "63.5"
    assert format_value("n_queries", 288.0) == "288"
    assert format_value("mean", 1.0) == "1.0000"  # a metric stays a metric
    text = _run(quickstart_like_url, "--exposure", "pairs", "--top", "2")
    assert ".0000" not in text.split("epochs", 1)[1].replace("0.0000", "")
    pairs = [line.split() for line in text.splitlines() if "hybrid/size" in line]
    assert pairs and all(re.fullmatch(r"\d+", row[-3]) for row in pairs)  # pairs per run
