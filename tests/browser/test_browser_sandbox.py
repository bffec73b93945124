"""The browser sandbox in a real headless Chromium: ``li.sandbox.run`` runs the same
CPython and MicroPython .wasm the Python sandbox pins, in a worker served with
``connect-src 'none'``. The walls are checked from inside the guest (files, escapes,
sockets) and from the worker's own JavaScript (fetch, WebSocket, XHR, EventSource), with a
loopback probe that counts every TCP connection it accepts."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localinfer.sandbox.runtimes import RUNTIMES
from tests.browser.harness import NewPage, Recorder, static_site
from tests.gateway_harness import RunApp, gateway_app


def _installed() -> bool:
    try:
        return all(r.path().is_file() for r in RUNTIMES.values())
    except Exception:
        return False


pytestmark = [pytest.mark.integration, pytest.mark.browser,
              pytest.mark.skipif(not _installed(), reason="needs the sandbox extra")]

RUN = """async ([code, opts]) => {
  const r = await window.li.sandbox.run(code, opts);
  const dec = new TextDecoder();
  const files = Object.fromEntries(Object.entries(r.files).map(([k, v]) => [k, dec.decode(v)]));
  return { ...r, files, stats: JSON.parse(JSON.stringify(window.li.sandbox.stats)) };
}"""


class Probe:
    """A loopback TCP listener that counts every connection it accepts and answers each
    with an empty HTTP 204 (so a page's control fetch completes)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.hits = 0
        self.requests: list[bytes] = []  # each connection's first bytes, for messages
        self.lock = threading.Lock()
        self.seen = threading.Condition(self.lock)
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self.seen:
                self.hits += 1
                self.seen.notify_all()
            try:
                conn.settimeout(5)
                self.requests.append(conn.recv(65536).split(b"\r\n", 1)[0])
                conn.sendall(b"HTTP/1.1 204 No Content\r\nAccess-Control-Allow-Origin: *\r\n"
                             b"Content-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            finally:
                conn.close()

    def wait_for(self, n: int, timeout: float = 60.0) -> int:
        with self.seen:
            self.seen.wait_for(lambda: self.hits >= n, timeout)
            return self.hits

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def probe() -> Iterator[Probe]:
    p = Probe()
    yield p
    p.close()


@pytest.fixture
def gateway(run_app: RunApp, tmp_path: Path, probe: Probe) -> str:
    # The probe is a configured remote, so the *page's* CSP allows it (a positive control
    # that what stops the worker is the worker's own policy); with no consent given the
    # gateway never contacts it (a configured *server* would be probed by discovery).
    return run_app(gateway_app(tmp_path / "home", [], embedded=False, remotes={
        "probe": {"base_url": f"{probe.url}/v1", "key_env": "LOCALINFER_TEST_PROBE_KEY"}}))


def open_sdk(new_page: NewPage, gateway: str) -> Any:
    page = new_page()
    page.goto(f"{gateway}/ui/manifest.json")  # any document under /ui/ and its CSP
    page.evaluate("""async () => {
      const { LocalInfer } = await import('/ui/localinfer.js');
      window.li = await LocalInfer.connect({ gateway: null, servers: [], browser: false });
    }""")
    return page


def run(page: Any, code: str, **opts: Any) -> dict[str, Any]:
    result: dict[str, Any] = page.evaluate(RUN, [code, opts])
    return result


@pytest.mark.parametrize("runtime", ["python", "micropython"])
def test_print_works_and_files_come_back(new_page: NewPage, gateway: str, runtime: str) -> None:
    page = open_sdk(new_page, gateway)
    code = ("import sys\nprint('hello from', sys.platform)\nprint(open('in.txt').read())\n"
            "f = open('out.txt', 'w')\nf.write('written')\nf.close()\n"
            "sys.stderr.write('to stderr\\n')\n")
    r = run(page, code, runtime=runtime, files={"in.txt": "given file"})
    assert r["exitCode"] == 0 and r["error"] is None, r
    assert r["stdout"].startswith("hello from ")
    assert "given file" in r["stdout"]
    assert r["stderr"] == "to stderr\n"
    assert r["files"] == {"out.txt": "written"}
    assert r["runtime"] == runtime and r["compiled"] is True
    again = run(page, "print(6 * 7)", runtime=runtime)
    assert again["stdout"] == "42\n" and again["compiled"] is False
    assert again["stats"]["workersStarted"] == 1  # the warm worker ran both


def test_runtime_is_fetched_once_per_profile_and_compiled_once_per_page(
        new_page: NewPage, run_app: RunApp, tmp_path: Path) -> None:
    recorder = Recorder()
    gateway = run_app(recorder.wrap(gateway_app(tmp_path / "home", [], embedded=False)))
    python = RUNTIMES["python"]
    first = open_sdk(new_page, gateway)
    run(first, "print(1)")
    run(first, "print(2)", timeout=1, memory="256M")
    assert recorder.bytes_under("/ui/sandbox/") == python.size  # one download, one compile
    assert first.evaluate("Object.keys(window.li.sandbox.stats.compileMs)") == ["python"]
    first.close()
    second = open_sdk(new_page, gateway)  # same profile: the immutable file is cached
    assert run(second, "print(3)")["stdout"] == "3\n"
    assert recorder.bytes_under("/ui/sandbox/") == python.size
    assert [p for p in recorder.paths() if p.startswith("/ui/sandbox/")] == [
        f"/ui/sandbox/python-{python.sha256}.wasm"]


def test_a_tampered_or_missing_runtime_is_never_compiled(new_page: NewPage,
                                                         gateway: str) -> None:
    page = open_sdk(new_page, gateway)
    micro = RUNTIMES["micropython"]
    original = Path(micro.path()).read_bytes()
    tampered = original[:-1] + bytes([original[-1] ^ 1])
    page.route(f"**/ui/sandbox/micropython-{micro.sha256}.wasm",
               lambda route: route.fulfill(status=200, body=tampered,
                                           headers={"content-type": "application/wasm"}))
    error = page.evaluate("""async () => {
      try { await window.li.sandbox.run('print(1)', { runtime: 'micropython' }); return null; }
      catch (err) {
        return [err.code, err.message, Object.keys(window.li.sandbox.stats.compileMs)];
      }
    }""")
    assert error is not None and error[0] == "integrity_error", error
    assert "does not match its pinned sha256" in error[1] and error[2] == []
    page.unroute(f"**/ui/sandbox/micropython-{micro.sha256}.wasm")
    missing = page.evaluate("""async () => {
      const { BrowserSandbox } = await import('/ui/localinfer.js');
      const sb = new BrowserSandbox({ workerUrl: '/ui/sandbox-worker.js',
                                      runtimeBase: new URL('/ui/elsewhere/', location.href).href });
      try { await sb.run('print(1)'); return null; } catch (err) { return err.code; }
    }""")
    assert missing == "sandbox_unavailable"
    # The real file still works afterwards: a failed load is not cached.
    assert run(page, "print(1)", runtime="micropython")["stdout"] == "1\n"


def test_only_given_files_are_visible_and_escapes_fail(new_page: NewPage, gateway: str) -> None:
    page = open_sdk(new_page, gateway)
    code = """
import os
def attempt(label, fn):
    try:
        fn()
        print(label, 'OPENED')
    except Exception as exc:
        print(label, 'refused', type(exc).__name__)
print('work', sorted(os.listdir('/work')), sorted(os.listdir('/work/sub')))
print('read', open('/work/sub/b.txt').read(), open('a.txt').read())
attempt('passwd', lambda: open('/etc/passwd').read())
attempt('dotdot', lambda: open('../etc/passwd').read())
attempt('deep', lambda: open('sub/../../../etc/passwd').read())
print('root', sorted(os.listdir('/')))
attempt('parent', lambda: os.listdir('..'))
attempt('write-outside', lambda: open('/tmp/x', 'w').write('x'))
print('env', dict(os.environ))
"""
    r = run(page, code, files={"a.txt": "A", "sub/b.txt": "B"})
    assert r["exitCode"] == 0, r
    lines = r["stdout"].splitlines()
    assert "work ['a.txt', 'sub'] ['b.txt']" in lines
    assert "read B A" in lines
    # "/" resolves into the guest's own scratch directory (as under wasmtime): no host file.
    assert "root ['a.txt', 'sub']" in lines
    for label in ("passwd", "dotdot", "deep", "parent", "write-outside"):
        assert any(line.startswith(f"{label} refused") for line in lines), (label, lines)
    assert "OPENED" not in r["stdout"]
    assert "env {}" in lines  # an empty environment, as in Python


def test_bad_file_names_are_refused_before_running(new_page: NewPage, gateway: str) -> None:
    page = open_sdk(new_page, gateway)
    for name in ("../x", "/etc/passwd", "a/../../b", ""):
        error = page.evaluate("""async (name) => {
          try { await window.li.sandbox.run('print(1)', { files: { [name]: 'x' } }); return null; }
          catch (err) { return err.code + ': ' + err.message; }
        }""", name)
        assert error is not None and error.startswith("bad_request: "), (name, error)


def test_no_connection_from_the_guest_or_the_worker(new_page: NewPage, gateway: str,
                                                     probe: Probe) -> None:
    page = open_sdk(new_page, gateway)
    port = int(probe.url.rsplit(":", 1)[1])
    guest = f"""
import socket
try:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.connect(('127.0.0.1', {port}))
    print('CONNECTED')
except Exception as exc:
    print('refused', type(exc).__name__)
try:
    import urllib.request
    urllib.request.urlopen('{probe.url}/from-guest', timeout=5)
    print('FETCHED')
except Exception as exc:
    print('refused', type(exc).__name__)
"""
    r = run(page, guest)
    assert r["exitCode"] == 0, r
    assert "CONNECTED" not in r["stdout"] and "FETCHED" not in r["stdout"]
    assert r["stdout"].count("refused") == 2
    micro = run(page, "import socket\ntry:\n s = socket.socket()\n print('SOCKET')\n"
                "except Exception as e:\n print('refused', type(e).__name__)\n",
                runtime="micropython")
    assert "SOCKET" not in micro["stdout"], micro

    # Code in the worker itself (as if the shim were subverted): every way out is refused.
    worker = next(w for w in page.workers if "sandbox-worker.js" in w.url)
    outcomes = worker.evaluate("""async (url) => {
      const out = {};
      try { await fetch(url + '/from-worker', { mode: 'no-cors' }); out.fetch = 'SENT'; }
      catch (e) { out.fetch = 'refused'; }
      try { await fetch('data:text/plain,x'); out.data = 'SENT'; }
      catch (e) { out.data = 'refused'; }
      out.ws = await new Promise((resolve) => {
        try {
          const ws = new WebSocket(url.replace('http', 'ws') + '/ws');
          ws.onopen = () => resolve('SENT');
          ws.onerror = () => resolve('refused');
        } catch (e) { resolve('refused'); }
      });
      out.xhr = await new Promise((resolve) => {
        const xhr = new XMLHttpRequest();
        try {
          xhr.open('GET', url + '/xhr');
          xhr.onload = () => resolve('SENT');
          xhr.onerror = () => resolve('refused');
          xhr.send();
        } catch (e) { resolve('refused'); }
      });
      out.sse = await new Promise((resolve) => {
        try {
          const es = new EventSource(url + '/sse');
          es.onopen = () => resolve('SENT');
          es.onerror = () => { es.close(); resolve('refused'); };
        } catch (e) { resolve('refused'); }
      });
      try { new Worker(url + '/w.js'); out.worker = 'SENT'; }
      catch (e) { out.worker = 'refused'; }
      try { await import(url + '/m.js'); out.import = 'SENT'; }
      catch (e) { out.import = 'refused'; }
      return out;
    }""", probe.url)
    assert outcomes == {k: "refused" for k in
                        ("fetch", "data", "ws", "xhr", "sse", "worker", "import")}, outcomes
    assert probe.hits == 0, probe.requests  # every attempt above has settled
    assert page.evaluate("window.li.sandbox.networkWall()") == "blocked"
    # Control: the page (its CSP lists the probe) does reach it, so the probe works and
    # what stopped the worker was the worker's own policy.
    page.evaluate("(url) => fetch(url + '/from-page').then((r) => r.status)", probe.url)
    assert probe.wait_for(1) == 1, probe.requests
    time.sleep(0.5)  # a late stray connection would show up as a second hit
    assert probe.requests == [b"GET /from-page HTTP/1.1"]


def test_works_from_a_static_export_whose_host_sends_no_csp(
        new_page: NewPage, run_app: RunApp, export_dir_no_models: Path) -> None:
    """`web export` copies the runtimes; a plain static host runs them, but without the
    gateway's headers the worker's network wall is not there, and the SDK says so."""
    site = run_app(static_site(export_dir_no_models))
    page = new_page()
    page.goto(f"{site}/manifest.json")
    page.evaluate("""async () => {
      const { LocalInfer } = await import('/localinfer.js');
      window.li = await LocalInfer.connect({ gateway: null, servers: [], browser: false });
    }""")
    for runtime in ("micropython", "python"):
        r = run(page, "print('static', 6 * 7)", runtime=runtime)
        assert r["stdout"] == "static 42\n" and r["exitCode"] == 0, r
    assert page.evaluate("window.li.sandbox.networkWall()") == "open"


@pytest.mark.parametrize("code", [
    "print('before', flush=True)\nwhile True:\n    pass\n",
    "import time\nprint('before', flush=True)\ntime.sleep(60)\n",
])
def test_deadline_ends_the_run_and_the_next_one_works(new_page: NewPage, gateway: str,
                                                        code: str) -> None:
    page = open_sdk(new_page, gateway)
    page.evaluate("() => window.li.sandbox.prewarm('python')")
    r = run(page, code, timeout=2)
    assert r["error"] == "timeout" and r["exitCode"] is None, r
    assert 2.0 <= r["wallSeconds"] < 30, r
    assert r["stdout"] == "before\n"  # what it printed before the deadline is kept
    assert r["stats"]["terminated"] == 1
    after = run(page, "print('alive')")
    assert after["stdout"] == "alive\n" and after["error"] is None
    assert after["stats"]["workersStarted"] == 2  # a fresh worker after the terminate


def test_memory_cap_is_a_memory_error_in_the_guest(new_page: NewPage, gateway: str) -> None:
    page = open_sdk(new_page, gateway)
    r = run(page, "b = bytearray(600 * 1024 * 1024)\nprint('ALLOCATED')\n", memory="256M")
    assert r["error"] == "memory", r
    assert "MemoryError" in r["stderr"] and "ALLOCATED" not in r["stdout"]
    assert r["memoryBytes"] <= 256 * 1024 * 1024
    small = run(page, "b = bytearray(64 * 1024 * 1024)\nprint(len(b))\n", memory="256M")
    assert small["stdout"] == f"{64 * 1024 * 1024}\n" and small["error"] is None


def test_disk_cap_stops_writes_and_says_disk(new_page: NewPage, gateway: str) -> None:
    page = open_sdk(new_page, gateway)
    code = ("chunk = b'x' * (1 << 20)\nwith open('big.bin', 'wb') as f:\n"
            "    for i in range(40):\n        f.write(chunk)\nprint('WROTE')\n")
    r = run(page, code, disk="16M")
    assert r["error"] == "disk", r
    assert "WROTE" not in r["stdout"] and "OSError" in r["stderr"]
    assert len(r["files"].get("big.bin", "")) <= 16 * 1024 * 1024
    fits = run(page, code.replace("40", "4"), disk="16M")
    assert fits["error"] is None and fits["stdout"] == "WROTE\n"


PROGRAM = """
import hashlib, json, os, sys
nums = [int(x) for x in open('nums.txt').read().split()]
os.makedirs('out', exist_ok=True)
with open('out/result.json', 'w') as f:
    json.dump({'sum': sum(nums), 'max': max(nums)}, f, sort_keys=True)
print(sys.argv[1:], sorted(os.listdir('.')), dict(os.environ))
print(hashlib.sha256(b'localinfer').hexdigest()[:16], sum(nums) / len(nums))
print('warning', file=sys.stderr)
sys.exit(3)
"""


@pytest.mark.slow
def test_same_result_as_the_python_sandbox(new_page: NewPage, gateway: str) -> None:
    from localinfer import sandbox

    files = {"nums.txt": "3 1 4 1 5 9 2 6"}
    with sandbox.Sandbox(warm=0) as sb:
        cases = [(PROGRAM, "python"), ("print(sum(range(10)))\n1/0\n", "python"),
                 ("print([x * x for x in range(5)])\n", "micropython")]
        native = [sb.run(code, files=files, timeout=120, runtime=rt) for code, rt in cases]
    page = open_sdk(new_page, gateway)
    for (code, rt), py in zip(cases, native, strict=True):
        js = run(page, code, files=files, runtime=rt)
        assert js["exitCode"] == py.exit_code, (rt, js, py)
        assert js["stdout"] == py.stdout.decode(), rt
        assert js["stderr"] == py.stderr.decode(), rt
        assert js["error"] == py.error
        assert js["files"] == {k: v.decode() for k, v in py.files.items()}
