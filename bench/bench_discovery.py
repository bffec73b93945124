"""Discovery sweep wall time: with nothing running, and with two servers up.

    .venv/bin/python bench/bench_discovery.py [--sweeps 200] [--busy-sweeps 100]

1. Nothing running: a full sweep of every default loopback port (raw TCP pre-check,
   no HTTP client built). Goal: median <= 5 ms.
2. Two servers up: the Ollama protocol fake (its own process) and llama.cpp's real
   llama-server on the bundled GGUF, on their default ports 11434 and 8080 when free
   (else on free ports listed in settings.servers), swept together with every other
   default port.

3. ``--hosts-growth``: configured hosts only (no default ports), 1, 4, 16 and 64 of
   them, each an instant OpenAI-compatible responder (one process, one port per host),
   then the same counts of configured ports where nothing listens (refused).

4. ``--any-port``: the sweep with the socket table (issue 23): nothing running, then with
   30 listening sockets of another program (a plain Python process, not a server), as
   the first sweep of a process (owners looked up in /proc) and the steady state
   (the socket set unchanged: owners cached).

Prints a markdown table with the machine and the command. Results go to
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.fakes.serve import ServerProcess, free_port, port_is_free  # noqa: E402

from localinfer.discovery import default_ports, discover  # noqa: E402
from localinfer.http import EgressPolicy  # noqa: E402
from localinfer.settings import Settings  # noqa: E402


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def time_sweeps(settings: Settings, n: int) -> tuple[list[float], list[str]]:
    policy = EgressPolicy()
    found: list[str] = []
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        servers = await discover(settings, policy)
        samples.append((time.perf_counter() - start) * 1000)
        found = [f"{s.kind}@{s.base_url}" for s in servers]
    return samples, found


def llama_server_bin() -> Path:
    out = subprocess.run(["bash", str(REPO / "scripts" / "build-llama-cpp.sh")],
                         capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHON": sys.executable})
    return Path(out.stdout.strip().splitlines()[-1]) / "llama-server"


def row(name: str, samples: list[float], found: list[str]) -> str:
    return (f"| {name} | {len(samples)} | {statistics.median(samples):.2f} | "
            f"{percentile(samples, 0.99):.2f} | {min(samples):.2f} | "
            f"{', '.join(found) or 'none'} |")


MODELS_BODY = b'{"object":"list","data":[{"id":"m","object":"model","owned_by":"x"}]}'
HOST_COUNTS = (1, 4, 16, 64)


def serve_fakes(ports: list[int]) -> None:
    """Instant HTTP/1.1 responders: ``/v1/models`` lists one model, anything else 404."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                path = head.split(b" ", 2)[1]
                length = 0
                for line in head.lower().split(b"\r\n"):
                    if line.startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                body, status = (MODELS_BODY, b"200 OK") if path == b"/v1/models" else (
                    b'{"error":"not found"}', b"404 Not Found")
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n"
                             b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, IndexError, ValueError):
            writer.close()

    async def run() -> None:
        servers = [await asyncio.start_server(handle, "127.0.0.1", p) for p in ports]
        await asyncio.gather(*(s.serve_forever() for s in servers))

    asyncio.run(run())


def hosts_growth(sweeps: int) -> list[str]:
    """Sweep time vs the number of configured hosts, answering and refused."""
    rows = []
    ports = [free_port() for _ in range(max(HOST_COUNTS))]
    cmd = [sys.executable, __file__, "--serve-fakes", ",".join(map(str, ports))]
    with ServerProcess(cmd, f"http://127.0.0.1:{ports[-1]}/v1/models", cwd=REPO):
        for n in HOST_COUNTS:
            hosts = Settings(scan_default_ports=False,
                             servers=[f"http://127.0.0.1:{p}" for p in ports[:n]])
            samples, found = asyncio.run(time_sweeps(hosts, sweeps))
            rows.append(row(f"{n} configured hosts, answering", samples,
                            [f"{len(found)} found"]))
    for n in HOST_COUNTS:
        refused = Settings(scan_default_ports=False,
                           servers=[f"http://127.0.0.1:{free_port()}" for _ in range(n)])
        samples, found = asyncio.run(time_sweeps(refused, sweeps))
        rows.append(row(f"{n} configured hosts, nothing listening", samples,
                        [f"{len(found)} found"]))
    return rows


def hold_sockets(count: int) -> None:
    """Another program with ``count`` listening sockets, until killed."""
    import socket

    held = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        held.append(sock)
    print("ready", flush=True)
    time.sleep(3600)


def cold_sweep(settings: Settings) -> float:
    """One sweep with the owner cache emptied, as a new process's first sweep."""
    from localinfer.discovery import machine
    from localinfer.discovery.sockets import OwnerCache

    machine._CACHE = OwnerCache()
    start = time.perf_counter()
    asyncio.run(discover(settings, EgressPolicy()))
    return (time.perf_counter() - start) * 1000


