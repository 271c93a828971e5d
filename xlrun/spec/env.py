"""``${VAR}`` and ``${VAR:-default}`` in spec strings: environment variables, expanded when a
spec is read (and when a run reads its stored spec's ``output_dir``)."""

from __future__ import annotations

import os
import re
from typing import Any

from xlrun.errors import SpecError

_ENV = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def interpolate(value: Any, path: str) -> Any:
    """Replace ``${VAR}`` / ``${VAR:-default}`` in strings (recursively in lists and tables)."""
    if isinstance(value, str):
        def sub(m: re.Match[str]) -> str:
            name, default = m.group(1), m.group(2)
            if name in os.environ:
                return os.environ[name]
            if default is not None:
                return default
            raise SpecError(path, f"environment variable {name} is not set", value=value,
                            allowed="set it, or write ${" + name + ":-default}")
        return _ENV.sub(sub, value)
    if isinstance(value, list):
        return [interpolate(v, f"{path}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {k: interpolate(v, f"{path}.{k}") for k, v in value.items()}
    return value
