"""The demo page as a chat people keep open: conversations kept in IndexedDB and listed
(survive a reload, delete one, delete all, "Clear everything"), answers rendered as
Markdown by lib/markdown.js with hostile answers shown as text, the keyboard (Enter sends,
Shift+Enter breaks a line, Escape stops), and the model panel saying which engine
answered and why.

The answers come from the scripted FakeBackend behind a real gateway (or, for the hostile
answer, from a FakeRemote acting as a local server for the exported site, which has no CSP
to hide a renderer bug): no model runs in the page. Every server is on 127.0.0.1.
``LOCALINFER_TEST_SCREENSHOTS=1`` writes each state's screenshot into docs/img/ (shown in
docs/browser.md).
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from localinfer.types import ModelInfo
from tests.browser.harness import FakeRemote, NewPage, Recorder, static_site
from tests.fake_backend import FakeBackend, Script
from tests.gateway_harness import RunApp, gateway_app
from tests.support.browser_page import app_state, ask

pytestmark = [pytest.mark.integration, pytest.mark.browser]

IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
SHOTS = os.environ.get("LOCALINFER_TEST_SCREENSHOTS") == "1"


def shot(page: Any, name: str) -> None:
    if SHOTS:
        IMG.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(IMG / name), full_page=True)


def wait_done(page: Any, n: int) -> None:
    """Until ``n`` answers or errors have ended since the page loaded."""
    page.wait_for_function(
        "n => localinferApp.replies.length + localinferApp.errors.length >= n", arg=n)
    page.wait_for_selector("body[data-state=idle]")


def titles(page: Any) -> list[str]:
    found: list[str] = page.eval_on_selector_all("#chat-list li .title",
                                                 "els => els.map(e => e.textContent)")
    return found


def stored(page: Any) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = page.evaluate("localinferApp.chats()")
    return found


def log(page: Any) -> list[tuple[str, str]]:
    found: list[list[str]] = page.eval_on_selector_all(
        "#log .msg", "ms => ms.map(m => [m.classList.contains('user') ? 'user' : 'assistant',"
        " m.querySelector('.body').textContent])")
    return [(role, text) for role, text in found]


def wait_until(check: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


# -- conversations: kept, listed, deleted one by one and all at once; "Clear everything" --

def test_conversations_survive_a_reload_and_are_deleted_one_by_one_or_all(
        run_app: RunApp, tmp_path: Path, new_page: NewPage) -> None:
    chat = FakeBackend("fake-local", tier="local")
    for chunks in (["Bees ", "dance."], ["Tea: ", "three minutes."], ["Then ", "they rest."]):
        chat.enqueue(Script(chunks=chunks))
    # The gateway's embeddings for the documents part ("Clear everything" removes them).
    embed = FakeBackend("fake-embed", tier="local", models=[
        ModelInfo(id="all-minilm-l6-v2", backend="fake-embed", tier="local",
                  capabilities=["embeddings"])])
    gateway = run_app(gateway_app(tmp_path / "home", [chat, embed]))
    page = new_page()
    page.goto(f"{gateway}/ui/?servers=none")
    page.wait_for_selector("#tier[data-tier=local]")
    page.wait_for_selector("body[data-state=idle]")
    assert titles(page) == [] and stored(page) == []

    ask(page, "How do bees talk?")
    wait_done(page, 1)
    page.click("#new-chat")
    assert log(page) == []
    ask(page, "How long does tea steep?")
    wait_done(page, 2)
    assert titles(page) == ["How long does tea steep?", "How do bees talk?"]

    page.reload()
    page.wait_for_selector("body[data-state=idle]")
    assert titles(page) == ["How long does tea steep?", "How do bees talk?"]
    # The most recent conversation is open again, its answer rendered as before.
    assert log(page) == [("user", "How long does tea steep?"),
                         ("assistant", "Tea: three minutes.")]
    assert "answered by local · fake-local" in page.inner_text("#log .msg.assistant .badge")
    shot(page, "chat-conversations.png")

    # Open the older one and go on with it: it moves to the top with all four turns.
    [bees] = [c for c in stored(page) if c["title"] == "How do bees talk?"]
    page.click(f"#chat-list li[data-id='{bees['id']}'] .open")
    assert log(page) == [("user", "How do bees talk?"), ("assistant", "Bees dance.")]
    ask(page, "And then?")
    wait_done(page, 1)
    assert titles(page)[0] == "How do bees talk?"
    [bees] = [c for c in stored(page) if c["id"] == bees["id"]]
    assert [(m["role"], m["content"]) for m in bees["messages"]] == [
        ("user", "How do bees talk?"), ("assistant", "Bees dance."),
        ("user", "And then?"), ("assistant", "Then they rest.")]
    assert bees["messages"][-1]["tier"] == "local"

    # Delete one: gone from the list and from IndexedDB, also after a reload.
    [tea] = [c for c in stored(page) if c["title"] == "How long does tea steep?"]
    page.click(f"#chat-list li[data-id='{tea['id']}'] .delete")
    page.wait_for_selector("#chats[data-count='1']")
    page.reload()
    page.wait_for_selector("body[data-state=idle]")
    assert titles(page) == ["How do bees talk?"]
    assert [c["id"] for c in stored(page)] == [bees["id"]]

    # Delete all asks first; Escape (or Cancel) keeps them.
    page.click("#delete-chats")
    page.wait_for_selector("#confirm[open]")
    page.keyboard.press("Escape")
    page.wait_for_selector("#confirm:not([open])", state="attached")
    assert len(stored(page)) == 1
    page.click("#delete-chats")
    page.click("#confirm-yes")
    page.wait_for_selector("#chats[data-count='0']")
    assert stored(page) == [] and log(page) == []
    page.reload()
    page.wait_for_selector("body[data-state=idle]")
    assert titles(page) == [] and stored(page) == []

    # "Clear everything": conversations, documents and cached models, in one go.
    ask(page, "One more?")
    wait_done(page, 1)
    report = page.evaluate("localinferApp.li.documents.add({ name: 'memo.md', "
                           "text: '# Memo\\n\\nThe boiler is serviced in May.\\n' })")
    assert report["added"] == ["memo.md"]
    page.evaluate("""async () => {
        const cache = await import('./lib/cache.js');
        const blob = new Blob(['not really a model']);
        const sha = await cache.sha256Hex(await blob.arrayBuffer());
        await cache.storeVerified('some-model', sha, blob);
    }""")
    assert [c["name"] for c in page.evaluate("localinferApp.li.cache.list()")] == ["some-model"]
    assert len(stored(page)) == 1
    page.click("#clear-all")
    page.wait_for_selector("#confirm[open]")
    assert "document" in page.inner_text("#confirm-text")
    page.click("#confirm-yes")
    page.wait_for_selector("body[data-cleared='1']")
    assert stored(page) == [] and titles(page) == []
    assert page.evaluate("localinferApp.li.documents.list()")["documents"] == []
    assert page.evaluate("localinferApp.li.cache.list()") == []
    assert page.get_attribute("#docs", "data-documents") == "0"
    assert app_state(page)["errors"] == []


# -- Markdown, and a hostile answer that must run nothing -------------------------------------

HOSTILE = """## Results

