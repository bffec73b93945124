"""Run a command inside a fresh network namespace whose only interface is loopback
(`unshare -n`, then `ip link set lo up`): whatever it does, no byte can leave."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence

import pytest


def netns_problem() -> str | None:
    """Why a loopback-only namespace cannot be made here, or None when it can."""
    if not shutil.which("unshare") or not shutil.which("ip"):
        return "needs unshare and ip (util-linux, iproute2)"
    probe = subprocess.run(["unshare", "-n", "sh", "-c", "ip link set lo up"],
                           capture_output=True, text=True, timeout=30)
    if probe.returncode != 0:
        return f"cannot create a network namespace here: {probe.stderr.strip()[:200]}"
    return None


_PROBLEM = netns_problem()
needs_netns = pytest.mark.skipif(_PROBLEM is not None, reason=_PROBLEM or "")


def run_in_netns(argv: Sequence[str], env: dict[str, str], *, timeout: float = 300
                 ) -> subprocess.CompletedProcess[str]:
    script = 'ip link set lo up && exec "$@"'
    return subprocess.run(["unshare", "-n", "sh", "-c", script, "sh", *argv], env=env,
                          capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
