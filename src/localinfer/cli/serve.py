"""`localinfer serve`: the OpenAI- and Ollama-compatible gateway on localhost."""

from __future__ import annotations

import argparse
import errno
import socket
from typing import Any

from ..errors import LocalInferError
from ..web.vendor import vendor_problem
from .common import note, settings_from_args


def register(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="serve an OpenAI- and Ollama-compatible API on localhost",
        description="Serve /v1 (OpenAI) and /api (Ollama) routes backed by the best local "
        "tier, with the same routing, fallback and consent rules as the library. Binds "
        "127.0.0.1 by default; any other address requires --token.")
    p.add_argument("--host", help="address to bind (default: 127.0.0.1, LOCALINFER_HOST)")
    p.add_argument("--port", type=int, help="port (default: 8642, LOCALINFER_PORT)")
    p.add_argument("--token", help="require `Authorization: Bearer TOKEN` "
                   "(LOCALINFER_TOKEN; required off loopback)")
    p.add_argument("--allow-origin", action="append", dest="allowed_origins", metavar="ORIGIN",
                   help="a web origin allowed to call from a browser, e.g. "
                   "http://localhost:3000 (repeatable; LOCALINFER_ALLOWED_ORIGINS)")
    p.add_argument("--allow-host", action="append", dest="allowed_hosts", metavar="NAME",
                   help="an extra Host name to accept (repeatable; LOCALINFER_ALLOWED_HOSTS)")
    p.add_argument("-m", "--model", help="a .gguf file for the embedded engine")
    p.add_argument("--log-level", default="warning",
                   choices=["critical", "error", "warning", "info", "debug"],
                   help="server log level (info logs each request)")
    p.set_defaults(func=run)


def bind(host: str, port: int) -> socket.socket:
    """Bind and listen before starting the server, so a taken port is one clear line."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host.strip("[]"), port))
    except OSError as exc:
        sock.close()
        hint = (" (another gateway or server is using it; choose --port)"
                if exc.errno == errno.EADDRINUSE else "")
        raise LocalInferError(f"cannot listen on {host}:{port}: {exc.strerror}{hint}") from None
    # Listen now, before the URL is announced: a client that connects right after the
    # announcement must find a listening socket, not a refusal.
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def run(args: argparse.Namespace) -> int:
    from ..client import AsyncClient
    from ..gateway import create_app
    from ..gateway.server import serve

    overrides: dict[str, Any] = {name: value for name in
                                 ("host", "port", "token", "allowed_origins", "allowed_hosts")
                                 if (value := getattr(args, name, None)) is not None}
    settings = settings_from_args(args, **overrides)
    client = AsyncClient(settings)
    app = create_app(settings, client, close_client=True)  # checks token vs. bind address
    sock = bind(settings.host, settings.port)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    note(f"localinfer gateway on http://{shown}:{port}  (OpenAI: /v1, Ollama: /api, "
         f"schema: /openapi.json){'  token required' if settings.token else ''}")
    if (problem := vendor_problem()) is not None:  # the page shows it too (engine.problem)
        note(f"warning: /ui/ has no in-browser tier: {problem}")
    serve(app, settings, sock, log_level=args.log_level,
          access_log=args.log_level in ("info", "debug"))
    return 0
