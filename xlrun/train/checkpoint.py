"""Training checkpoints: model, optimizer, scheduler, sampler state, step and RNG states.

Layout: ``<checkpoint_dir>/step-<NNNNNNNN>/trainer.pt`` (model, optimizer, scheduler, sampler,
step) and ``rng.pt`` beside it (the RNG states, always read onto the CPU: torch's CPU generator
only takes a CPU byte tensor, so a checkpoint read with ``map_location="cuda"`` must not move
them). A checkpoint is written into a
temporary folder and renamed into place, so a folder named ``step-*`` is always complete;
older checkpoints are removed once a newer one is in place (``keep`` newest are kept).
"""

from __future__ import annotations

import os
import random
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from xlrun.errors import WriteFailed, XlrunError
from xlrun.files import explain_write_error

_NAME = re.compile(r"^step-(\d+)$")
FILE = "trainer.pt"
RNG_FILE = "rng.pt"


def rng_state() -> dict[str, Any]:
    """The global RNG states of Python, NumPy, torch CPU and (when present) CUDA."""
    state: dict[str, Any] = {"python": random.getstate(), "numpy": np.random.get_state(),
                             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _cpu_bytes(t: torch.Tensor) -> torch.Tensor:
    """An RNG state as the CPU byte tensor torch's generators take."""
    if t.device.type == "meta":
        raise ValueError("an RNG state was loaded onto the 'meta' device; load checkpoints "
                         "with load_checkpoint, which keeps RNG states on the CPU")
    return t.detach().to("cpu", torch.uint8)


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state` output (tensors on any device are brought to the CPU)."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(_cpu_bytes(state["torch"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([_cpu_bytes(t) for t in state["cuda"]])


def checkpoints(directory: Path | str | None) -> list[tuple[int, Path]]:
    """Complete checkpoints in ``directory`` as ``(step, path)``, oldest first."""
    if directory is None or not Path(directory).is_dir():
        return []
    found = []
    for p in Path(directory).iterdir():
        m = _NAME.match(p.name)
        if m and (p / FILE).is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(directory: Path | str | None) -> Path | None:
    """The newest complete checkpoint folder, or ``None``."""
    found = checkpoints(directory)
    return found[-1][1] if found else None


def save_checkpoint(directory: Path | str, step: int, state: dict[str, Any],
                    keep: int = 1) -> Path:
    """Write ``state`` (plus ``step`` and RNG states) as the checkpoint of ``step``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    final = directory / f"step-{step:08d}"
    tmp = directory / f".tmp-step-{step:08d}-{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        torch.save({**state, "step": step}, tmp / FILE)
        torch.save(rng_state(), tmp / RNG_FILE)
    except (RuntimeError, OSError) as e:  # a full disk: "enforce fail at inline_container.cc"
        shutil.rmtree(tmp, ignore_errors=True)
        raise WriteFailed(f"checkpoint of step {step}: {explain_write_error(e, final)}") from e
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for _, old in checkpoints(directory)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


class CorruptCheckpoint(XlrunError):
    """A checkpoint cannot be read or does not fit the run; the message names the folder to
    delete so that the run restarts from an earlier checkpoint or from the beginning."""

    def __init__(self, path: Path, reason: str) -> None:
        folder = path.parent if path.name == FILE else path
        super().__init__(f"the checkpoint {path} cannot be used ({reason}); delete the folder "
                         f"{folder} and resubmit: the run then restarts from an earlier "
                         "checkpoint or from step 0")
        self.path = path


def _load(path: Path, map_location: str | torch.device) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except (KeyboardInterrupt, MemoryError):
        raise
    except Exception as e:
        raise CorruptCheckpoint(path, f"{type(e).__name__}: {str(e).strip()[:200]}") from e


def load_checkpoint(path: Path | str, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint folder (or its ``trainer.pt``): the training state onto
    ``map_location``, its ``rng`` entry (the RNG states, from ``rng.pt``) onto the CPU
    whatever the device.

    Raises:
        CorruptCheckpoint: a file is truncated, corrupt or not a checkpoint.
    """
    path = Path(path)
    if path.is_dir():
        path = path / FILE
    state = _load(path, map_location)
    rng_file = path.parent / RNG_FILE
    if rng_file.is_file():
        state["rng"] = _load(rng_file, "cpu")
    missing = [k for k in ("step", "rng") if not isinstance(state, dict) or k not in state]
    if missing:
        raise CorruptCheckpoint(path, f"not an xlrun checkpoint (lacks {', '.join(missing)})")
    return state
