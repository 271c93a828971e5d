"""How a worker behaves (:class:`WorkerOptions`), checked when made.

Light on purpose: ``xlrun worker`` builds and checks its options before it sets the thread
variables and imports the run path (PyTorch sizes its thread pools when it first loads).
"""

from __future__ import annotations

from dataclasses import dataclass

from xlrun.errors import UsageError


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker behaves."""

    device: str = "auto"
    max_runs: int = 0  # 0 = no limit
    run_ids: tuple[int, ...] | None = None  # only these runs
    heartbeat_s: float = 30.0
    stale_after_s: float = 300.0
    max_attempts: int = 3  # a run whose worker died this often is marked failed
    wait: bool = False  # keep polling when the queue is empty
    poll_s: float = 10.0
    tag: str = "worker"
    claim_for_s: float = 0.0  # > 0: claim no new run after this many seconds (time-limited jobs)
    threads: int = 0  # compute threads; 0 = an equal share of the cores among live workers
    deadline: float = 0.0  # > 0: epoch seconds by which every run must have finished
    run_estimate_s: float = 0.0  # the run time assumed before this worker has finished one
    max_device_errors: int = 2  # stop after this many device errors in a row (0: never)

    def __post_init__(self) -> None:
        """Refuse settings that break the queue (the same rule as ``[executor]`` in a spec):
        a heartbeat under 1 s floods the database with updates, and a stale limit under two
        heartbeats takes live runs from their workers."""
        if not self.heartbeat_s >= 1:  # also NaN
            raise UsageError(f"--heartbeat must be 1 second or more (got {self.heartbeat_s:g}): "
                             "each heartbeat is a database write")
        if not self.stale_after_s >= 2 * self.heartbeat_s:
            raise UsageError(f"--stale-after must be at least twice --heartbeat, i.e. >= "
                             f"{2 * self.heartbeat_s:g} s (got {self.stale_after_s:g}): a "
                             "shorter limit takes live runs from their workers")
        if self.max_attempts < 1:
            raise UsageError(f"--max-attempts must be 1 or more (got {self.max_attempts})")
        for name, value in (("--poll", self.poll_s), ("--claim-for", self.claim_for_s),
                            ("--deadline", self.deadline),
                            ("--run-estimate", self.run_estimate_s)):
            if not value >= 0 or value == float("inf"):
                raise UsageError(f"{name} must be a finite number >= 0 (got {value:g})")
        if self.max_device_errors < 0:
            raise UsageError(f"--max-device-errors must be 0 or more (got "
                             f"{self.max_device_errors})")


EXIT_DEVICE = 75
"""``xlrun worker``'s exit code when it stopped because its device failed run after run
(EX_TEMPFAIL: the runs are back in the queue; another worker or a later try may succeed)."""
