"""`localinfer chat`: one prompt (or piped stdin), or an interactive chat on a terminal."""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from ..client import Client
from ..errors import ConsentRequired, UsageError
from ..remote import ConsentQuestion, OnConsent
from ..types import ChatChunk, ChatMessage, ChatResponse
from .common import confirm, model_arg, note, print_json, settings_from_args
from .first_run import with_first_run


def register(sub: Any) -> None:
    p = sub.add_parser("chat", help="chat with the best local model",
                       description="Answer PROMPT with the best local tier, streaming to "
                       "stdout. Piped stdin is appended to the prompt. With no prompt on a "
                       "terminal: an interactive chat with history.")
    p.add_argument("prompt", nargs="*", help="the prompt (words are joined)")
    p.add_argument("-m", "--model", help="model id, or a path to a .gguf file for the "
                   "embedded engine (default: the best local model)")
    p.add_argument("--embedded", action="store_true",
                   help="answer with the embedded engine only, even when a local server "
                   "lists the model (-m FILE.gguf runs that file)")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--max-tokens", type=int, help="stop after this many tokens")
    p.add_argument("--temperature", type=float, help="sampling temperature (0-2)")
    p.add_argument("--sensitive", action="store_true",
                   help="never send this request off the machine, whatever consent exists")
    p.add_argument("--json", action="store_true", help="print the whole response as JSON")
    p.add_argument("--yes", "-y", action="store_true",
                   help="with no chat model here and no server, download the default model "
                   "without asking (its cost is shown first; env LOCALINFER_ASSUME_YES=1)")
    p.set_defaults(func=run)


def served_line(backend: str | None, tier: str | None, model: str) -> str:
    return f"[localinfer] {backend} · tier {tier} · model {model}"


def run(args: argparse.Namespace) -> int:
    prompt = " ".join(args.prompt).strip()
    piped = not sys.stdin.isatty()
    if piped:
        stdin_text = sys.stdin.read()
        prompt = f"{prompt}\n\n{stdin_text}".strip() if prompt else stdin_text.strip()
    options: dict[str, Any] = {}
    if args.max_tokens is not None:
        options["max_tokens"] = args.max_tokens
    if args.temperature is not None:
        options["temperature"] = args.temperature
    # Only the interactive chat asks before a request goes remote; a one-shot run fails
    # with ConsentRequired (exit 6), naming the command that grants consent.
    ask = terminal_consent() if not prompt and not piped and sys.stdout.isatty() else None
    # A model a local server lists goes to that server; --embedded skips the servers.
    local_off = {"scan_default_ports": False, "servers": []} if args.embedded else {}
    with Client(settings_from_args(args, **local_off), on_consent=ask) as client:
        if not prompt:
            if piped or not sys.stdout.isatty():
                raise UsageError("nothing to answer: give a PROMPT or pipe text on stdin")
            return interactive(client, args, options)
        messages = [ChatMessage(role="user", content=prompt)]
        if args.json:
            reply = with_first_run(
                lambda: client.chat(messages=messages, model=model_arg(args),
                                    system=args.system, sensitive=args.sensitive, **options),
                args, client.settings)
            assert isinstance(reply, ChatResponse)
            note(served_line(reply.backend, reply.tier, reply.model))
            print_json({**reply.model_dump(exclude_none=True),
                        "localinfer": {"backend": reply.backend, "tier": reply.tier}})
            return 0
        with_first_run(lambda: stream_answer(client, messages, args, options), args,
                       client.settings)
    return 0


def stream_answer(client: Client, messages: list[ChatMessage], args: argparse.Namespace,
                  options: dict[str, Any]) -> str:
    """Print chunks as they come; return the whole answer. Ctrl-C stops generation."""
    stream = client.chat(messages=messages, model=model_arg(args), system=args.system,
                         stream=True, sensitive=args.sensitive, **options)
    assert isinstance(stream, Iterator)
    parts: list[str] = []
    announced = False
    try:
        for chunk in stream:
            assert isinstance(chunk, ChatChunk)
            if not announced:
                note(served_line(chunk.backend, chunk.tier, chunk.model))
                announced = True
            if chunk.text:
                parts.append(chunk.text)
                sys.stdout.write(chunk.text)
                sys.stdout.flush()
    finally:
        stream.close()  # type: ignore[attr-defined]
        if parts:
            sys.stdout.write("\n")
            sys.stdout.flush()
    return "".join(parts)


def terminal_consent() -> OnConsent:
    """Ask on the terminal before a request goes remote; a yes holds for this chat
    session only (nothing is persisted: `localinfer consent grant` does that)."""
    allowed: set[tuple[str, str]] = set()

    def ask(question: ConsentQuestion) -> bool:
        key = (question.provider, question.base_url)
        if key in allowed:
            return True
        note(f"No local tier can serve this. Send it to remote provider "
             f"'{question.provider}'?\n  {question.summary}\n"
             f"  (to allow it for good: `localinfer consent grant {question.provider}`)")
        if confirm("Allow for this chat session?"):
            allowed.add(key)
            return True
        return False

    return ask


def interactive(client: Client, args: argparse.Namespace, options: dict[str, Any]) -> int:
    with contextlib.suppress(ImportError):
        import readline  # noqa: F401 - line editing and history for input()
    note("localinfer chat: type a message; Ctrl-C stops an answer, Ctrl-D or /exit quits.")
    history: list[ChatMessage] = []
    while True:
        try:
            line = input("> ").strip()
        except (EOFError, KeyboardInterrupt):
            print()
            return 0
        if not line:
            continue
        if line in {"/exit", "/quit"}:
            return 0
        history.append(ChatMessage(role="user", content=line))
        try:
            answer = with_first_run(lambda: stream_answer(client, history, args, options),
                                    args, client.settings)
        except KeyboardInterrupt:
            note("[stopped]")
            history.pop()
            continue
        except ConsentRequired as exc:
            note(f"localinfer: {exc.message}")
            history.pop()
            continue
        history.append(ChatMessage(role="assistant", content=answer))
