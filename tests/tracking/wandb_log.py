"""Read a W&B offline run's ``run-<id>.wandb`` file: the records W&B wrote, as W&B's own
protobuf messages (``wandb.proto.wandb_internal_pb2.Record``).

wandb 0.31 ships no Python reader (its reader moved into the Go core), so the container is
read here as wandb's former Python reader (``wandb/sdk/internal/datastore.py``) read it: a
7-byte header (``:W&B``, magic 0xBEE1, version 0), then LevelDB's log format — 32 KiB blocks
of chunks, each with a 7-byte header (CRC32C, length, type: 1 full, 2 first, 3 middle,
4 last); a block's tail shorter than a header is padding. Each whole record is one
serialised ``Record``; the message types are wandb's own.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from wandb.proto import wandb_internal_pb2 as pb

BLOCK = 32 * 1024
HEADER = struct.Struct("<4sHB")
CHUNK = struct.Struct("<IHB")


def records(path: Path) -> list[Any]:
    """Every record of a ``.wandb`` file, in order."""
    data = path.read_bytes()
    ident, magic, version = HEADER.unpack_from(data)
    assert (ident, magic, version) == (b":W&B", 0xBEE1, 0), (ident, magic, version)
    out, pending, pos = [], b"", HEADER.size
    while pos + CHUNK.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK.size:
            pos += left
            continue
        _crc, length, kind = CHUNK.unpack_from(data, pos)
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk = data[pos + CHUNK.size:pos + CHUNK.size + length]
        pos += CHUNK.size + length
        if kind == 1:
            out.append(chunk)
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            out.append(pending + chunk)
            pending = b""
    return [pb.Record.FromString(r) for r in out]


def _key(item: Any) -> str:
    return item.key or "/".join(item.nested_key)


def read_run(folder: Path) -> dict[str, Any]:
    """An offline run folder as plain data: ``run`` (id, project, group, display name),
    ``config``, ``history`` (one dict per row), ``summary`` and ``exit_code``."""
    (path,) = folder.glob("run-*.wandb")
    out: dict[str, Any] = {"config": {}, "history": [], "summary": {}, "exit_code": None}
    for rec in records(path):
        kind = rec.WhichOneof("record_type")
        if kind == "run":
            r = rec.run
            out["run"] = {"id": r.run_id, "project": r.project, "group": r.run_group,
                          "name": r.display_name}
            for item in r.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "config":
            for item in rec.config.update:
                out["config"][_key(item)] = json.loads(item.value_json)
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in rec.history.item})
        elif kind == "summary":
            for item in rec.summary.update:
                out["summary"][_key(item)] = json.loads(item.value_json)
        elif kind == "exit":
            out["exit_code"] = rec.exit.exit_code
    return out
