"""``llama-server`` for the tests: llama.cpp's own C++ server, from the ``xllamacpp``
wheel the embedded tier ships, started with the subset of ``llama-server``'s flags the
suite uses. Same server code as the ``llama-server`` binary (server-context, slots,
/props, Jinja, API keys), without compiling llama.cpp in CI.

    python -m tests.support.llama_server -m MODEL.gguf --host 127.0.0.1 --port 8080 \\
        [-c N] [-t N] [-np N] [--jinja | --no-jinja] [--chat-template-file F] \\
        [--api-key K] [--embedding] [--no-webui]

It serves until SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path


def parse(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="llama-server")
    p.add_argument("-m", "--model", required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-c", "--ctx-size", type=int, default=4096)
    p.add_argument("-t", "--threads", type=int, default=2)
    p.add_argument("-np", "--parallel", type=int, default=1)
    p.add_argument("--jinja", dest="jinja", action="store_true", default=True)
    p.add_argument("--no-jinja", dest="jinja", action="store_false")
    p.add_argument("--chat-template-file")
    p.add_argument("--api-key")
    p.add_argument("-a", "--alias")
    p.add_argument("--embedding", "--embeddings", action="store_true")
    p.add_argument("--no-webui", action="store_true")
    return p.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse(argv)
    import xllamacpp

    p = xllamacpp.CommonParams()
    p.model.path = args.model
    p.n_ctx = args.ctx_size  # as llama-server: shared by the slots
    p.n_parallel = args.parallel
    p.cpuparams.n_threads = p.cpuparams_batch.n_threads = args.threads
    p.hostnames = [args.host]
    p.port = args.port
    p.use_jinja = args.jinja
    if args.chat_template_file:
        p.chat_template = Path(args.chat_template_file).read_text(encoding="utf-8")
    if args.api_key:
        p.api_keys = [args.api_key]
    if args.alias:
        p.model_alias = {args.alias}  # a set of names in this llama.cpp
    p.embedding = args.embedding
    p.ui = not args.no_webui
    p.endpoint_slots = p.endpoint_props = True
    p.offline = True
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    server = xllamacpp.Server(p)
    print(f"llama-server (xllamacpp) listening on {server.listening_address}", flush=True)
    stop.wait()
    del server
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
