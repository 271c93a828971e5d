"""TOML → :class:`~xlrun.spec.schema.Spec`, with errors that name the key path.

Validation is driven by the dataclass field types of :mod:`xlrun.spec.schema`:
unknown keys, wrong types, values outside a ``Literal`` and names a registry does not hold
(:class:`~xlrun.spec.schema.Registered` fields, checked against :data:`REGISTRIES`) raise
:class:`~xlrun.errors.SpecError`. Semantic checks (languages, files, ranges) run on every
resolved run in :func:`validate_run`, so values that come from ``[grid]`` are checked exactly
like values written in the sections; there each named component checks its own section
(``validate(section, key_path)``: the sampler, the training-data source, every evaluation
dataset; the executor in :func:`parse_spec`). This is the only place those are called.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import math
import re
import tomllib
import types
import typing
import unicodedata
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin

from xlrun import languages
from xlrun.data.train_sources import TRAIN_SOURCES
from xlrun.errors import SpecError, UnknownLanguageError
from xlrun.evaluate.measures import canonical_names
from xlrun.evaluate.tasks import DATASETS
from xlrun.execute.executors import EXECUTORS
from xlrun.registry import Registry
from xlrun.spec.env import allowed_names, interpolate
from xlrun.spec.schema import (
    EvalSection,
    ExecutorSection,
    ExperimentSection,
    GridSection,
    ModelSection,
    Registered,
    RunConfig,
    SamplingSection,
    Spec,
    TrackerName,
    TrackingSection,
    TrainDataSection,
    TrainSection,
)
from xlrun.tracking import TRACKERS
from xlrun.train.samplers import SAMPLERS

REGISTRIES: dict[str, Registry[Any]] = {
    "samplers": SAMPLERS,
    "train_sources": TRAIN_SOURCES,
    "datasets": DATASETS,
    "executors": EXECUTORS,
    "trackers": TRACKERS,
}
"""The registries :class:`~xlrun.spec.schema.Registered` fields name."""

RUN_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "train_data": TrainDataSection,
    "sampling": SamplingSection,
    "train": TrainSection,
}
TOP_LEVEL = ["experiment", "model", "train_data", "sampling", "train", "eval", "grid", "executor",
             "tracking", "env"]
MAX_INT = 2**31 - 1
"""Largest integer a spec value may hold (seeds are stored as 32-bit integers)."""
GRID_MAX_RUNS = 10_000
"""The most points a grid may have, whatever ``--yes``, ``--dry-run`` or
``experiment.max_runs`` say: every point is compiled and checked (about 0.4 ms and a few kB
each), so a typo such as ``seeds = [0, …, 999999]`` would otherwise fill the memory. The size
is computed from the axes' lengths before any point is built; split a larger study into
several experiments."""
MAX_NAME_LENGTH = 200
"""Longest experiment name (the ``experiments.name`` column)."""
PATH_KEYS = {"model.name", "train_data.path", "eval.path", "experiment.output_dir"}


def _type_name(tp: Any) -> str:
    origin = get_origin(tp)
    if origin is Annotated:
        return _type_name(get_args(tp)[0])
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in get_args(tp))
    if origin in (list, tuple):
        (inner, *_) = get_args(tp) or (Any,)
        return f"a list of {_type_name(inner)}"
    if origin in (typing.Union, types.UnionType):  # X | None: TOML has no None, so X
        return " or ".join(_type_name(a) for a in get_args(tp) if a is not type(None))
    if tp is type(None):
        return "nothing"
    return {str: "a string", int: "an integer", float: "a number", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def convert(value: Any, tp: Any, path: str) -> Any:
    """Check ``value`` against the annotation ``tp``; return it (ints widened to floats)."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Annotated:
        base, *marks = get_args(tp)
        value = convert(value, base, path)
        for mark in marks:
            if isinstance(mark, Registered):
                REGISTRIES[mark.registry].check(value, path, also=mark.also)
        return value
    if origin is Literal:
        allowed = get_args(tp)
        if value not in allowed or isinstance(value, bool) != isinstance(allowed[0], bool):
            raise SpecError(path, "value not allowed", value=value, allowed=allowed)
        return value
    if origin in (typing.Union, types.UnionType):
        arms = [a for a in get_args(tp) if a is not type(None)]  # a TOML value is never None
        if len(arms) == 1:
            return convert(value, arms[0], path)
        errors = []
        for arm in arms:
            try:
                return convert(value, arm, path)
            except SpecError as e:
                errors.append(e)
        raise SpecError(path, f"expected {_type_name(tp)}", value=value)
    if origin is list:
        (inner,) = get_args(tp)
        if not isinstance(value, list):
            raise SpecError(path, f"expected {_type_name(tp)}", value=value)
        return [convert(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise SpecError(path, "expected a table", value=value)
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise SpecError(path, "expected true or false", value=value)
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpecError(path, "expected an integer", value=value)
        if not -MAX_INT <= value <= MAX_INT:
            raise SpecError(path, "integer out of range", value=value,
                            allowed=f"-{MAX_INT} to {MAX_INT}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise SpecError(path, "expected a number", value=value)
        if not math.isfinite(value):
            raise SpecError(path, "must be a finite number (not inf or nan)", value=value)
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise SpecError(path, "expected a string", value=value)
        return value
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, path)
    raise TypeError(f"unsupported annotation {tp!r} at {path}")  # a schema bug, not user input


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def build_section(cls: type, table: Any, path: str) -> Any:
    """Build the dataclass ``cls`` from a TOML table; unknown and missing keys are errors."""
    if not isinstance(table, dict):
        raise SpecError(path, "expected a table", value=table)
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise SpecError(f"{path}.{key}", "unknown key", value=key, allowed=sorted(fields),
                            has_value=False)
    kwargs = {}
    for name, f in fields.items():
        if name in table:
            kwargs[name] = convert(table[name], hints[name], f"{path}.{name}")
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise SpecError(f"{path}.{name}", "required key is missing", has_value=False)
    return cls(**kwargs)


def field_type(dotted: str) -> Any:
    """The annotation of a dotted run key (``sampling.strategy``); ``None`` if none exists."""
    parts = dotted.split(".")
    if len(parts) == 2 and parts[0] in RUN_SECTIONS:
        return _hints(RUN_SECTIONS[parts[0]]).get(parts[1])
    if len(parts) == 3 and parts[0] == "eval" and parts[1].isdigit():
        return _hints(EvalSection).get(parts[2])
    if len(parts) == 2 and parts[0] == "eval":  # applies to every [[eval]] entry
        return _hints(EvalSection).get(parts[1])
    return None


def grid_keys() -> list[str]:
    """Every dotted key a ``[grid]`` axis may name."""
    keys = [f"{s}.{f.name}" for s, cls in RUN_SECTIONS.items() for f in dataclasses.fields(cls)]
    keys += [f"eval.{f.name}" for f in dataclasses.fields(EvalSection)]
    return keys


def _grid_key_hint(key: str, known: set[str]) -> str:
    """Nearest valid keys, or the keys of the section the bad key names."""
    close = difflib.get_close_matches(key, sorted(known), n=3, cutoff=0.6)
    section = key.split(".", 1)[0]
    same = sorted(k for k in known if k.startswith(section + "."))
    if close:
        return "did you mean " + " or ".join(close) + "?"
    if same:
        return "keys of [" + section + "]: " + ", ".join(same)
    return "keys under " + ", ".join(f"{s}." for s in [*RUN_SECTIONS, "eval"])


def _check_axis_conflicts(axes: dict[str, list[Any]], seeds: list[int]) -> None:
    """Refuse axes that set the same value twice: ``eval.top_k`` with ``eval.0.top_k``, or a
    ``train.seed`` axis with ``seeds`` (one would silently overwrite the other)."""
    if "train.seed" in axes and seeds:
        raise SpecError("grid.train.seed", "the grid sets train.seed and seeds; use one of them",
                        has_value=False, allowed="grid.seeds = [...]")
    seen: dict[tuple[int, str], str] = {}
    for key in axes:
        m = re.fullmatch(r"eval\.(\d+)\.(\w+)", key)
        if m and (other := seen.get((int(m.group(1)), m.group(2)))):
            raise SpecError(f"grid.{key}", f"names the same value as grid.{other}",
                            has_value=False)
        if m:
            seen[(int(m.group(1)), m.group(2))] = key
        if m and f"eval.{m.group(2)}" in axes:
            raise SpecError(f"grid.{key}", f"conflicts with grid.eval.{m.group(2)}, which sets "
                            f"{m.group(2)} on every [[eval]] table already; keep one of them",
                            has_value=False)


def _check_axis_lengths(raw: dict[str, Any]) -> None:
    """Refuse an axis longer than a grid may be before its values are checked one by one
    (a typo such as ``seeds = [0, …, 999999]`` costs no more than reading the file)."""
    stack = [("", raw)]
    while stack:
        prefix, table = stack.pop()
        for k, v in table.items():
            if isinstance(v, dict):
                stack.append((f"{prefix}{k}.", v))
            elif isinstance(v, list) and k != "zip" and len(v) > GRID_MAX_RUNS:
                raise SpecError(f"grid.{prefix}{k}", f"has {len(v)} values, more than the "
                                f"{GRID_MAX_RUNS} runs an experiment may have (--yes and "
                                "max_runs cannot lift this)", has_value=False)


def _parse_grid(raw: Any) -> GridSection:
    if raw is None:
        return GridSection(axes={}, zip=[], seeds=[])
    if not isinstance(raw, dict):
        raise SpecError("grid", "expected a table", value=raw)
    raw = dict(raw)
    _check_axis_lengths(raw)
    zipped = raw.pop("zip", [])
    has_seeds = "seeds" in raw
    seeds = convert(raw.pop("seeds", []), list[int], "grid.seeds")
    if has_seeds and not seeds:
        raise SpecError("grid.seeds", "expected a non-empty list of seeds (leave the key out "
                        "to use train.seed)", value=seeds)
    for i, seed in enumerate(seeds):
        if seed < 0:
            raise SpecError(f"grid.seeds[{i}]", "seeds must be 0 or more", value=seed)
    zipped = convert(zipped, list[list[str]], "grid.zip")
    known = set(grid_keys())
    axes: dict[str, list[Any]] = {}
    flat: dict[str, Any] = {}

    def flatten(prefix: str, table: dict[str, Any]) -> None:
        # accept both "sampling.strategy" = [...] and [grid.sampling] strategy = [...]
        for k, v in table.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                flatten(key, v)
            elif key in flat:
                raise SpecError(f"grid.{key}", "this axis is given twice (as a dotted key and "
                                "in a [grid.…] table)", has_value=False)
            else:
                flat[key] = v

    flatten("", raw)
    for key, values in flat.items():
        tp = field_type(key)
        if tp is None or (key not in known and not re.fullmatch(r"eval\.\d+\.\w+", key)):
            raise SpecError(f"grid.{key}", "not a key of the run config", value=key,
                            allowed=_grid_key_hint(key, known), has_value=False)
        if not isinstance(values, list) or not values:
            raise SpecError(f"grid.{key}", "expected a non-empty list of values", value=values)
        axes[key] = [convert(v, tp, f"grid.{key}[{i}]") for i, v in enumerate(values)]
    _check_axis_conflicts(axes, seeds)
    seen: set[str] = set()
    for gi, group in enumerate(zipped):
        lengths = set()
        for key in group:
            if key not in axes:
                raise SpecError(f"grid.zip[{gi}]", f"names {key!r}, which is not a grid axis",
                                value=key, allowed=sorted(axes))
            if key in seen:
                raise SpecError(f"grid.zip[{gi}]", f"{key!r} is in more than one zip group",
                                value=key)
            seen.add(key)
            lengths.add(len(axes[key]))
        if len(lengths) > 1:
            raise SpecError(f"grid.zip[{gi}]", "zipped axes must have equal lengths",
                            value={k: len(axes[k]) for k in group})
    return GridSection(axes=axes, zip=zipped, seeds=seeds)


def parse_spec(text: str, *, base_dir: Path | None = None, source: str = "<spec>") -> Spec:
    """Parse and validate spec text. Relative paths resolve against ``base_dir``."""
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(source, f"not valid TOML ({e})", has_value=False) from e
    except RecursionError as e:
        raise SpecError(source, f"arrays or tables nested more than {MAX_NESTING} levels deep",
                        has_value=False) from e
    check_nesting(raw, source)
    for key in raw:
        if key not in TOP_LEVEL:
            raise SpecError(key, "unknown section", value=key, allowed=TOP_LEVEL,
                            has_value=False)
    raw = copy.deepcopy(raw)
    for key in ("experiment", "model"):
        if key not in raw:
            raise SpecError(key, "required section is missing", has_value=False)
    if "eval" not in raw:
        raise SpecError("eval", "at least one [[eval]] table is required", has_value=False)
    allow = allowed_names(raw.get("env"))
    used: dict[str, str | None] = {}
    raw = {k: (interpolate(v, k, allow, used) if k not in ("grid", "env") else v)
           for k, v in raw.items()}
    experiment = build_section(ExperimentSection, raw["experiment"], "experiment")
    check_name(experiment.name, "experiment.name")
    if not experiment.output_dir.strip():
        raise SpecError("experiment.output_dir", "must not be empty", value=experiment.output_dir,
                        allowed='a folder, e.g. "xlrun-out"')
    experiment = dataclasses.replace(
        experiment, output_dir=resolve_output_dir(experiment.output_dir, base_dir))
    if experiment.max_runs < 0:
        raise SpecError("experiment.max_runs", "must be 0 (the default limit) or more",
                        value=experiment.max_runs)
    executor = build_section(ExecutorSection, raw.get("executor", {}), "executor")
    for name, low in (("gpus_per_node", 0), ("time_limit_min", 1)):
        if getattr(executor, name) < low:
            raise SpecError(f"executor.{name}", f"must be {low} or more",
                            value=getattr(executor, name))
    if executor.heartbeat_s < 1:
        raise SpecError("executor.heartbeat_s", "must be 1 or more", value=executor.heartbeat_s)
    if executor.stale_after_s < 2 * executor.heartbeat_s:
        raise SpecError("executor.stale_after_s", "must be at least twice executor.heartbeat_s "
                        "(else live runs look dead)", value=executor.stale_after_s,
                        allowed=f">= {2 * executor.heartbeat_s}")
    EXECUTORS.get(executor.kind, "executor.kind").validate(executor, "executor")
    evals_raw = raw["eval"]
    if not isinstance(evals_raw, list) or not evals_raw:
        raise SpecError("eval", "expected one or more [[eval]] tables", value=evals_raw)
    base = RunConfig(
        model=build_section(ModelSection, raw["model"], "model"),
        train_data=build_section(TrainDataSection, raw.get("train_data", {}), "train_data"),
        sampling=build_section(SamplingSection, raw.get("sampling", {}), "sampling"),
        train=build_section(TrainSection, raw.get("train", {}), "train"),
        eval=[build_section(EvalSection, e, f"eval[{i}]") for i, e in enumerate(evals_raw)],
    )
    grid = _parse_grid(interpolate(raw.get("grid"), "grid", allow, used))
    experiment = dataclasses.replace(
        experiment, main_metric=_main_metric(experiment.main_metric, base, grid))
    spec = Spec(experiment=experiment, base=base, grid=grid, executor=executor,
                source_toml=text, raw=raw, base_dir=str(base_dir) if base_dir else None,
                tracking=parse_tracking(raw.get("tracking")), env=used)
    return dataclasses.replace(spec, base=resolve_paths(spec.base, base_dir))


def _main_metric(name: str, base: RunConfig, grid: GridSection) -> str:
    """``experiment.main_metric``: one of the built-in metrics, or (by its canonical name) a
    measure that an ``[[eval]]`` table of the spec or a grid value lists in ``measures``."""
    from xlrun.evaluate.metrics import METRICS

    if name in METRICS:
        return name
    listed = [m for e in base.eval for m in e.measures]
    for key, values in grid.axes.items():
        if key.endswith("measures"):
            listed += [m for v in values if isinstance(v, list) for m in v
                       if isinstance(m, str)]
    allowed = [*METRICS, *dict.fromkeys(canonical_names(listed, "eval.measures"))]
    try:
        names = canonical_names([name], "experiment.main_metric")
    except SpecError:
        names = []
    canonical = names[0] if len(names) == 1 else None
    if canonical is None or canonical not in allowed:
        raise SpecError("experiment.main_metric", "is neither a built-in metric nor a measure "
                        "that an [[eval]] table lists in measures", value=name, allowed=allowed)
    return canonical


def parse_tracking(raw: Any, *, check_installed: bool = True) -> TrackingSection:
    """``[tracking]`` (already ``${VAR}``-expanded): ``report_to``, ``close_timeout_s`` and
    one options table per named tracker, each built from the tracker's ``Options`` and checked
    by its ``validate``.

    ``check_installed``: a tracker whose library is missing is an error naming the extra to
    install (at submit time; a worker that lacks it warns and runs without it instead).

    Raises:
        SpecError: an unknown key or tracker, a tracker named twice, options for a tracker
            ``report_to`` does not name, a bad option, or a missing library.
    """
    if raw is None:
        return TrackingSection()
    if not isinstance(raw, dict):
        raise SpecError("tracking", "expected a table", value=raw)
    allowed = ["report_to", "close_timeout_s", *TRACKERS.names()]
    for key in raw:
        if key not in allowed:
            raise SpecError(f"tracking.{key}", "unknown key", value=key, allowed=allowed,
                            has_value=False)
    report_to = convert(raw.get("report_to", []), list[TrackerName], "tracking.report_to")
    timeout = convert(raw.get("close_timeout_s", 60.0), float, "tracking.close_timeout_s")
    if timeout <= 0:
        raise SpecError("tracking.close_timeout_s", "must be more than 0 seconds", value=timeout)
    options: dict[str, Any] = {}
    for i, name in enumerate(report_to):
        where = f"tracking.report_to[{i}]"
        if name in options:
            raise SpecError(where, "this tracker is named twice", value=name)
        tracker = TRACKERS.get(name, where)
        options[name] = build_section(tracker.Options, raw.get(name, {}), f"tracking.{name}")
        tracker.validate(options[name], f"tracking.{name}")
        missing = tracker.missing() if check_installed else []
        if missing:
            raise SpecError(where, f"{name} needs the Python module {' and '.join(missing)}, "
                            f"which is not installed: pip install 'xlrun[{tracker.extra}]'",
                            value=name)
    for name in TRACKERS.names():
        if name in raw and name not in options:
            raise SpecError(f"tracking.{name}", "options for a tracker that "
                            "tracking.report_to does not name", has_value=False,
                            allowed=f'report_to = [..., "{name}"], or remove [tracking.{name}]')
    return TrackingSection(report_to=report_to, close_timeout_s=timeout, options=options)


def stored_tracking(spec_toml: str) -> TrackingSection:
    """``[tracking]`` of a stored spec (``experiments.spec_toml``), ``${VAR}`` expanded now:
    what a process executing one of its runs reports to. A tracker whose library is missing
    here is kept (it warns when it starts).

    Raises:
        SpecError: the section is not valid (or a variable it uses is not set here).
    """
    try:
        doc = tomllib.loads(spec_toml)
    except tomllib.TOMLDecodeError as e:
        raise SpecError("tracking", f"the stored spec is not valid TOML ({e})",
                        has_value=False) from e
    return parse_tracking(interpolate(doc.get("tracking"), "tracking",
                                      allowed_names(doc.get("env"))), check_installed=False)


MAX_NESTING = 32
"""Deepest nesting of arrays and tables a spec (or an export's manifest) may have; a real spec
needs 4 (``[grid]`` → axis → values → a list value)."""


def check_nesting(value: Any, source: str, limit: int = MAX_NESTING) -> None:
    """Refuse a value (parsed TOML or JSON) nested deeper than ``limit`` (checked without
    recursion, so any depth is refused with a message, not a ``RecursionError``).

    Raises:
        SpecError: naming ``source`` and the limit.
    """
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise SpecError(source, f"arrays or tables nested more than {limit} levels deep",
                            has_value=False)
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


def check_name(name: str, key: str) -> None:
    """An experiment name must be usable as a folder name and printable as it is: not empty, at
    most :data:`MAX_NAME_LENGTH` characters, no path separators, ``.``/``..``, control
    characters (C0, DEL, C1: terminal escapes start with them) or invisible format characters
    (zero-width spaces and joiners, bidi overrides and isolates, soft hyphens).

    Raises:
        SpecError: the name breaks one of these rules.
    """
    allowed = (f"1 to {MAX_NAME_LENGTH} characters without / \\, control or invisible "
               "characters, not . or ..")
    if not name.strip():
        raise SpecError(key, "must not be empty", value=name, allowed=allowed)
    if len(name) > MAX_NAME_LENGTH:
        raise SpecError(key, f"is {len(name)} characters long, more than {MAX_NAME_LENGTH}",
                        value=name[:40] + "…", allowed=allowed)
    if "/" in name or "\\" in name or name.strip() in (".", ".."):
        raise SpecError(key, "must be usable as a folder name (it names the experiment's "
                        "folder under output_dir)", value=name, allowed=allowed)
    odd = [c for c in name if unicodedata.category(c) in _ODD_CATEGORIES]
    if odd:
        raise SpecError(key, "must be a printable folder name: it holds a control or "
                        f"invisible character (U+{ord(odd[0]):04X} "
                        f"{unicodedata.name(odd[0], 'control')})", value=name, allowed=allowed)
    if name != name.strip():
        raise SpecError(key, "must not start or end with spaces", value=name, allowed=allowed)


_ODD_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories a name may not hold: control (C0, DEL, C1), format (zero-width, bidi
controls, soft hyphen), surrogates, private use, unassigned, line and paragraph separators."""


MAX_SPEC_BYTES = 2 * 2**20
"""Largest spec file read (a spec is a few kB; 2 MiB hold a grid of the most runs allowed)."""


def read_spec_text(path: str | Path) -> str:
    """The text of a spec file: UTF-8, a leading byte-order mark dropped.

    Raises:
        SpecError: no such file, one larger than :data:`MAX_SPEC_BYTES`, or not UTF-8 text.
    """
    p = Path(path)
    if not p.is_file():
        what = "is a folder, not a spec file" if p.is_dir() else "spec file not found"
        raise SpecError(str(path), what, value=str(path), has_value=False)
    size = p.stat().st_size
    if size > MAX_SPEC_BYTES:
        raise SpecError(str(path), f"is {size / 2**20:.1f} MiB, more than a spec may be "
                        f"({MAX_SPEC_BYTES // 2**20} MiB; a real one is a few kB)",
                        has_value=False)
    data = p.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[:e.start].count(b"\n") + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise SpecError(str(path), f"not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}, "
                        f"column {col}; save the spec as UTF-8", has_value=False) from e


def load_spec(path: str | Path) -> Spec:
    """Read and parse a spec file (relative paths in it resolve against its folder)."""
    p = Path(path)
    return parse_spec(read_spec_text(p), base_dir=p.parent.resolve(), source=str(p))


def _looks_like_path(s: str) -> bool:
    return s.startswith(("/", "./", "../", "~")) or s.endswith((".json", ".jsonl", ".xz"))


def _resolve(s: str, base_dir: Path | None) -> str:
    if not s or "://" in s:
        return s
    p = Path(s).expanduser()
    if not p.is_absolute() and base_dir is not None and (_looks_like_path(s) or (base_dir / p).exists()):
        p = (base_dir / p)
    elif not p.is_absolute() and not _looks_like_path(s) and not p.exists():
        return s  # a hub id such as "xlm-roberta-base" or "Shitao/MLDR"
    return str(p.resolve())


def resolve_output_dir(path: str, base_dir: Path | None) -> str:
    """``experiment.output_dir`` by the rule of the spec's data paths: a relative folder (also
    one that comes from ``${VAR}``) is relative to the spec's folder (``base_dir``), ``~`` is
    the home folder; absolute after that. Without ``base_dir`` (a spec given as text) a
    relative folder stays relative (to the current folder)."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p.resolve())
    return str((base_dir / p).resolve()) if base_dir is not None else path


def resolve_paths(run: RunConfig, base_dir: Path | None) -> RunConfig:
    """Make local paths absolute (relative to the spec's folder); hub ids stay as they are."""
    return dataclasses.replace(
        run,
        model=dataclasses.replace(run.model, name=_resolve(run.model.name, base_dir)),
        train_data=dataclasses.replace(run.train_data,
                                       path=_resolve(run.train_data.path, base_dir)),
        eval=[dataclasses.replace(e, path=_resolve(e.path, base_dir)) for e in run.eval],
    )


def _check_exists(path: str, key: str) -> None:
    if path and "://" not in path and _looks_like_path(path) and not Path(path).exists():
        raise SpecError(key, "file or folder not found", value=path,
                        allowed="an existing local path, or a Hugging Face hub id")


def _langs(codes: list[str], key: str) -> list[str]:
    try:
        return languages.normalize_all(codes, key)
    except UnknownLanguageError as e:
        raise SpecError(e.where or key, "unknown language code", value=e.code,
                        allowed="ISO 639-1 or 639-3 codes; nearest: "
                        + (", ".join(e.suggestions) or "none")) from e


def _pairs(pairs: list[list[str]], where: str, langs: list[str], settings: list[str]
           ) -> list[list[str]]:
    """``[[eval]] pairs`` with their codes normalised (``*`` kept), each checked."""
    out: list[list[str]] = []
    for j, pair in enumerate(pairs):
        key = f"{where}.pairs[{j}]"
        if not isinstance(pair, list) or len(pair) != 2 or not all(isinstance(c, str)
                                                                   for c in pair):
            raise SpecError(key, "a pair is [query language, document language]", value=pair,
                            allowed='e.g. ["de", "en"] or ["*", "en"]')
        codes = [c.strip() if c.strip() == "*" else _langs([c], key)[0] for c in pair]
        if codes[0] == codes[1] and codes[0] != "*":
            raise SpecError(key, "a pair of one language is the mono setting, not a cross "
                            "pair", value=pair, allowed='two languages, e.g. ["de", "en"]')
        for c in codes:
            if langs and c != "*" and c not in langs:
                raise SpecError(key, f"names {c!r}, which is not in {where}.languages",
                                value=pair, allowed=langs)
        if codes not in out:
            out.append(codes)
    if out and "cross" not in settings:
        raise SpecError(f"{where}.pairs", "pairs choose the cross setting's language pairs, "
                        "but settings leaves out 'cross'", value=pairs,
                        allowed="add 'cross' to settings, or remove pairs")
    return out


def _at_least(run: RunConfig, minima: dict[str, float]) -> None:
    for key, low in minima.items():
        section, name = key.split(".")
        value = getattr(getattr(run, section), name)
        if value < low:
            raise SpecError(key, f"must be {low} or more", value=value)


def _validate_eval(i: int, e: EvalSection) -> EvalSection:
    """Checks of one ``[[eval]]`` table that need no data loading (the dataset's own last)."""
    where = f"eval[{i}]"
    _check_exists(e.path, f"{where}.path")
    for name, low in (("top_k", 0), ("batch_size", 1), ("max_length", 0),
                      ("max_queries_per_language", 0)):
        if getattr(e, name) < low:
            raise SpecError(f"{where}.{name}", f"must be {low} or more", value=getattr(e, name))
    if not e.settings:
        raise SpecError(f"{where}.settings", "name at least one setting", value=e.settings,
                        allowed=["mono", "cross", "multi"])
    if len(set(e.settings)) != len(e.settings):
        raise SpecError(f"{where}.settings", "a setting is named twice", value=e.settings)
    e = dataclasses.replace(e, languages=_langs(e.languages, f"{where}.languages"),
                            measures=canonical_names(e.measures, f"{where}.measures"))
    e = dataclasses.replace(e, pairs=_pairs(e.pairs, where, e.languages, list(e.settings)))
    DATASETS.get(e.dataset, f"{where}.dataset").validate(e, where)
    return e


def validate_run(run: RunConfig, where: str = "") -> RunConfig:
    """Semantic checks on one resolved run; returns it with language codes normalised.

    ``where`` is prepended to messages for values that come from a grid point.
    """
    t, s, td = run.train, run.sampling, run.train_data
    if not run.model.name.strip():
        raise SpecError("model.name", "must not be empty", value=run.model.name,
                        allowed="a Hugging Face hub id, a local folder or quickstart:tiny")
    if t.seed < 0:
        raise SpecError("train.seed", "seeds must be 0 or more", value=t.seed)
    if t.steps < 0:
        raise SpecError("train.steps", "must be 0 or more", value=t.steps)
    if t.batch_size < 2 and t.steps > 0:
        raise SpecError("train.batch_size", "contrastive training needs 2 or more pairs",
                        value=t.batch_size)
    if t.temperature <= 0:
        raise SpecError("train.temperature", "must be positive", value=t.temperature)
    if t.lr <= 0:
        raise SpecError("train.lr", "must be positive", value=t.lr)
    if not 0.0 <= t.warmup_ratio <= 1.0:
        raise SpecError("train.warmup_ratio", "must be within [0, 1]", value=t.warmup_ratio)
    if t.grad_accum < 1:
        raise SpecError("train.grad_accum", "must be 1 or more", value=t.grad_accum)
    if t.gpus < 1:
        raise SpecError("train.gpus", "must be 1 or more", value=t.gpus)
    _at_least(run, {"train.log_every": 1, "train.checkpoint_every": 0,
                    "train.grad_cache_chunk": 0, "train.hard_negatives": 0,
                    "train.max_grad_norm": 0, "train.weight_decay": 0,
                    "train_data.max_per_language": 0, "train_data.negatives": 0,
                    "sampling.n_clusters": 0,
                    "sampling.distance_threshold": 0, "sampling.min_cluster_size": 0})
    if not 0.0 <= s.mono_ratio <= 1.0:
        raise SpecError("sampling.mono_ratio", "must be within [0, 1]", value=s.mono_ratio)
    if not 0.0 <= s.exposure_tolerance <= 0.1:
        raise SpecError("sampling.exposure_tolerance", "must be within [0, 0.1] (a share: "
                        "0.005 = 0.5 percentage points)", value=s.exposure_tolerance)
    if s.temperature <= 0:
        raise SpecError("sampling.temperature", "must be positive", value=s.temperature)
    if t.steps > 0 and td.source == "none":
        raise SpecError("train_data.source", "training needs data (or set train.steps = 0)",
                        value=td.source, allowed=TRAIN_SOURCES.names())
    if td.source != "none":
        TRAIN_SOURCES.get(td.source, "train_data.source").validate(td, "train_data")
    if td.negatives and t.steps > 0 and t.hard_negatives == 0:
        raise SpecError("train_data.negatives", "mined negatives are read for "
                        "train.hard_negatives, which is 0: they would never be used",
                        value=td.negatives, allowed="set train.hard_negatives (up to "
                        "train_data.negatives), or remove train_data.negatives")
    td_langs = _langs(td.languages, "train_data.languages")
    clusters = [_langs(c, f"sampling.clusters[{i}]") for i, c in enumerate(s.clusters)]
    seen: dict[str, int] = {}
    for i, c in enumerate(clusters):
        for lang in c:
            if lang in seen:
                raise SpecError(f"sampling.clusters[{i}]",
                                f"language {lang!r} is already in cluster {seen[lang]}",
                                value=s.clusters[i])
            seen[lang] = i
    if td_langs:
        for i, c in enumerate(clusters):
            for lang in c:
                if lang not in td_langs:
                    raise SpecError(f"sampling.clusters[{i}]",
                                    f"names {lang!r}, which is not in train_data.languages",
                                    value=lang, allowed=td_langs)
    if t.steps > 0 and s.strategy != "none":
        SAMPLERS.get(s.strategy, "sampling.strategy").validate(
            dataclasses.replace(s, clusters=clusters), "sampling")
    _check_exists(run.model.name, "model.name")
    _validate_model(run)
    if td_langs and s.language_sampling == "clustered" and s.n_clusters > len(td_langs):
        raise SpecError("sampling.n_clusters", f"more clusters than the {len(td_langs)} "
                        "training languages", value=s.n_clusters,
                        allowed=f"1 to {len(td_langs)}")
    evals = [_validate_eval(i, e) for i, e in enumerate(run.eval)]
    if t.steps == 0:
        # Nothing is trained: sampling, training data and seed cannot change the result, so
        # they are reset to their defaults and such runs share one run key.
        return dataclasses.replace(run, train_data=TrainDataSection(), sampling=SamplingSection(),
                                   train=TrainSection(steps=0), eval=evals)
    return dataclasses.replace(
        run,
        train_data=dataclasses.replace(td, languages=td_langs),
        sampling=_without_unused(dataclasses.replace(s, clusters=clusters)),
        eval=evals,
    )


def _validate_model(run: RunConfig) -> None:
    """``[model]`` checks that need no model: lengths, and a prefix or a prompt name per side."""
    m = run.model
    for key in ("query_max_length", "passage_max_length"):
        value = getattr(m, key)
        if value is not None and value < 1:
            raise SpecError(f"model.{key}", "must be 1 or more", value=value)
    for side in ("query", "passage"):
        if getattr(m, f"{side}_prefix") is not None and getattr(m, f"{side}_prompt_name") is not None:
            raise SpecError(f"model.{side}_prompt_name",
                            f"set model.{side}_prefix or model.{side}_prompt_name, not both",
                            value=getattr(m, f"{side}_prompt_name"))


def _without_unused(s: SamplingSection) -> SamplingSection:
    """Reset the sampling fields this arm does not use, so that a grid crossing, say,
    ``language_sampling`` with ``pairing`` does not create two identical random-arm runs."""
    d = SamplingSection()
    if s.language_sampling != "clustered":
        s = dataclasses.replace(s, pairing=d.pairing, cluster_choice=d.cluster_choice,
                                clusters=d.clusters, similarity=d.similarity,
                                n_clusters=d.n_clusters, distance_threshold=d.distance_threshold,
                                linkage=d.linkage, min_cluster_size=d.min_cluster_size,
                                exposure=d.exposure, exposure_tolerance=d.exposure_tolerance)
    elif s.similarity == "manual":
        s = dataclasses.replace(s, n_clusters=d.n_clusters,
                                distance_threshold=d.distance_threshold, linkage=d.linkage,
                                min_cluster_size=d.min_cluster_size)
    else:
        s = dataclasses.replace(s, clusters=d.clusters)
    if s.min_cluster_size == 1:  # a minimum of one language is no minimum
        s = dataclasses.replace(s, min_cluster_size=d.min_cluster_size)
    if s.language_sampling == "clustered" and s.exposure == "matched":
        # cluster_choice is how the free arm picks clusters; matched plans set the probabilities
        s = dataclasses.replace(s, cluster_choice=d.cluster_choice)
    elif s.language_sampling == "clustered":
        s = dataclasses.replace(s, exposure_tolerance=d.exposure_tolerance)
    if s.strategy in SAMPLERS and not SAMPLERS.get(s.strategy).uses_mono_ratio():
        s = dataclasses.replace(s, mono_ratio=d.mono_ratio)
    if s.language_sampling == "uniform":
        s = dataclasses.replace(s, temperature=d.temperature)
    return s
