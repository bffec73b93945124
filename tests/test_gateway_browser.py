"""The gateway's origin rules, proven with a real browser (Debian's headless Chromium).

A page served from a second loopback port (another origin) runs the fetch a web app
would send to the gateway and writes the outcome into its DOM, which Chromium dumps.
The gateway sits behind a recorder that notes each request it receives and its answer,
so a test can tell "the gateway refused" from "the browser never reached it".
The gateway serves no HTML page of its own (``/`` is JSON), so there is no same-origin
page to test here; test_gateway_security.py covers the own-origin rule with headers.
Chromium 156 sends no Private Network Access preflights any more (Local Network
Access asks the user instead, and headless says no), so PNA stays with those tests.
"""

from __future__ import annotations

import html
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import RunApp, gateway_app

CHROMIUM = Path("/usr/bin/chromium")
BROWSER_TIMEOUT = 60.0

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not CHROMIUM.exists(),
                       reason="needs Debian's chromium at /usr/bin/chromium "
                              "(apt-get install chromium; .ci/run installs it)"),
]

# Headless, no sandbox (root in CI), and nothing but loopback: the background services
# are off, and every other host name fails to resolve in the browser itself.
BROWSER_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
)

# The fetch a web app sends (``type`` picks the Content-Type: application/json needs a
# CORS preflight, text/plain is a "simple" request the browser sends without asking).
PAGE = """<!doctype html>
<html><head><title>localinfer browser test</title></head>
<body style="font: 20px sans-serif"><h1>Gateway answer</h1><pre id="out">pending</pre>
<script>
const q = new URLSearchParams(location.search);
const out = document.getElementById('out');
fetch(q.get('gateway') + '/v1/chat/completions', {
  method: 'POST',
  headers: {'Content-Type': q.get('type')},
  body: JSON.stringify({model: 'default',
                        messages: [{role: 'user', content: 'Summarize this document.'}]}),
}).then(r => r.json().then(j => 'answered ' + r.status + ': ' + j.choices[0].message.content))
  .catch(e => 'rejected: ' + e.name + ': ' + e.message)
  .then(text => { out.textContent = text; });
</script></body></html>
"""
OUTCOME = re.compile(r'<pre id="out">(.*?)</pre>', re.S)
JSON_TYPE = "application/json"


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    origin: str | None
    status: int


def recording(app: ASGIApp, seen: list[Seen]) -> ASGIApp:
    """``app``, noting each HTTP request and the status it was answered with."""
    async def wrapped(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        origin = headers.get(b"origin")

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.append(Seen(scope["method"], scope["path"],
                                 origin.decode() if origin is not None else None,
                                 message["status"]))
            await send(message)

        await app(scope, receive, noting)
    return wrapped


def page_app() -> Starlette:
    async def page(request: Request) -> Response:
        return HTMLResponse(PAGE)
    return Starlette(routes=[Route("/", page)])


@dataclass
class Setup:
    page_origin: str
    gateway_port: int
    backend: FakeBackend
    seen: list[Seen]
    answer: str

    def page_url(self, content_type: str = JSON_TYPE) -> str:
        # `localhost`, as a web app's code names the gateway; the page is on 127.0.0.1.
        query = {"gateway": f"http://localhost:{self.gateway_port}", "type": content_type}
        return f"{self.page_origin}/?{urlencode(query)}"


def start(run_app: RunApp, home: Path, *, allow_page: bool) -> Setup:
    page_origin = run_app(page_app())
    chunks = ["The document ", "is about ", "local inference."]
    backend = FakeBackend("fake-chat", tier="embedded").enqueue(Script(chunks=chunks))
    seen: list[Seen] = []
    origins = [page_origin] if allow_page else []
    gateway = run_app(recording(gateway_app(home, [backend], allowed_origins=origins), seen))
    return Setup(page_origin, int(gateway.rsplit(":", 1)[1]), backend, seen, "".join(chunks))


def chromium(profile: Path, url: str, *extra: str) -> str:
    """Load ``url`` in a fresh headless Chromium; its DOM (or other output) on stdout."""
    result = subprocess.run(
        [str(CHROMIUM), *BROWSER_FLAGS, f"--user-data-dir={profile}",
         "--virtual-time-budget=10000", *extra, url],
        capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=BROWSER_TIMEOUT)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def outcome(profile: Path, url: str) -> str:
    match = OUTCOME.search(chromium(profile, url, "--dump-dom"))
    assert match is not None, "the page's <pre id=out> is missing from the dumped DOM"
    return html.unescape(match.group(1))


def test_other_origin_is_blocked_and_backend_untouched(run_app: RunApp,
                                                       tmp_path: Path) -> None:
    s = start(run_app, tmp_path / "home", allow_page=False)
    text = outcome(tmp_path / "profile", s.page_url())
    assert text.startswith("rejected: TypeError"), text
    assert s.backend.calls == []
    # The browser asked first (JSON needs a preflight) and the gateway said no.
    assert s.seen == [Seen("OPTIONS", "/v1/chat/completions", s.page_origin, 403)]


def test_simple_request_from_other_origin_is_refused_by_the_gateway(run_app: RunApp,
                                                                    tmp_path: Path) -> None:
    # text/plain needs no preflight: the browser sends the POST, and only the gateway
    # can keep it from reaching a model.
    s = start(run_app, tmp_path / "home", allow_page=False)
    text = outcome(tmp_path / "profile", s.page_url("text/plain"))
    assert text.startswith("rejected: TypeError"), text
    assert s.seen == [Seen("POST", "/v1/chat/completions", s.page_origin, 403)]
    assert s.backend.calls == []


def test_allow_listed_origin_gets_the_answer(run_app: RunApp, tmp_path: Path) -> None:
    s = start(run_app, tmp_path / "home", allow_page=True)
    text = outcome(tmp_path / "profile", s.page_url())
    assert text == f"answered 200: {s.answer}"
    assert s.backend.calls == [("chat", "fake-model")]
    assert s.seen == [Seen("OPTIONS", "/v1/chat/completions", s.page_origin, 204),
                      Seen("POST", "/v1/chat/completions", s.page_origin, 200)]
