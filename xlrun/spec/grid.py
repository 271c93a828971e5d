"""Grid expansion and run keys.

The compiler takes the base run of a spec and the ``[grid]`` axes: zipped axes move
together, the other axes (and ``seeds``) form a cartesian product. Every point becomes a
fully resolved, validated :class:`~xlrun.spec.schema.RunConfig` and gets a ``run_key``: the
SHA-256 of its canonical JSON. Equal configs get equal keys, so resubmitting a spec finds
its runs again, and editing a value adds runs only where the resolved config changed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from xlrun.errors import SpecError
from xlrun.spec.load import GRID_MAX_RUNS, resolve_paths, validate_run
from xlrun.spec.schema import CompiledRun, RunConfig, Spec

__all__ = ["CompiledRun", "canonical_json", "check_grid_size", "compile_spec", "run_key"]


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace: the form that is hashed."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def _relative(obj: Any, base: str) -> Any:
    if isinstance(obj, str) and obj.startswith(base):
        return "./" + obj[len(base):]
    if isinstance(obj, dict):
        return {k: _relative(v, base) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_relative(v, base) for v in obj]
    return obj


KEY_NEUTRAL_DEFAULTS: dict[tuple[str, str], Any] = {
    ("train_data", "revision"): "",
    ("eval", "revision"): "",
    ("eval", "pairs"): [],
    ("train_data", "negatives"): 0,
    ("sampling", "min_cluster_size"): 0,
    ("sampling", "schedule"): "random",
    ("sampling", "exposure_tolerance"): 0.005,
    ("model", "include_prompt"): None,
    ("model", "query_prompt_name"): None,
    ("model", "passage_prompt_name"): None,
    ("model", "trust_remote_code"): False,
    ("eval", "measures"): [],
}
"""Config fields added after run keys were first issued, each with the value that leaves the
key as it was: a field at that value is left out of the hash, so upgrading xlrun never turns
finished runs into new ones. A field added later must be listed here or in
:data:`KEY_NEUTRAL_WHEN` (a golden-key test fails otherwise)."""

KEY_NEUTRAL_WHEN: dict[tuple[str, str], Callable[[dict[str, Any]], bool]] = {
    # runs trained before `exposure` existed used today's "free"; unclustered runs ignore it
    ("sampling", "exposure"): lambda section: (section.get("language_sampling") != "clustered"
                                               or section.get("exposure") == "free"),
}
"""Fields added later whose key-neutral state depends on their section: the field is left out
of the hash when the predicate holds for the section's values."""

KEY_UNSET_AS: dict[tuple[str, str], Any] = {
    ("model", "pooling"): "mean",
    ("model", "query_prefix"): "",
    ("model", "passage_prefix"): "",
    ("model", "query_max_length"): 64,
    ("model", "passage_max_length"): 256,
}
"""Fields that had a fixed default when run keys were first issued and are now left unset
(``None``: what the model declares, else that same default). Unset is hashed as the old
default, so a spec that never set them keeps its keys. (For a sentence-transformers model
that declares something else, writing the old default and leaving the field out are the
same key: say which one a study means, and keep it.)"""


def _drop_neutral_defaults(d: dict[str, Any]) -> dict[str, Any]:
    for (section, name), neutral in KEY_NEUTRAL_DEFAULTS.items():
        value = d.get(section)
        for entry in value if isinstance(value, list) else [value]:
            if isinstance(entry, dict) and entry.get(name, neutral) == neutral:
                entry.pop(name, None)
    for (section, name), neutral_when in KEY_NEUTRAL_WHEN.items():
        entry = d.get(section)
        if isinstance(entry, dict) and name in entry and neutral_when(entry):
            entry.pop(name)
    for (section, name), old in KEY_UNSET_AS.items():
        entry = d.get(section)
        if isinstance(entry, dict) and entry.get(name) is None:
            entry[name] = old
    return d


def run_key(config: RunConfig, base_dir: str | Path | None = None) -> str:
    """A stable 16-hex-digit key of the fully resolved run config.

    Paths inside ``base_dir`` (the spec's folder) are hashed relative to it, so moving a
    project (spec and data together) to another machine keeps its run keys. Fields newer
    than the first run keys are hashed only when set (:data:`KEY_NEUTRAL_DEFAULTS`).
    """
    d = _drop_neutral_defaults(config.to_dict())
    if base_dir:
        d = _relative(d, str(Path(base_dir).resolve()).rstrip("/") + "/")
    return hashlib.sha256(canonical_json(d).encode()).hexdigest()[:16]


