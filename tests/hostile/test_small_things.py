"""Small things a user hits: unquoted prompts, a file name that is not UTF-8, a NUL in a
/ui/ path, a declared host that is down (hardening round 2, §7)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from localinfer.cli import rag as rag_cli
from localinfer.cli.main import build_parser, main
from localinfer.client import AsyncClient
from localinfer.errors import UsageError
from localinfer.gateway import create_app
from localinfer.settings import Settings
from tests.gateway_harness import serve_gateway
from tests.hostile.cli import one_clean_line, run_cli
from tests.support.servers import RunApp

pytestmark = pytest.mark.hostile


class RecordingIndex:
    """Stands in for the index: records the question `ask` was given."""

    asked: ClassVar[list[str]] = []

    def __enter__(self) -> RecordingIndex:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def ask(self, question: str, **kw: Any) -> Any:
        self.asked.append(question)
        raise UsageError("recorded")


def test_ask_joins_unquoted_words(monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    RecordingIndex.asked = []
    monkeypatch.setattr(rag_cli, "_index", lambda args: RecordingIndex())
    assert main(["ask", "When", "is", "the", "boiler", "serviced?", "-k", "3"]) == 2
    assert RecordingIndex.asked == ["When is the boiler serviced?"]
    assert "unrecognized" not in capsys.readouterr().err


@pytest.mark.parametrize("argv", [["chat", "Hello", "there"],
                                  ["chat", "--max-tokens", "5", "Hello", "there"]])
def test_chat_takes_unquoted_words(argv: list[str]) -> None:
    assert " ".join(build_parser().parse_args(argv).prompt) == "Hello there"


def test_search_joins_unquoted_words() -> None:
    args = build_parser().parse_args(["search", "boiler", "service", "-k", "2"])
    assert rag_cli.joined(args.query) == "boiler service"


@pytest.mark.parametrize("kind", ["file", "folder"])
def test_index_add_of_a_name_that_is_not_utf8_is_one_line(tmp_path: Path, kind: str) -> None:
    bad = os.fsencode(tmp_path) + b"/caf\xe9"
    if kind == "folder":
        os.mkdir(bad)
        with open(bad + b"/notes.txt", "wb") as f:
            f.write(b"The boiler is serviced every October.\n")
    else:
        bad += b".txt"
        with open(bad, "wb") as f:
            f.write(b"The boiler is serviced every October.\n")
    result = run_cli(tmp_path, "index", "add", os.fsdecode(bad), timeout=300,
                     LOCALINFER_INDEX_PATH=str(tmp_path / "index.db"))
    assert result.returncode == 2, result.stderr
    line = one_clean_line(result)
    assert "UTF-8" in line and "caf\\xe9" in line


@pytest.mark.parametrize("path", ["/ui/%00", "/ui/index.html%00", "/ui/vendor/%00/x.js",
                                  "/ui/models/%00", "/ui/a%00b.js"])
def test_a_nul_in_a_ui_path_is_a_client_error(run_app: RunApp, tmp_path: Path,
                                              path: str) -> None:
    gateway = serve_gateway(run_app, tmp_path)
    response = httpx.get(gateway + path, trust_env=False, timeout=30)
    assert response.status_code in (400, 404), (response.status_code, response.text)


@pytest.mark.parametrize(("path", "body"), [
    ("/v1/chat/completions", {"model": "llama3", "messages": [{"role": "user", "content": "hi"}]}),
    ("/api/chat", {"model": "llama3", "messages": [{"role": "user", "content": "hi"}],
                   "stream": False}),
])
def test_a_model_on_a_declared_host_that_is_down_is_503_naming_it(
        run_app: RunApp, tmp_path: Path, refused_url: str, path: str,
        body: dict[str, Any]) -> None:
    settings = Settings(home=tmp_path, scan_default_ports=False, embedded=False,
                        discovery_timeout=5.0, hosts=[{"url": refused_url, "name": "gpu-box"}])
    gateway = run_app(create_app(settings, AsyncClient(settings)))
    response = httpx.post(gateway + path, json=body, trust_env=False, timeout=60)
    assert response.status_code == 503, response.text
    assert "gpu-box" in response.text and "llama3" in response.text
