"""What the machine can take: free disk, RAM, and the download speed seen so far."""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..settings import Settings

# With nothing measured or configured, time estimates assume a common broadband speed
# and say so; the first real download replaces the assumption.
ASSUMED_BPS = 10_000_000.0
_MIN_SAMPLE_BYTES = 1_000_000


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


@dataclass(frozen=True)
class Memory:
    total: int
    available: int


def memory() -> Memory:
    try:
        fields: dict[str, int] = {}
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                key, _, rest = line.partition(":")
                fields[key] = int(rest.split()[0]) * 1024
        return Memory(fields["MemTotal"], fields.get("MemAvailable", fields["MemFree"]))
    except (OSError, KeyError, ValueError, IndexError):
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        try:
            avail = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        except (ValueError, OSError):
            avail = pages
        return Memory(pages, avail)


@dataclass(frozen=True)
class Bandwidth:
    bps: float
    basis: str


def _bandwidth_file(settings: Settings) -> Path:
    return settings.home / "models" / "bandwidth.json"


def estimate_bandwidth(settings: Settings) -> Bandwidth:
    if settings.download_bandwidth:
        return Bandwidth(settings.download_bandwidth,
                         "configured (LOCALINFER_DOWNLOAD_BANDWIDTH)")
    try:
        data = json.loads(_bandwidth_file(settings).read_text(encoding="utf-8"))
        bps = float(data["bps"])
        if bps > 0:
            return Bandwidth(bps, f"measured on your last {int(data.get('samples', 1))} "
                                  "download(s)")
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return Bandwidth(ASSUMED_BPS, "assumed 10 MB/s: nothing measured yet")


def record_bandwidth(settings: Settings, nbytes: int, seconds: float) -> None:
    """Fold one finished remote download into the moving estimate (small ones are noise)."""
    if nbytes < _MIN_SAMPLE_BYTES or seconds <= 0:
        return
    path = _bandwidth_file(settings)
    sample = nbytes / seconds
    try:
        old = json.loads(path.read_text(encoding="utf-8"))
        bps = 0.5 * float(old["bps"]) + 0.5 * sample
        samples = int(old.get("samples", 0)) + 1
    except (OSError, ValueError, KeyError, TypeError):
        bps, samples = sample, 1
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"bps": bps, "samples": samples, "updated": time.time()}),
                   encoding="utf-8")
    os.replace(tmp, path)
