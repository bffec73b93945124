"""`localinfer sandbox run|doctor`: Python in the WebAssembly sandbox, from the shell."""

from __future__ import annotations

import argparse
import os
import stat
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..files import kind_of, shown
from .common import note, print_json

PROGRAMS = {"python": "python", "python3": "python", "micropython": "micropython"}


def register(sub: Any) -> None:
    p = sub.add_parser("sandbox", help="run Python in the WebAssembly sandbox",
                       description="CPython 3.12 (or MicroPython) compiled to WebAssembly, run "
                       "by wasmtime in a worker process: no host files but those given, no "
                       "network, no subprocesses, capped memory, CPU and wall-clock time.")
    ssub = p.add_subparsers(dest="sandbox_command", metavar="COMMAND", required=True)

    r = ssub.add_parser("run", help="run a guest program: sandbox run [OPTIONS] -- python -c CODE",
                        description="Run a program in the sandbox. The guest's stdout, stderr "
                        "and exit code are passed through; piped stdin reaches the guest. A "
                        "limit hit is one stderr line and exit 124.")
    r.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                   help="hard wall-clock limit (default 10)")
    r.add_argument("--memory", default="256M", metavar="SIZE",
                   help="guest memory cap, e.g. 256M, 1G (default 256M)")
    r.add_argument("--disk", default="256M", metavar="SIZE",
                   help="how much the guest may write into its /work (default 256M)")
    r.add_argument("--fuel", type=int, default=None, metavar="N",
                   help="instruction budget (wasmtime fuel); default unlimited")
    r.add_argument("--file", action="append", default=[], metavar="NAME=PATH",
                   help="copy a host file into the guest's /work (repeatable)")
    r.add_argument("--mount", action="append", default=[], metavar="HOST:GUEST[:ro|rw]",
                   help="give the guest a host directory, read-only unless :rw (repeatable)")
    r.add_argument("--env", action="append", default=[], metavar="KEY=VALUE",
                   help="an environment variable for the guest (it gets no others)")
    r.add_argument("--runtime", choices=["python", "micropython"], default=None,
                   help="guest runtime (default: from the program name, else python)")
    r.add_argument("--out", metavar="DIR",
                   help="write the files the guest created or changed in /work here")
    r.add_argument("--json", action="store_true",
                   help="print the result as JSON instead of passing output through")
    r.add_argument("argv", nargs=argparse.REMAINDER,
                   help="the guest program after --, e.g. -- python -c 'print(1)'")
    r.set_defaults(func=run_cmd)

    d = ssub.add_parser("doctor", help="check the runtimes, precompile them, time a call",
                        description="Report wasmtime and each runtime's package, licence and "
                        "pinned SHA-256; compile each into the cache if needed; run one "
                        "call and time it.")
    d.add_argument("--json", action="store_true", help="machine-readable output")
    d.set_defaults(func=doctor_cmd)


def _parse_files(specs: list[str], cap: int) -> dict[str, bytes]:
    """Read each --file, refusing a FIFO or device (a read would block or never end) and
    anything that would not fit in /work (``cap`` bytes, all files together) before a
    byte is read."""
    from ..sandbox import format_size

    files: dict[str, bytes] = {}
    total = 0
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep:
            name, path = Path(spec).name, spec
        # O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer.
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError as exc:
            raise UsageError(f"cannot read --file {shown(spec)}: {exc.strerror}") from None
        with os.fdopen(fd, "rb") as fh:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UsageError(f"--file {shown(spec)} is {kind_of(st.st_mode)}, "
                                 "not a regular file")
            total += st.st_size
            if total > cap:
                raise UsageError(f"--file {shown(spec)}: the files come to {total} bytes, "
                                 f"more than --disk {format_size(cap)} lets /work hold")
            data = fh.read(cap - (total - st.st_size) + 1)
        if len(data) != st.st_size:  # it changed while we read it
            raise UsageError(f"--file {shown(spec)} changed while it was read")
        files[name] = data
    return files


def _parse_mounts(specs: list[str]) -> dict[str, tuple[str, Any]]:
    from ..sandbox.mounts import differs, resolve_source

    mounts: dict[str, tuple[str, Any]] = {}
    for spec in specs:
        parts = spec.split(":")
        mode = "ro"
        if len(parts) == 3 and parts[2] in ("ro", "rw"):
            mode = parts.pop()
        if len(parts) != 2 or not parts[0] or not parts[1]:
            raise UsageError(f"--mount wants HOST:GUEST[:ro|rw], not '{spec}'")
        source = resolve_source(parts[0])  # refused here: one line, exit 2
        if differs(parts[0], source):  # say where a symlink really leads
            note(f"localinfer: note: --mount {shown(parts[0])} is {shown(source)}")
        mounts[parts[1]] = (str(source), mode)
    return mounts


