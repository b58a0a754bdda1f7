"""Device choice: an explicit name, else the PROOFS_DEVICE environment variable, else CUDA
when present, else the CPU. A bad name raises ValueError naming the parameter."""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

ENV_VAR = "PROOFS_DEVICE"


def pick_device(name: str | None = None) -> torch.device:
    """Return the device to run on (see module docstring for the order of choice)."""
    what = "device" if name else ENV_VAR  # name the source of the value in a message
    name = name or os.environ.get(ENV_VAR) or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(name)
    except (RuntimeError, TypeError):
        raise ValueError(f"{what}: unknown device {name!r} (try 'cpu' or 'cuda')") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{what}: {name!r} asked for but CUDA is not available here")
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(f"{what}: {name!r} is not supported (use 'cpu' or 'cuda')")
    return dev


def generator(device: torch.device | str, seed: int) -> torch.Generator:
    """An explicit seeded generator on ``device`` (never the global one)."""
    return torch.Generator(device=torch.device(device)).manual_seed(int(seed))


def describe(device: torch.device) -> str:
    """A one-line name of the device, e.g. 'cuda (NVIDIA H200)' or 'cpu (2 threads)'."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    n = torch.get_num_threads()
    return f"cpu ({n} thread{'s' * (n != 1)})"


@contextmanager
def one_thread():
    """Run the body on one CPU thread and restore the count after: on tiny tensors, OpenMP threads only
    contend for a shared CPU.

    >>> import torch
    >>> with one_thread():
    ...     torch.get_num_threads()
    1
    """
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(old)
