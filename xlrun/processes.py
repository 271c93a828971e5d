"""Processes on this machine, and how to tell from a database row whether one still runs.

A run's holder is recorded at claim time as a *process identity*
(:func:`process_identity`): ``boot id / PID namespace / pid / start time``. Another process
can judge that holder by its pid only when it runs under the same kernel boot and in the same
PID namespace (:func:`holder_gone`); otherwise the pid means nothing here (a container with
host networking has the host's name but its own pids) and only the holder's heartbeats tell.
The start time catches a pid reused by an unrelated process after the holder died.
"""

from __future__ import annotations

import functools
import os
import socket
import sys
from pathlib import Path

_PROC = Path("/proc")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


@functools.lru_cache(maxsize=1)
def boot_id() -> str:
    """This kernel boot's id (Linux: ``/proc/sys/kernel/random/boot_id``). Elsewhere, where
    there are no PID namespaces, ``host-<hostname>``: processes are then judged by pid on the
    same host, as before identities existed."""
    bid = _read(_PROC / "sys" / "kernel" / "random" / "boot_id")
    return bid if bid else f"host-{socket.gethostname()}"


def pid_namespace(pid: int | str = "self") -> str:
    """The PID namespace of ``pid`` (Linux: the inode of ``/proc/<pid>/ns/pid``); ``-`` where
    the system has none or it cannot be read."""
    try:
        link = os.readlink(_PROC / str(pid) / "ns" / "pid")  # "pid:[4026531836]"
    except OSError:
        return "-"
    return link.split("[", 1)[-1].rstrip("]") or "-"


def start_time(pid: int | str = "self") -> str:
    """When process ``pid`` started, in clock ticks after boot (Linux: field 22 of
    ``/proc/<pid>/stat``); ``-`` where it cannot be read. Two processes that held the same
    pid one after the other differ here."""
    stat = _read(_PROC / str(pid) / "stat")
    if not stat or ")" not in stat:
        return "-"
    fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state is field 3
    return fields[19] if len(fields) > 19 else "-"


def process_identity() -> str:
    """``boot_id/pid_namespace/pid/start_time`` of this process (what a claim records in
    ``runs.worker_process``)."""
    return f"{boot_id()}/{pid_namespace()}/{os.getpid()}/{start_time()}"


def holder_gone(identity: str | None) -> bool | None:
    """Whether the process recorded as ``identity`` (:func:`process_identity`) has ended.

    True: it ran under this boot, in this PID namespace, and its pid is gone or now belongs to
    a process that started at another time. False: it still runs. None: this process cannot
    tell (another machine or boot, another PID namespace, an identity from an older xlrun or
    none): only its heartbeats can.
    """
    if not identity:
        return None
    parts = identity.split("/")
    if len(parts) != 4 or not parts[2].isdigit():
        return None
    boot, namespace, pid, started = parts
    if boot != boot_id() or namespace != pid_namespace():
        return None
    if namespace == "-" and sys.platform.startswith("linux"):
        # a Linux whose namespaces cannot be read (e.g. /proc hidden): pids may be another
        # namespace's, so do not judge by them
        return None
    if not pid_alive(int(pid)):
        return True
    # alive, unless the pid now belongs to a process that started later (pid reuse)
    return started != "-" and start_time(pid) not in ("-", started)
