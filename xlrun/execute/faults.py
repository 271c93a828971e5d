"""Whose fault a failed run is: the device's (or the machine's) or the run's own.

A run that fails because of what it asks for (a spec value that does not fit the data, a
diverging loss, a bug its config triggers) fails the same way wherever it runs: it is marked
``failed`` with its message. A run that fails because of where it runs — a CUDA error, an
accelerator out of memory, a lost or poisoned device context, a device that is busy in
exclusive compute mode or missing — may well succeed on another worker: it goes back to the
queue (within ``--max-attempts``), and a worker whose device fails run after run stops
instead of failing the whole queue (:func:`xlrun.execute.worker.run_worker`).
"""

from __future__ import annotations

import re

import torch

from xlrun.errors import XlrunError

DEVICE_MESSAGE = re.compile(
    r"CUDA|cuDNN|CUDNN|cuBLAS|CUBLAS|cublas|cufft|NCCL|nccl|NVML|NVIDIA driver|"
    r"device-side assert|out of memory|no kernel image|busy or unavailable|"
    r"invalid device ordinal|HIP error|hipError|XPU|MPS backend|accelerator",
)
"""Words of the errors PyTorch and its libraries raise when the device (not the run) fails."""


def _device_types() -> tuple[type[BaseException], ...]:
    names = ("OutOfMemoryError", "AcceleratorError")
    found = [getattr(torch, n) for n in names if isinstance(getattr(torch, n, None), type)]
    cuda_error = getattr(torch.cuda, "CudaError", None)
    if isinstance(cuda_error, type):
        found.append(cuda_error)
    return tuple(found)


DEVICE_ERRORS: tuple[type[BaseException], ...] = _device_types()
"""Exception types that are always the device's fault."""


def is_device_error(error: BaseException) -> bool:
    """Whether ``error`` (or an exception it was raised from) is a device or infrastructure
    error rather than the run's own.

    xlrun's own errors (:class:`~xlrun.errors.XlrunError`: spec values, data, diverging
    training) are always the run's. Else: an accelerator exception type
    (:data:`DEVICE_ERRORS`), or a ``RuntimeError``/``AssertionError``/``OSError`` whose message
    names the device stack (:data:`DEVICE_MESSAGE`: CUDA, cuDNN, cuBLAS, NCCL, out of memory,
    device-side assert, a busy or missing device, …).
    """
    seen: set[int] = set()
    e: BaseException | None = error
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, XlrunError):
            return False
        if DEVICE_ERRORS and isinstance(e, DEVICE_ERRORS):
            return True
        if isinstance(e, RuntimeError | AssertionError | OSError) and DEVICE_MESSAGE.search(
                str(e)):
            return True
        e = e.__cause__ or e.__context__
    return False
