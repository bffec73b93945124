"""The `chrome-builtin` engine: the browser's own model through the Prompt API
(`LanguageModel`), chosen after a local server and before a download into the page.

Debian's headless Chromium here exposes the real `LanguageModel` and answers
`availability()` with "unavailable" (no model on this machine): that real path, ending in
wllama answering, is tested in test_browser_tier.py
(`test_gateway_without_a_chat_backend_runs_the_model_in_the_page`). Every other state is
tested here through a stub (tests/browser/prompt_api_stub.js) injected with
`page.add_init_script`, which follows the published API shape (the Prompt API IDL and
MDN's LanguageModel pages); `test_the_stub_has_the_shape_of_chromiums_language_model`
checks that shape against Chromium's own `LanguageModel`. Every server is on 127.0.0.1.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from tests.browser.harness import NewPage, Recorder
from tests.support.browser_page import app_state, ask, wait_answers

pytestmark = [pytest.mark.integration, pytest.mark.browser]

STUB = (Path(__file__).parent / "prompt_api_stub.js").read_text()
PIECES = ["Hello", " from", " the", " browser's", " own", " model."]
MODEL = "smollm2-135m-instruct"

# The page's side of every test: connect with no local server (the static site is no
# gateway, nothing else is asked), record disclosures and progress, answer the
# disclosures from `window.__answers` (kind -> yes/no; no by default).
CONNECT = """async (opts) => {
  const { LocalInfer } = await import('/localinfer.js');
  window.__disclosures = []; window.__progress = [];
  window.__answers = opts.answers ?? {};
  window.li = await LocalInfer.connect({ gateway: null, servers: [], engines: opts.engines,
    onDisclose: (d) => {
      const kind = d.kind ?? 'chat';
      window.__disclosures.push({ ...d, kind,
        creates_so_far: window.__promptApiStub?.log.create.length ?? null });
      return Boolean(window.__answers[kind]);
    },
    onProgress: (p) => window.__progress.push(p) });
  return true;
}"""

# One request: the reply (or the error's code and message) and every chunk of a stream.
CHAT = """async (params) => {
  try {
    const r = await window.li.chat.completions.create(params);
    if (!params.stream) return { reply: JSON.parse(JSON.stringify(r)) };
    const chunks = [];
    for await (const c of r) chunks.push(c);
    return { tier: r.tier, backend: r.backend, chunks };
  } catch (e) {
    return { error: { code: e.code ?? e.name, message: e.message, tokens: e.tokens ?? null,
      limit: e.limit ?? null } };
  }
}"""


def site_app(site: Path) -> Starlette:
    """The exported site plus a blank page to run the SDK in (the demo app would connect
    and ask the stub by itself)."""
    async def blank(_: Any) -> HTMLResponse:
        return HTMLResponse("<!doctype html><title>blank</title>")
    return Starlette(routes=[Route("/blank.html", blank),
                             Mount("/", StaticFiles(directory=site, html=True))])


def open_page(new_page: NewPage, site: str, stub: dict[str, Any] | None,
              engines: list[str] | None = None,
              answers: dict[str, bool] | None = None) -> Any:
    """A page on ``site`` with the stub (``stub`` is its configuration; None: the
    browser's own LanguageModel), connected."""
    page = new_page()
    if stub is not None:
        page.add_init_script(script=f"window.__PROMPT_API_STUB__ = {json.dumps(stub)};\n{STUB}")
    page.goto(f"{site}/blank.html")
    page.evaluate(CONNECT, {"engines": engines, "answers": answers or {}})
    return page


def chat(page: Any, **params: Any) -> dict[str, Any]:
    params.setdefault("messages", [{"role": "user", "content": "Hello?"}])
    result: dict[str, Any] = page.evaluate(CHAT, params)
    return result


def stub_log(page: Any) -> dict[str, Any]:
    found: dict[str, Any] = page.evaluate("JSON.parse(JSON.stringify(window.__promptApiStub.log))")
    return found


def disclosures(page: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("window.__disclosures")
    return found


@pytest.fixture
def site(run_app: Any, export_dir: Path) -> tuple[str, Recorder]:
    recorder = Recorder()
    return run_app(recorder.wrap(site_app(export_dir))), recorder


# -- the stub against the real thing ---------------------------------------------------------

SHAPE = """() => {
  const LM = globalThis.LanguageModel;
  if (typeof LM !== 'function') return null;
  const kinds = (o) => Object.fromEntries(Object.getOwnPropertyNames(o)
    .filter((k) => !['length', 'name', 'prototype', 'constructor'].includes(k))
    .map((k) => { const d = Object.getOwnPropertyDescriptor(o, k);
      return [k, d.get ? `get${d.set ? '+set' : ''}` : typeof d.value]; }));
  return { statics: kinds(LM), proto: kinds(LM.prototype),
    parent: Object.getPrototypeOf(LM.prototype) === EventTarget.prototype,
    constructible: (() => { try { new LM(); return true; } catch (e) { return e.name; } })() };
}"""


def test_the_stub_has_the_shape_of_chromiums_language_model(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    real_page = open_page(new_page, url, None)
    real = real_page.evaluate(SHAPE)
    if real is None:
        pytest.skip("this Chromium exposes no LanguageModel: nothing to compare the stub with")
    # This machine's Chromium: the real API, no model to run.
    assert real_page.evaluate("LanguageModel.availability()") in {
        "unavailable", "downloadable", "downloading", "available"}
    stub_page = open_page(new_page, url, {"params": None})
    stubbed = stub_page.evaluate(SHAPE)
    assert stubbed == real, (stubbed, real)
    # The methods the engine uses are there in both (params only where Chromium has it).
    assert {"availability": "function", "create": "function"}.items() <= real["statics"].items()
    for name in ("prompt", "promptStreaming", "measureContextUsage", "destroy", "clone", "append"):
        assert real["proto"][name] == "function", name
    for name in ("contextUsage", "contextWindow"):
        assert real["proto"][name] == "get", name
    assert real["proto"]["oncontextoverflow"] == "get+set"
    assert real["parent"] is True and real["constructible"] == "TypeError"
    if "params" in real["statics"]:  # an extension context, or a later Chromium
        with_params = open_page(new_page, url, {"params": {"defaultTopK": 3, "maxTopK": 8,
                                                           "defaultTemperature": 1,
                                                           "maxTemperature": 2}})
        assert with_params.evaluate(SHAPE)["statics"] == real["statics"]


# -- the states --------------------------------------------------------------------------------

def test_available_answers_at_once_on_the_device_sensitive_too(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, recorder = site
    page = open_page(new_page, url, {"availability": "available"})
    status = page.evaluate("li.status()")
    assert status["browser"]["available"] is True
    assert status["browser"]["engine"] == "chrome-builtin"
    assert status["browser"]["builtin"]["state"] == "available"
    assert status["browser"]["engines"] == ["builtin", "wllama"]
    result = chat(page, sensitive=True)
    reply = result["reply"]
    assert (reply["tier"], reply["backend"]) == ("browser", "chrome-builtin")
    assert reply["choices"][0]["message"]["content"] == "".join(PIECES)
    assert reply["choices"][0]["finish_reason"] == "stop"
    usage = reply["usage"]
    assert usage["prompt_tokens"] == 1 and usage["completion_tokens"] > 0
    assert disclosures(page) == []  # nothing to download: nothing asked
    log = stub_log(page)
    assert len(log["create"]) == 1 and log["create"][0]["signal"] is True
    assert log["destroyed"] == log["sessions"] == 1
    # Nothing of wllama was fetched: no engine worker, no model bytes.
    assert "/engine-worker.js" not in recorder.paths()
    assert recorder.bytes_under("/models/") == 0
    assert not [p for p in recorder.paths() if p.startswith("/vendor/")]


@pytest.mark.parametrize("state", ["downloadable", "downloading"])
def test_a_browser_download_is_disclosed_and_created_only_after_yes(
        site: tuple[str, Recorder], new_page: NewPage, state: str) -> None:
    url, recorder = site
    page = open_page(new_page, url, {"availability": state}, answers={"builtin": True})
    result = chat(page, stream=True)
    assert (result["tier"], result["backend"]) == ("browser", "chrome-builtin")
    assert "".join(c["choices"][0]["delta"].get("content", "") for c in result["chunks"]) \
        == "".join(PIECES)
    [asked] = disclosures(page)
    assert asked == {"kind": "builtin", "model": "chrome-builtin", "state": state, "bytes": None,
                     "size": "unknown, managed by the browser", "managed_by": "browser",
                     "creates_so_far": 0}
    log = stub_log(page)
    assert log["downloads"] == 1 and log["create"][0]["monitor"] == "function"
    progress = page.evaluate("window.__progress")
    assert [(p["phase"], p["done"], p["total"], p["kind"]) for p in progress] == [
        ("download", 0, 1, "builtin"), ("download", 0.5, 1, "builtin"),
        ("download", 1, 1, "builtin")]
    # Now available: the next request is answered without asking again.
    assert chat(page)["reply"]["backend"] == "chrome-builtin"
    assert len(disclosures(page)) == 1
    assert recorder.bytes_under("/models/") == 0


def test_a_declined_browser_download_hands_on_to_wllama_and_is_not_asked_again(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, recorder = site
    page = open_page(new_page, url, {"availability": "downloadable"},
                     answers={"builtin": False, "chat": False})
    result = chat(page)
    assert result["error"]["code"] == "no_backend"
    assert "declined" in result["error"]["message"]
    # The builtin question first, then wllama's own (declined too): nothing created or fetched.
    assert [(d["kind"], d["model"]) for d in disclosures(page)] == [
        ("builtin", "chrome-builtin"), ("chat", MODEL)]
    assert stub_log(page)["create"] == []
    assert recorder.bytes_under("/models/") == 0
    status = page.evaluate("li.status()")
    assert status["browser"]["builtin"]["disclosed"] is False
    assert status["browser"]["engine"] == "wllama"
    assert chat(page)["error"]["code"] == "no_backend"
    assert len(disclosures(page)) == 2  # neither asked again in this page's life


def test_no_language_model_global_leaves_the_request_to_wllama(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    page = new_page()
    page.add_init_script(script="delete globalThis.LanguageModel;")
    page.goto(f"{url}/blank.html")
    page.evaluate(CONNECT, {"answers": {}})
    assert page.evaluate("typeof LanguageModel") == "undefined"
    assert page.evaluate("li.status()")["browser"]["builtin"]["state"] == "absent"
    result = chat(page)
    assert result["error"]["code"] == "no_backend"
    assert "no Prompt API" in result["error"]["message"]
    assert [d["kind"] for d in disclosures(page)] == ["chat"]  # wllama's question


def test_a_session_the_browser_refuses_hands_the_request_on(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    page = open_page(new_page, url, {"createError": {"name": "NotAllowedError",
                                                     "message": "needs user activation"}})
    result = chat(page)
    assert result["error"]["code"] == "no_backend"
    assert "NotAllowedError: needs user activation" in result["error"]["message"]
    assert [d["kind"] for d in disclosures(page)] == ["chat"]


# -- messages, streaming, abort, schema, overflow ---------------------------------------------

def test_system_and_earlier_turns_go_to_initial_prompts(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    page = open_page(new_page, url, {})
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "My name is Ada."},
                {"role": "assistant", "content": "Hello Ada."},
                {"role": "system", "content": "Answer in English."},
                {"role": "user", "content": "What is my name?"}]
    assert chat(page, messages=messages)["reply"]["backend"] == "chrome-builtin"
    log = stub_log(page)
    assert log["create"][0]["initialPrompts"] == [
        {"role": "system", "content": "Be brief.\n\nAnswer in English."},
        {"role": "user", "content": "My name is Ada."},
        {"role": "assistant", "content": "Hello Ada."}]
    assert log["prompts"][0]["input"] == "What is my name?"


def test_streaming_stops_on_abort_and_on_max_tokens(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    pieces = [f" w{i}" for i in range(400)]
    page = open_page(new_page, url, {"pieces": pieces, "pieceDelayMs": 25})
    # Stopped by the caller after the first piece: the answer ends where it was.
    stopped = page.evaluate("""async () => {
      const s = await li.chat.completions.create({ stream: true,
        messages: [{ role: 'user', content: 'Count.' }] });
      const chunks = [];
      for await (const c of s) { chunks.push(c); if (chunks.length === 1) s.abort(); }
      return { n: chunks.length, last: chunks.at(-1), aborted: s.controller.signal.aborted };
    }""")
    assert stopped["aborted"] is True and 1 <= stopped["n"] < len(pieces)
    assert stopped["last"]["choices"][0]["finish_reason"] == "stop"
    # An AbortSignal already aborted: nothing is created.
    pre = page.evaluate("""async () => { const c = new AbortController(); c.abort();
      try { await li.chat.completions.create({ signal: c.signal,
        messages: [{ role: 'user', content: 'Hi' }] }); return null; }
      catch (e) { return e.code; } }""")
    assert pre == "aborted"
    # max_tokens: counted in streamed pieces, then `length`.
    capped = chat(page, max_tokens=5)["reply"]
    assert capped["choices"][0]["finish_reason"] == "length"
    assert capped["choices"][0]["message"]["content"] == "".join(pieces[:5])
    page.wait_for_function("() => window.__promptApiStub.log.destroyed === 2")
    log = stub_log(page)
    assert log["aborted"] + log["cancelled"] >= 2  # both streams ended in the browser
    assert log["sessions"] == log["destroyed"] == 2
    assert log["create"][0]["signal"] and log["prompts"][0]["signal"]


def test_a_json_schema_becomes_the_response_constraint(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    page = open_page(new_page, url, {})
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                                "population": {"type": "integer"}},
              "required": ["city", "population"]}
    reply = chat(page, response_format={"type": "json_schema",
                                        "json_schema": {"name": "city", "schema": schema}})["reply"]
    assert json.loads(reply["choices"][0]["message"]["content"]) == {"city": "stub",
                                                                     "population": 1}
    assert chat(page, response_format={"type": "json_object"})["reply"]["backend"] \
        == "chrome-builtin"
    log = stub_log(page)
    assert [p["responseConstraint"] for p in log["prompts"]] == [schema, {"type": "object"}]


def test_context_overflow_is_context_length_exceeded(
        site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    page = open_page(new_page, url, {"contextWindow": 20})
    long = " ".join(["word"] * 30)
    # A conversation too long for the window: create() rejects (QuotaExceededError).
    history = chat(page, messages=[{"role": "user", "content": long},
                                   {"role": "assistant", "content": "ok"},
                                   {"role": "user", "content": "And?"}])["error"]
    assert history["code"] == "context_length_exceeded"
    assert (history["tokens"], history["limit"]) == (31, 20)
    assert "maximum context length is 20 tokens" in history["message"]
    # A prompt that cannot fit at all: the prompt rejects (QuotaExceededError).
    prompt = chat(page, messages=[{"role": "user", "content": long}])["error"]
    assert (prompt["code"], prompt["tokens"], prompt["limit"]) == (
        "context_length_exceeded", 30, 20)
    # Earlier turns the browser would drop to fit (`contextoverflow`): an error too, never
    # an answer that silently forgot them.
    dropped = chat(page, messages=[{"role": "user", "content": " ".join(["w"] * 12)},
                                   {"role": "assistant", "content": "ok"},
                                   {"role": "user", "content": " ".join(["q"] * 10)}])["error"]
    assert dropped["code"] == "context_length_exceeded"
    log = stub_log(page)
    assert log["overflows"] == 1
    assert log["sessions"] == log["destroyed"] == 2
    assert disclosures(page) == []  # the answer, not a reason to try wllama


def test_engines_chooses_the_order(site: tuple[str, Recorder], new_page: NewPage) -> None:
    url, _ = site
    page = open_page(new_page, url, {}, engines=["wllama", "builtin"])
    reply = chat(page)["reply"]
    assert reply["backend"] == "chrome-builtin"
    assert [d["kind"] for d in disclosures(page)] == ["chat"]  # wllama was asked first
    assert page.evaluate("li.status()")["browser"]["engines"] == ["wllama", "builtin"]
    only = open_page(new_page, url, {"availability": "unavailable"}, engines=["builtin", "webllm"])
    result = chat(only)
    assert result["error"]["code"] == "no_backend"
    assert "webllm: not bundled in this build" in result["error"]["message"]
    assert disclosures(only) == []  # wllama was not in the list
    bad = only.evaluate("""async () => { const { LocalInfer } = await import('/localinfer.js');
      try { await LocalInfer.connect({ gateway: null, servers: [], engines: ['gpt'] }); }
      catch (e) { return e.code; } return null; }""")
    assert bad == "invalid_options"


def test_the_demo_app_discloses_the_browsers_download_and_names_the_engine(
        site: tuple[str, Recorder], refused_url: str, new_page: NewPage) -> None:
    url, recorder = site
    page = new_page()
    page.add_init_script(script="window.__PROMPT_API_STUB__ = {availability: 'downloadable'};\n"
                         + STUB)
    page.goto(f"{url}/?gateway={refused_url}&servers=none")
    page.wait_for_selector("#tier[data-tier=browser]")
    assert "browser's own model" in page.inner_text("#tier")
    ask(page, "Hello?")
    page.wait_for_selector("#disclose[open]")
    assert page.get_attribute("#disclose-facts", "data-kind") == "builtin"
    assert "unknown, managed by the browser" in page.inner_text("#disclose-facts")
    assert stub_log(page)["create"] == []
    page.click("#disclose-yes")
    wait_answers(page, 1)
    state = app_state(page)
    assert state["errors"] == []
    reply = state["replies"][0]
    assert (reply["tier"], reply["backend"], reply["content"]) == (
        "browser", "chrome-builtin", "".join(PIECES))
    assert "answered by browser · chrome-builtin" in page.inner_text(".msg.assistant")
    assert recorder.bytes_under("/models/") == 0
    assert "/engine-worker.js" not in recorder.paths()
