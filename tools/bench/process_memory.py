"""The benchmarks' readings of this process's memory (Linux ``/proc``): the resident set, its peak and a reset of
the peak, so that a peak can be read over any stretch of a run without a sampling thread."""

from __future__ import annotations

import os

__all__ = ["peak_rss_bytes", "reset_peak_rss", "rss_bytes"]


def rss_bytes() -> int:
    """The resident set size now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    """The peak resident set size (``VmHWM``) since the process started or :func:`reset_peak_rss` last ran."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("/proc/self/status has no VmHWM line")


def reset_peak_rss() -> None:
    """Reset ``VmHWM`` to the current resident set size (``/proc/self/clear_refs`` <- 5)."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
