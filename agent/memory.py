"""How much memory this process may still take: the machine's, or its container's limit if lower."""

from __future__ import annotations

from pathlib import Path


def available_memory_bytes() -> int | None:
    """None where it cannot be told (not Linux): callers then do not refuse on memory."""
    candidates = [v for v in (_meminfo_available(), _cgroup_headroom()) if v is not None]
    return min(candidates) if candidates else None


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_headroom() -> int | None:
    root = Path("/sys/fs/cgroup")
    try:
        limit = (root / "memory.max").read_text().strip()
        if limit == "max":
            return None
        return max(0, int(limit) - int((root / "memory.current").read_text().strip()))
    except (OSError, ValueError):
        return None
