"""``${VAR}`` and ``${VAR:-default}`` in spec strings: environment variables, expanded when a
spec is read (and when a run reads its stored spec's ``output_dir``).

Only some variables may be expanded, because what a spec expands is stored (``runs.config_json``)
and travels (``xlrun show``, exports, reports):

* ``HOME``, ``USER``, ``LOGNAME`` and ``TMPDIR``;
* every ``XLRUN_*`` variable;
* the names a spec lists in its ``[env]`` table: ``allow = ["DATA_ROOT", "SCRATCH"]``.

A variable that looks secret — by its name (``*PASSWORD*``, ``*SECRET*``, ``*TOKEN*``,
``*_KEY``, …) or because its value holds a password (a database URL such as ``XLRUN_DB``
with one) — is never expanded, whatever the lists say: a spec that names one is refused. What
a spec expanded is recorded with its runs (``config_json["env"]``: name → value, ``null``
where the default was used).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

from xlrun.errors import SpecError
from xlrun.secrets import looks_secret, looks_secret_name

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
ALWAYS_ALLOWED: tuple[str, ...] = ("HOME", "USER", "LOGNAME", "TMPDIR")
"""Variables every spec may expand."""
ALLOWED_PREFIX = "XLRUN_"
"""Variables with this prefix may be expanded too (unless they look secret)."""
ALLOWED_HINT = (f"{', '.join(ALWAYS_ALLOWED)}, {ALLOWED_PREFIX}* or a name listed in the "
                "spec's [env] table: allow = [\"NAME\"]")


def allowed_names(env_table: Any, path: str = "env") -> tuple[str, ...]:
    """The names a spec's ``[env]`` table allows (``allow = [...]``), checked.

    Raises:
        SpecError: not a table, an unknown key, a name that is not a variable name, or one
            that looks secret.
    """
    if env_table is None:
        return ()
    if not isinstance(env_table, dict):
        raise SpecError(path, "expected a table: [env] allow = [\"NAME\", …]", value=env_table)
    for key in env_table:
        if key != "allow":
            raise SpecError(f"{path}.{key}", "unknown key", value=key, allowed=["allow"],
                            has_value=False)
    names = env_table.get("allow", [])
    if not isinstance(names, list):
        raise SpecError(f"{path}.allow", "expected a list of variable names", value=names)
    for i, name in enumerate(names):
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise SpecError(f"{path}.allow[{i}]", "not an environment variable name",
                            value=name, allowed="letters, digits and _, not starting with a digit")
        if looks_secret_name(name):
            raise SpecError(f"{path}.allow[{i}]", "looks like a secret; xlrun never copies "
                            "secrets into run configs (they are stored, shown and exported)",
                            value=name)
    return tuple(names)


def is_allowed(name: str, allow: Iterable[str] = ()) -> bool:
    """Whether a spec may name ``name`` (before looking at its value)."""
    return name in ALWAYS_ALLOWED or name.startswith(ALLOWED_PREFIX) or name in set(allow)


def interpolate(value: Any, path: str, allow: Iterable[str] = (),
                used: dict[str, str | None] | None = None) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in strings (recursively in lists and tables).

    ``allow``: the names the spec's ``[env]`` table lists. ``used`` (when given) collects
    what was expanded: name → value, or ``None`` where the default was used.

    Raises:
        SpecError: a variable that is not allowed, that looks secret, or that is unset and
            has no default.
    """
    allow = tuple(allow)
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if looks_secret(name, os.environ.get(name, "")):
                raise SpecError(path, f"environment variable {name} looks like a secret (by "
                                "its name or its value); xlrun never copies secrets into run "
                                "configs (they are stored, shown and exported)", value=value)
            if not is_allowed(name, allow):
                raise SpecError(path, f"environment variable {name} may not be used in a spec",
                                value=value, allowed=ALLOWED_HINT)
            if name in os.environ:
                if used is not None:
                    used[name] = os.environ[name]
                return os.environ[name]
            if default is not None:
                if used is not None:
                    used.setdefault(name, None)
                return default
            raise SpecError(path, f"environment variable {name} is not set", value=value,
                            allowed="set it, or write ${" + name + ":-default}")
        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]", allow, used) for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: interpolate(v, f"{path}.{k}", allow, used) for k, v in value.items()}
    return value
