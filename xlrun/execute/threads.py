"""Workers divide the machine: each worker (and each lane of a multi-lane worker) limits its
PyTorch, BLAS and tokenizer threads to its share of the cores.

Without a limit every process starts one compute thread per core: four workers on a 2-core
machine ran 8 busy threads (plus spinning OpenMP waiters), and the quickstart took 5.8× as
long as with one worker. A worker's share is ``--threads`` when given, else

    max(1, usable cores // workers of this user on this host)

where the workers are counted from a small registry of live process ids (one empty file per
worker in ``$TMPDIR/xlrun-workers-<uid>``; files of dead processes are ignored and removed).
The share is taken again before every run, so workers started one after another settle on
an even split. ``xlrun worker --lanes N`` counts as N workers.

What is limited:

* environment variables read by libraries when they are first imported or by child
  processes: ``OMP_NUM_THREADS``, ``MKL_NUM_THREADS``, ``OPENBLAS_NUM_THREADS``,
  ``NUMEXPR_NUM_THREADS``, ``VECLIB_MAXIMUM_THREADS``, ``RAYON_NUM_THREADS`` (the tokenizers'
  Rust pool) and ``TOKENIZERS_PARALLELISM`` (``false`` for a single thread);
* ``torch.set_num_threads`` (intra-op; may change at any time) and, once per process,
  ``torch.set_num_interop_threads``;
* BLAS pools that are already loaded, through ``threadpoolctl`` when it is installed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from pathlib import Path

from xlrun.processes import pid_alive

THREAD_ENV_VARS: tuple[str, ...] = (
    "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMEXPR_NUM_THREADS",
    "VECLIB_MAXIMUM_THREADS", "RAYON_NUM_THREADS",
)
_applied: int | None = None
_interop_set = False


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask where the OS has one)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def share_of_cores(workers: int, cores: int | None = None) -> int:
    """Threads for one of ``workers`` processes sharing ``cores`` (at least 1)."""
    cores = usable_cores() if cores is None else cores
    return max(1, cores // max(1, workers))


def thread_env(threads: int) -> dict[str, str]:
    """Environment variables that cap every known thread pool at ``threads``."""
    env = {name: str(threads) for name in THREAD_ENV_VARS}
    env["TOKENIZERS_PARALLELISM"] = "true" if threads > 1 else "false"
    return env


def limit_threads(threads: int) -> int:
    """Cap this process's compute threads at ``threads`` (see the module docstring).

    Safe to call again with another number (the intra-op pool follows; the inter-op pool is
    set only by the first call, as PyTorch allows). Returns ``threads``.
    """
    global _applied, _interop_set  # noqa: PLW0603 - the process's thread state, set once
    threads = max(1, int(threads))
    os.environ.update(thread_env(threads))
    if "torch" in sys.modules or _applied is None:
        # deferred on purpose: the thread variables must be set before PyTorch and the BLAS
        # libraries first load (they size their pools then)
        import torch

        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if not _interop_set:
            _interop_set = True
            with contextlib.suppress(RuntimeError):  # too late once inter-op work has run
                torch.set_num_interop_threads(threads)
    with contextlib.suppress(Exception):
        from threadpoolctl import threadpool_limits

        threadpool_limits(threads)
    _applied = threads
    return threads


def applied_threads() -> int | None:
    """The last limit :func:`limit_threads` applied in this process (None: none yet)."""
    return _applied


def _registry_dir() -> Path:
    uid = os.getuid() if hasattr(os, "getuid") else 0
    return Path(tempfile.gettempdir()) / f"xlrun-workers-{uid}"


class WorkerRegistry:
    """Live workers of this user on this host, one file per process (``<pid>`` → weight).

    ``weight`` is how many workers a process counts for (a lane launcher counts for none:
    its lanes register themselves).
    """

    def __init__(self, directory: str | Path | None = None) -> None:
        self.dir = Path(directory) if directory else _registry_dir()
        self._mine: Path | None = None

    def register(self, weight: int = 1) -> None:
        """Record this process (idempotent)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        self._mine = self.dir / str(os.getpid())
        self._mine.write_text(str(int(weight)))

    def unregister(self) -> None:
        """Remove this process's record."""
        if self._mine is not None:
            with contextlib.suppress(OSError):
                self._mine.unlink()
            self._mine = None

    def count(self) -> int:
        """Workers alive now (at least 1: the caller)."""
        return max(1, self.live())

    def live(self) -> int:
        """Registered workers whose process is alive (records of dead ones are removed)."""
        total = 0
        if self.dir.is_dir():
            for f in self.dir.iterdir():
                if not f.name.isdigit():
                    continue
                if not pid_alive(int(f.name)):
                    with contextlib.suppress(OSError):
                        f.unlink()
                    continue
                with contextlib.suppress(OSError, ValueError):
                    total += int(f.read_text() or "1")
        return total

    def __enter__(self) -> WorkerRegistry:
        self.register()
        return self

    def __exit__(self, *exc: object) -> None:
        self.unregister()


class ThreadBudget:
    """A worker's thread policy: a fixed ``--threads``, or its share among the live workers."""

    def __init__(self, threads: int = 0, registry: WorkerRegistry | None = None) -> None:
        self.fixed = max(0, int(threads))
        self.registry = registry

    def threads(self) -> int:
        """Threads this worker should use now."""
        if self.fixed:
            return self.fixed
        workers = self.registry.count() if self.registry is not None else 1
        return share_of_cores(workers)

    def apply(self) -> int:
        """Apply :meth:`threads` to this process (cheap when unchanged); returns it."""
        n = self.threads()
        if n != _applied:
            limit_threads(n)
        return n