def any_port(sweeps: int) -> list[str]:
    idle = Settings(scan_default_ports=True, servers=[])
    rows = []
    for label, count in (("nothing running", 0), ("30 sockets of another program", 30)):
        holder = None
        if count:
            holder = subprocess.Popen([sys.executable, __file__, "--hold-sockets", str(count)],
                                      stdout=subprocess.PIPE, text=True)
            assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        try:
            cold = [cold_sweep(idle) for _ in range(max(5, sweeps // 20))]
            rows.append(row(f"{label}, first sweep of a process", cold, ["-"]))
            samples, found = asyncio.run(time_sweeps(idle, sweeps))
            rows.append(row(f"{label}, steady state", samples, found))
        finally:
            if holder is not None:
                holder.kill()
                holder.wait()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sweeps", type=int, default=200)
    parser.add_argument("--busy-sweeps", type=int, default=100)
    parser.add_argument("--threads", default="2", help="llama-server threads")
    parser.add_argument("--hosts-growth", action="store_true",
                        help="only the sweep time vs number of configured hosts")
    parser.add_argument("--any-port", action="store_true",
                        help="only the sweep with the socket table (issue 23)")
    parser.add_argument("--serve-fakes", help=argparse.SUPPRESS)
    parser.add_argument("--hold-sockets", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hold_sockets:
        hold_sockets(args.hold_sockets)
        return 0
    if args.any_port:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        rows = any_port(args.sweeps)
        print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (nproc), "
              f"Linux {platform.release()}, Python {platform.python_version()}, "
              f"{sum(1 for p in os.listdir('/proc') if p.isdigit())} processes, "
              f"load average at start: {load}")
        print(f"Command: `.venv/bin/python bench/bench_discovery.py --any-port "
              f"--sweeps {args.sweeps}`\n")
        print("| scenario | sweeps | median ms | p99 ms | min ms | servers found |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
        return 0
    if args.serve_fakes:
        serve_fakes([int(p) for p in args.serve_fakes.split(",")])
        return 0
    if args.hosts_growth:
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        rows = hosts_growth(args.sweeps)
        print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (nproc), "
              f"Linux {platform.release()}, Python {platform.python_version()}, "
              f"load average at start: {load}")
        print(f"Command: `.venv/bin/python bench/bench_discovery.py --hosts-growth "
              f"--sweeps {args.sweeps}`\n")
        print("| scenario | sweeps | median ms | p99 ms | min ms | servers found |")
        print("|---|---|---|---|---|---|")
        print("\n".join(rows))
        return 0

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    rows = []
    notes = []
    taken = [p for p in default_ports() if not port_is_free(p)]
    if taken:
        notes.append(f"default ports already in use here: {taken} (swept as found)")
    idle = Settings(scan_default_ports=True, servers=[])
    samples, found = asyncio.run(time_sweeps(idle, args.sweeps))
    rows.append(row("nothing running (all default ports)", samples, found))

    from localinfer.assets.bundled import bundled_model_path

    on_defaults = port_is_free(11434) and port_is_free(8080)
    ollama_port, llama_port = (11434, 8080) if on_defaults else (free_port(), free_port())
    ollama_url = f"http://127.0.0.1:{ollama_port}"
    llama_url = f"http://127.0.0.1:{llama_port}"
    fake = [sys.executable, "-m", "tests.fakes", "ollama", "--port", str(ollama_port)]
    real = [str(llama_server_bin()), "-m", str(bundled_model_path()), "--host", "127.0.0.1",
            "--port", str(llama_port), "-c", "2048", "-t", args.threads, "--no-webui"]
    busy = Settings(scan_default_ports=True,
                    servers=[] if on_defaults else [ollama_url, llama_url])
    with ServerProcess(fake, ollama_url + "/api/version", cwd=REPO), \
            ServerProcess(real, llama_url + "/health"):
        samples, found = asyncio.run(time_sweeps(busy, args.busy_sweeps))
    where = "default ports" if on_defaults else "free ports via settings.servers"
    rows.append(row(f"Ollama fake + real llama-server ({where}) + all default ports",
                    samples, found))

    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs (nproc), "
          f"Linux {platform.release()}, Python {platform.python_version()}, "
          f"load average at start: {load}")
    print(f"Command: `.venv/bin/python bench/bench_discovery.py --sweeps {args.sweeps} "
          f"--busy-sweeps {args.busy_sweeps}`")
    print()
    print("| scenario | sweeps | median ms | p99 ms | min ms | servers found |")
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))
    for note in notes:
        print(f"\nNote: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
