"""A minimal TOML writer for the specs xlrun generates (``xlrun evaluate``).

Handles what specs contain: tables (and tables inside them, such as ``[tracking.mteb]``),
arrays of tables, strings, numbers, booleans and (nested) arrays of those.
"""

from __future__ import annotations

import json
from typing import Any


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)  # TOML basic strings use JSON escapes
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _key(k: str) -> str:
    return json.dumps(k) if "." in k else k


def _table(lines: list[str], header: str, table: dict[str, Any], name: str = "") -> None:
    lines.append(header)
    for k, v in table.items():
        if not isinstance(v, dict):
            lines.append(f"{_key(k)} = {_value(v)}")
    lines.append("")
    for k, v in table.items():
        if isinstance(v, dict):
            sub = f"{name}.{_key(k)}" if name else _key(k)
            _table(lines, f"[{sub}]", v, sub)


def dumps(doc: dict[str, Any]) -> str:
    """Serialise ``doc`` (top-level tables and arrays of tables) as TOML text."""
    lines: list[str] = []
    for name, value in doc.items():
        if isinstance(value, dict):
            _table(lines, f"[{name}]", value, name)
        elif isinstance(value, list) and value and all(isinstance(x, dict) for x in value):
            for item in value:
                _table(lines, f"[[{name}]]", item, name)
        else:
            lines.insert(0, f"{name} = {_value(value)}")
    return "\n".join(lines)
