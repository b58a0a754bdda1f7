"""Sizes a run can afford: estimate the bytes a request needs and refuse it, before any work,
when the device cannot hold them.

``require_memory`` raises a one-line ValueError that says what the request would need and what
is available, so a size of 10^12 is refused at once instead of ending in an allocation traceback
(or in swap). Available memory: ``MemAvailable`` of /proc/meminfo (else the physical memory) on
the CPU, ``torch.cuda.mem_get_info`` on CUDA.
"""

from __future__ import annotations

import os


def fmt_bytes(n: float) -> str:
    """'1.07 GB', '980 B': decimal units, 3 significant figures."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB", "EB"):
        if abs(n) < 1000 or unit == "EB":
            return f"{n:.3g} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def available_bytes(device=None) -> int:
    """Bytes that can still be allocated on ``device`` (a torch.device, a name, or None for the CPU)."""
    kind = getattr(device, "type", None) or str(device or "cpu").split(":")[0]
    if kind == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def require_memory(what: str, need: float, device=None, fraction: float = 0.9) -> None:
    """Raise ValueError ``'{what}: needs about X of memory, Y available on DEVICE'`` when ``need``
    bytes exceed ``fraction`` of what ``device`` has available."""
    have = available_bytes(device)
    if need > fraction * have:
        where = getattr(device, "type", None) or str(device or "cpu")
        raise ValueError(f"{what}: needs about {fmt_bytes(need)} of memory, {fmt_bytes(have)} available on {where}")