def apply_override(config: RunConfig, key: str, value: Any) -> RunConfig:
    """Return ``config`` with the dotted ``key`` set to ``value``.

    ``eval.<field>`` sets the field on every ``[[eval]]`` entry; ``eval.<i>.<field>`` on one.
    """
    parts = key.split(".")
    if parts[0] == "eval":
        if len(parts) == 3:
            i = int(parts[1])
            if i >= len(config.eval):
                raise SpecError(f"grid.{key}", f"there are only {len(config.eval)} [[eval]] tables",
                                value=i)
            evals = list(config.eval)
            evals[i] = dataclasses.replace(evals[i], **{parts[2]: value})
        else:
            evals = [dataclasses.replace(e, **{parts[1]: value}) for e in config.eval]
        return dataclasses.replace(config, eval=evals)
    section = getattr(config, parts[0])
    return dataclasses.replace(config, **{parts[0]: dataclasses.replace(section, **{parts[1]: value})})


def grid_points(spec: Spec) -> Iterator[tuple[tuple[str, Any], ...]]:
    """The override tuples of the grid, one at a time, in a deterministic order (seeds vary
    fastest): a grid is never held as a list of its points."""
    zipped_keys = {k for group in spec.grid.zip for k in group}
    factors: list[list[tuple[tuple[str, Any], ...]]] = []
    for group in spec.grid.zip:
        n = len(spec.grid.axes[group[0]])
        factors.append([tuple((k, spec.grid.axes[k][i]) for k in group) for i in range(n)])
    for key, values in spec.grid.axes.items():
        if key not in zipped_keys:
            factors.append([((key, v),) for v in values])
    if spec.grid.seeds:
        factors.append([(("train.seed", s),) for s in spec.grid.seeds])
    return (tuple(kv for part in combo for kv in part) for combo in itertools.product(*factors))


GRID_CONFIRM_RUNS = 1000
"""A grid with more points than this is submitted only with ``--yes`` (or with
``experiment.max_runs`` set at least that high): a typo such as ``seeds = [0, …, 9999]``
would otherwise enqueue thousands of runs without a word."""
def count_points(spec: Spec) -> int:
    """How many grid points (runs before identical configs collapse) ``spec`` has."""
    n = len(spec.grid.seeds) or 1
    zipped = {k for group in spec.grid.zip for k in group}
    for group in spec.grid.zip:
        n *= len(spec.grid.axes[group[0]])
    for key, values in spec.grid.axes.items():
        if key not in zipped:
            n *= len(values)
    return n


def check_grid_size(spec: Spec, confirmed: bool = False) -> int:
    """The number of grid points, if the spec may have that many.

    ``experiment.max_runs`` (when set) is a hard cap; without it a grid above
    :data:`GRID_CONFIRM_RUNS` needs ``confirmed`` (``submit --yes``). Nothing lifts
    :data:`GRID_MAX_RUNS`. Only the axes' lengths are read: no point is built.

    Raises:
        SpecError: the grid is larger than allowed.
    """
    n = count_points(spec)
    cap = spec.experiment.max_runs
    if cap > GRID_MAX_RUNS:
        raise SpecError("experiment.max_runs", f"more than the most runs an experiment may "
                        f"have ({GRID_MAX_RUNS})", value=cap,
                        allowed=f"0 to {GRID_MAX_RUNS}")
    if n > GRID_MAX_RUNS:
        raise SpecError("grid", f"the grid has {n} points, more than the {GRID_MAX_RUNS} an "
                        "experiment may have (--yes and max_runs cannot lift this); split the "
                        "study into several experiments", has_value=False)
    if cap and n > cap:
        raise SpecError("experiment.max_runs", f"the grid has {n} points, more than max_runs",
                        value=cap, allowed=f"raise max_runs to {n} or shrink the grid")
    if not cap and n > GRID_CONFIRM_RUNS and not confirmed:
        raise SpecError("grid", f"the grid has {n} points (more than {GRID_CONFIRM_RUNS}); "
                        f"if you mean it, submit with --yes or set experiment.max_runs = {n}",
                        has_value=False)
    return n


def compile_spec(spec: Spec) -> list[CompiledRun]:
    """Expand the grid into validated runs; identical resolved configs collapse into one.

    Raises:
        SpecError: a point does not validate, or the grid has more than
            :data:`GRID_MAX_RUNS` points (refused before any point is built).
    """
    check_grid_size(spec, confirmed=True)
    runs: dict[str, CompiledRun] = {}
    for point in grid_points(spec):
        config = spec.base
        for key, value in point:
            config = apply_override(config, key, value)
        if point:  # paths given in [grid] resolve against the spec's folder too
            config = resolve_paths(config, Path(spec.base_dir) if spec.base_dir else None)
        try:
            config = validate_run(config)
        except SpecError as e:
            if point:
                where = ", ".join(f"{k}={v!r}" for k, v in point)
                raise SpecError(e.path, f"{e.args[0].split(': ', 1)[1]} (in the grid point {where})",
                                has_value=False) from e
            raise
        key = run_key(config, spec.base_dir)
        if key not in runs:
            runs[key] = CompiledRun(run_key=key, config=config, overrides=point)
    return list(runs.values())