def _parse_env(specs: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for spec in specs:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            raise UsageError(f"--env wants KEY=VALUE, not '{spec}'")
        env[key] = value
    return env


def run_cmd(args: argparse.Namespace) -> int:
    from ..sandbox import Sandbox, SandboxLimit, parse_size

    argv = list(args.argv)
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        raise UsageError("no program: localinfer sandbox run -- python -c 'print(1)'")
    program = PROGRAMS.get(Path(argv[0]).name)
    if program is None:
        raise UsageError(f"the sandbox runs python or micropython, not '{argv[0]}' "
                         "(there is no shell inside)")
    runtime = args.runtime or program
    argv[0] = runtime
    memory, disk = parse_size(args.memory), parse_size(args.disk)
    # Mounts and files are checked before stdin is read or a worker starts.
    mounts, files = _parse_mounts(args.mount), _parse_files(args.file, disk)
    stdin = b""
    if sys.stdin is not None and not sys.stdin.isatty():
        try:
            stdin = sys.stdin.buffer.read()
        except (OSError, ValueError, AttributeError):  # closed, or not readable
            stdin = b""
    with Sandbox(warm=0) as sandbox:
        result = sandbox.run(argv, files=files, mounts=mounts, timeout=args.timeout,
                             memory=memory, fuel=args.fuel, env=_parse_env(args.env),
                             stdin=stdin, runtime=runtime, disk=disk)
    if args.out:
        out = Path(args.out)
        for name, data in result.files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_bytes(data)
    if args.json:
        print_json({
            "exit_code": result.exit_code, "error": result.error,
            "stdout": result.stdout.decode("utf-8", "replace"),
            "stderr": result.stderr.decode("utf-8", "replace"),
            "files": sorted(result.files), "wall_seconds": round(result.wall_seconds, 4),
            "fuel_used": result.fuel_used, "runtime": result.runtime,
            "truncated": result.truncated})
    else:
        sys.stdout.buffer.write(result.stdout)
        sys.stdout.flush()
        sys.stderr.buffer.write(result.stderr)
        sys.stderr.flush()
    if result.error is not None:
        raise SandboxLimit(result.describe_limit(args.timeout, memory, args.fuel, disk))
    if result.exit_code is None:
        note(f"sandbox: the guest trapped: {result.trap}")
        return 1
    return result.exit_code


def doctor_cmd(args: argparse.Namespace) -> int:
    from ..sandbox import RUNTIMES, Sandbox, SandboxUnavailable, cwasm_path
    from ..sandbox.runtimes import verified_path, wasmtime_version

    report: dict[str, Any] = {"wasmtime": wasmtime_version(), "runtimes": {}}
    failed = False
    with Sandbox(warm=1) as sandbox:
        for name, rt in RUNTIMES.items():
            entry: dict[str, Any] = {"package": rt.package, "version": rt.version(),
                                     "license": rt.license, "build": rt.build,
                                     "sha256": rt.sha256}
            report["runtimes"][name] = entry
            try:
                entry["path"] = str(verified_path(rt))
                entry["sha256_ok"] = True
                cached = cwasm_path(rt)
                entry["cache"] = str(cached)
                entry["was_cached"] = cached.exists()
                started = time.monotonic()
                first = sandbox.run("print(6 * 7)", runtime=name, timeout=60)
                entry["first_call_seconds"] = round(time.monotonic() - started, 3)
                second = sandbox.run("print(6 * 7)", runtime=name, timeout=60)
                entry["ok"] = first.text.strip() == "42" and second.text.strip() == "42"
                entry["warm_call_seconds"] = round(second.wall_seconds, 4)
                entry["cache_bytes"] = cached.stat().st_size if cached.exists() else None
            except SandboxUnavailable as exc:
                entry["ok"] = False
                entry["problem"] = exc.message
            failed = failed or not entry["ok"]
    if args.json:
        print_json(report)
    else:
        print(f"wasmtime {report['wasmtime'] or 'not installed'}")
        for name, e in report["runtimes"].items():
            status = "ok" if e.get("ok") else "NOT OK"
            print(f"{name}: {status} — {e['package']} {e['version'] or '(not installed)'}; "
                  f"{e['license']}")
            if "problem" in e:
                print(f"  problem: {e['problem']}")
                continue
            print(f"  wasm:  {e['path']} (sha256 pinned, verified)")
            print(f"  cache: {e['cache']} ({'was cached' if e['was_cached'] else 'compiled now'})")
            print(f"  first call {e['first_call_seconds']} s, warm call {e['warm_call_seconds']} s")
    return 1 if failed else 0
