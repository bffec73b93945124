"""Driving the demo app's page (localinfer.js's UI) from a browser test: its URL, asking
a question, waiting for answers, and reading the app's state."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

MODEL = "smollm2-135m-instruct"


def app_url(origin: str, path: str = "/", **query: Any) -> str:
    return f"{origin}{path}?{urlencode(query)}" if query else f"{origin}{path}"


def ask(page: Any, text: str, *, sensitive: bool = False) -> None:
    page.wait_for_selector("body[data-state=idle]")
    page.set_checked("#sensitive", sensitive)
    page.fill("#prompt", text)
    page.click("#send")


def wait_answers(page: Any, n: int) -> None:
    """Until ``n`` answers (or errors) are in the log."""
    page.wait_for_function(
        "n => document.querySelectorAll('.msg.assistant[data-done=true]').length >= n", arg=n)
    page.wait_for_selector("body[data-state=idle]")


def app_state(page: Any) -> dict[str, Any]:
    state: dict[str, Any] = page.evaluate(
        "JSON.parse(JSON.stringify({replies: localinferApp.replies, errors: localinferApp.errors,"
        " progress: localinferApp.progress}))")
    return state
