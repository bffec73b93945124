"""Run the real `localinfer` command in a subprocess with a clean environment."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_cli(home: Path, *args: str, timeout: float = 120, **env: str
            ) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOCALINFER_")}
    environment.update(LOCALINFER_HOME=str(home), LOCALINFER_SCAN_DEFAULT_PORTS="off",
                       LOCALINFER_EMBEDDED_THREADS="1", **env)
    return subprocess.run([sys.executable, "-m", "localinfer.cli.main", *args], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def one_clean_line(result: subprocess.CompletedProcess[str]) -> str:
    """The CLI's error contract: no traceback, one `localinfer: error:` line."""
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1, result.stderr
    return errors[0]
