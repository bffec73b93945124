"""Serve one fake until interrupted: ``python -m tests.fakes ollama --port 11434``.

Runs in its own process, so a benchmark measures discovery without the fake sharing
its interpreter.
"""

from __future__ import annotations

import argparse
import sys
import time

from . import FAKES, AppServer


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fakes")
    parser.add_argument("kind", choices=sorted(FAKES))
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    with AppServer(FAKES[args.kind]().app, args.port) as server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