Here is **bold**, *emphasis*, `inline <b>code</b>` and a [safe link](http://127.0.0.1:9/ok).

- one <img src=x onerror="window.__pwned='img'">
- two <script>window.__pwned='script'</script>
  - nested [bad link](javascript:window.__pwned='js') and [vb](vbscript:msgbox(1))
  - [data link](data:text/html;base64,PHNjcmlwdD5wYXJlbnQuX19wd25lZD0nZGF0YSc8L3NjcmlwdD4=)

1. <iframe srcdoc="<script>parent.__pwned='iframe'</script>"></iframe>
2. <svg onload="window.__pwned='svg'"></svg> <a href="javascript:window.__pwned='a'">raw</a>

```html
<img src=x onerror="window.__pwned='code'">
```

> <details open ontoggle="window.__pwned='details'">quoted</details>
"""

ELEMENTS = "#log img, #log script, #log iframe, #log svg, #log details, #log b, #log object"

# An image the test adds after the answer: once its error fired, an <img src=x> from the
# answer would have fired its own (and been requested from the site).
SENTINEL = """() => new Promise((resolve) => { const img = new Image();
  img.onerror = img.onload = () => { img.remove(); resolve(true); };
  img.src = '/sentinel-' + Date.now() + '.png';
  document.body.append(img); })"""


def check_hostile_answer_is_text(page: Any, recorder: Recorder) -> None:
    assert page.evaluate(SENTINEL) is True
    assert page.evaluate("window.__pwned") is None
    assert page.evaluate(f"document.querySelectorAll({ELEMENTS!r}).length") == 0
    assert page.eval_on_selector_all("#log a", "as => as.map(a => a.href)") == [
        "http://127.0.0.1:9/ok"]
    assert not [p for p in recorder.paths() if p in ("/x", "/ok")]
    text = page.inner_text("#log .msg.assistant .body")
    for literal in ("<img src=x onerror=\"window.__pwned='img'\">",
                    "<script>window.__pwned='script'</script>",
                    "<img src=x onerror=\"window.__pwned='code'\">",
                    "<svg onload=\"window.__pwned='svg'\"></svg>"):
        assert literal in text, literal
    # The Markdown itself is rendered.
    assert page.inner_text("#log h2") == "Results"
    assert page.inner_text("#log strong") == "bold" and page.inner_text("#log em") == "emphasis"
    assert page.inner_text("#log p code") == "inline <b>code</b>"
    assert page.eval_on_selector_all("#log .body > ul > li", "ls => ls.length") == 2
    assert page.eval_on_selector_all("#log ul ul > li", "ls => ls.length") == 2
    assert page.eval_on_selector_all("#log ol > li", "ls => ls.length") == 2
    assert page.get_attribute("#log pre code", "data-lang") == "html"
    assert page.eval_on_selector_all("#log .unsafe-link", "s => s.map(e => e.textContent)") == [
        "bad link", "vb", "data link"]
    assert page.locator("#log blockquote").count() == 1


def test_a_hostile_answer_is_rendered_as_text_and_runs_nothing(
        run_app: RunApp, refused_url: str, export_dir: Path, new_page: NewPage) -> None:
    recorder = Recorder()
    site = run_app(recorder.wrap(static_site(export_dir)))  # no CSP: the renderer alone
    pieces = [HOSTILE[i:i + 7] for i in range(0, len(HOSTILE), 7)]  # half-written tags too
    server = FakeRemote(allow_origin=site, chunks=pieces)
    server_url = run_app(server.app())
    page = new_page()
    page.goto(f"{site}/?gateway={refused_url}&servers={server_url}")
    page.wait_for_selector("#tier[data-tier=local]")
    ask(page, "Show me some <b>markup</b>")
    wait_done(page, 1)
    assert app_state(page)["replies"][0]["content"] == HOSTILE
    assert page.inner_text("#log .msg.user .body") == "Show me some <b>markup</b>"
    check_hostile_answer_is_text(page, recorder)
    page.click("#log .unsafe-link")  # a link that was refused is plain text: nothing runs
    shot(page, "chat-markdown.png")
    # Read back from IndexedDB after a reload: rendered the same way, still inert.
    page.reload()
    page.wait_for_selector("body[data-state=idle]")
    check_hostile_answer_is_text(page, recorder)


# -- the keyboard --------------------------------------------------------------------------

def test_enter_sends_shift_enter_breaks_a_line_and_escape_stops(
        run_app: RunApp, tmp_path: Path, new_page: NewPage) -> None:
    backend = FakeBackend("fake-local", tier="local").enqueue(
        Script(chunks=[f"word{i} " for i in range(400)], delay=0.05))
    gateway = run_app(gateway_app(tmp_path / "home", [backend]))
    page = new_page()
    page.goto(f"{gateway}/ui/?servers=none")
    page.wait_for_selector("body[data-state=idle]")
    page.focus("#prompt")
    page.keyboard.press("Enter")  # nothing to send
    page.keyboard.type("line one")
    page.keyboard.press("Shift+Enter")
    page.keyboard.type("line two")
    # A send happens inside the key's own event: had Shift+Enter sent, it would show now.
    assert page.input_value("#prompt") == "line one\nline two"
    assert page.locator("#log .msg").count() == 0
    page.keyboard.press("Enter")
    page.wait_for_function("() => (document.querySelector('#log .msg.assistant .body')"
                           "?.textContent ?? '').length > 0")
    assert page.input_value("#prompt") == ""
    assert page.inner_text("#log .msg.user .body") == "line one\nline two"
    page.keyboard.press("Escape")
    wait_done(page, 1)
    reply = app_state(page)["replies"][0]
    assert reply["aborted"] is True and 0 < len(reply["content"].split()) < 400
    wait_until(lambda: backend.closed_streams == 1, "the backend's stream was not closed")
    [chat] = stored(page)
    assert chat["messages"][-1]["stopped"] is True
    assert chat["messages"][-1]["content"] == reply["content"]
    assert "stopped" in page.inner_text("#log .msg.assistant .badge")
    shot(page, "chat-stopped.png")


# -- the model panel: which engine answered, and why ----------------------------------------

def test_the_model_panel_says_the_local_server_answered_and_offers_the_page_model_as_a_choice(
        run_app: RunApp, tmp_path: Path, new_page: NewPage) -> None:
    backend = FakeBackend("fake-local", tier="local").enqueue(
        Script(chunks=["Answered ", "by the **gateway**."]))
    recorder = Recorder()
    gateway = run_app(recorder.wrap(gateway_app(tmp_path / "home", [backend])))
    page = new_page()
    page.goto(f"{gateway}/ui/?servers=none")
    page.wait_for_selector("body[data-state=idle]")
    assert "Your local server will answer" in page.inner_text("#engine-why")
    ask(page, "Who answers?")
    wait_done(page, 1)
    why = page.inner_text("#engine-why")
    assert why.startswith("Your local server answered (fake-local at "), why
    assert why.endswith("the in-page model is not needed."), why
    assert page.get_attribute("#engine-why", "data-tier") == "local"
    state = page.inner_text("#model-state")
    assert "not downloaded" not in state and "optional" in state, state
    assert "Not needed while your local server answers" in state
    # The in-page model is offered as a choice, not selected, and nothing of it was fetched.
    assert page.is_visible("#inpage-choice") and not page.is_checked("#use-inpage")
    assert "asked first" in page.inner_text("#inpage-choice")
    assert not [p for p in recorder.paths()
                if p.startswith(("/ui/vendor/", "/ui/models/")) or p == "/ui/engine-worker.js"]
    assert stored(page)[0]["messages"][-1]["why"] == why
    shot(page, "chat-local.png")

    # Chosen, it goes to the in-page tier only: the download is disclosed first (Escape is
    # that dialog's "not now"), and the local server is not asked.
    page.check("#use-inpage")
    ask(page, "Answer in the page, please.")
    page.wait_for_selector("#disclose[open]")
    assert page.get_attribute("#disclose-facts", "data-kind") == "chat"
    shot(page, "chat-inpage-choice.png")
    page.keyboard.press("Escape")
    wait_done(page, 2)
    [error] = app_state(page)["errors"]
    assert error["code"] == "no_backend" and "left out" in error["message"], error
    assert backend.calls == [("chat", "fake-model")]
    assert recorder.bytes_under("/ui/models/") == 0
    # The unanswered question is not kept; the conversation still has its first exchange.
    assert [m["content"] for m in stored(page)[0]["messages"]] == [
        "Who answers?", "Answered by the **gateway**."]
