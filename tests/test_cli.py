"""The CLI as a user meets it: real processes, real embedded engine, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from localinfer import errors
from tests.terminal import Terminal

pytestmark = pytest.mark.integration  # the real `localinfer` command in subprocesses

LOCALINFER = [sys.executable, "-m", "localinfer.cli.main"]


def run(args: list[str], home: Path, *, stdin: str | None = None,
        **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "LOCALINFER_HOME": str(home),
               "LOCALINFER_SCAN_DEFAULT_PORTS": "false", "LOCALINFER_SERVERS": "", **env}
    return subprocess.run([*LOCALINFER, *args], input=stdin if stdin is not None else "",
                          capture_output=True, text=True, env=environ, timeout=300)


def assert_one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("localinfer: error: "), result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.mark.integration
def test_chat_embedded_streams_and_names_tier(tmp_path: Path) -> None:
    result = run(["chat", "--max-tokens", "12", "--temperature", "0", "Say hello."], tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip()
    assert "embedded" in result.stderr and "tier embedded" in result.stderr
    assert "smollm2-135m-instruct" in result.stderr


@pytest.mark.integration
def test_chat_reads_piped_stdin_and_json(tmp_path: Path) -> None:
    notes = "The meeting moved to Thursday at 10.\n"
    result = run(["chat", "--json", "--max-tokens", "16", "Summarize this document."],
                 tmp_path, stdin=notes)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["message"]["content"]
    assert body["localinfer"] == {"backend": "embedded", "tier": "embedded"}
    assert body["usage"]["prompt_tokens"] > 10  # the piped text reached the model


def test_unknown_model_lists_available(tmp_path: Path) -> None:
    line = assert_one_line_error(run(["chat", "-m", "gpt-9", "hi"], tmp_path),
                                 errors.ModelNotFound.exit_code)
    assert "'gpt-9' not found" in line and "smollm2-135m-instruct" in line


def test_no_backend_says_how_to_get_one(tmp_path: Path) -> None:
    line = assert_one_line_error(run(["chat", "hi"], tmp_path, LOCALINFER_EMBEDDED="off"),
                                 errors.NoBackend.exit_code)
    assert "ollama serve" in line


def test_invalid_gguf_refused_before_llama_cpp(tmp_path: Path) -> None:
    bad = tmp_path / "broken.gguf"
    bad.write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 40)
    line = assert_one_line_error(run(["chat", "-m", str(bad), "hi"], tmp_path),
                                 errors.BadModelFile.exit_code)
    assert "broken.gguf" in line
    missing = run(["chat", "-m", str(tmp_path / "nope.gguf"), "hi"], tmp_path)
    assert_one_line_error(missing, errors.BadModelFile.exit_code)


@pytest.mark.integration
def test_model_file_option_uses_that_file(tmp_path: Path, bundled_gguf: Path) -> None:
    copy = tmp_path / "my-model.gguf"
    copy.symlink_to(bundled_gguf)
    result = run(["chat", "-m", str(copy), "--max-tokens", "4", "hi"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tier embedded" in result.stderr


def test_status_json_stable_keys(tmp_path: Path) -> None:
    result = run(["status", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    assert set(body) == {"servers", "embedded", "remote", "hosts", "exposure"}
    assert body["servers"] == []
    assert body["embedded"]["enabled"] is True
    assert "smollm2-135m-instruct" in [m["id"] for m in body["embedded"]["models"]]


def test_models_json_lists_embedded(tmp_path: Path) -> None:
    result = run(["models", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    ids = {(m["id"], m["tier"]) for m in json.loads(result.stdout)["models"]}
    assert ("smollm2-135m-instruct", "embedded") in ids


def test_empty_prompt_without_terminal_is_a_usage_error(tmp_path: Path) -> None:
    assert_one_line_error(run(["chat"], tmp_path), errors.UsageError.exit_code)


@pytest.mark.integration
def test_interactive_chat_keeps_history_and_ctrl_c_stops_an_answer(tmp_path: Path) -> None:
    env = {**os.environ, "LOCALINFER_HOME": str(tmp_path),
           "LOCALINFER_SCAN_DEFAULT_PORTS": "false", "LOCALINFER_SERVERS": ""}
    with Terminal([*LOCALINFER, "chat", "--max-tokens", "400"], env) as term:
        term.expect("> ")
        term.send("Write a long story about a lighthouse keeper.")
        term.expect("tier embedded")
        term.expect("\n")  # the rest of the line naming the model
        term.expect_more()  # the answer has begun: 400 tokens of it are to come
        os.write(term.fd, b"\x03")  # Ctrl-C mid-answer stops it, the chat goes on
        term.expect("[stopped]")
        term.expect("> ")
        term.send("My name is Ada. Reply with one word.")
        term.expect("tier embedded")
        # A guard, not a figure: the 135M model may ignore "one word" and use all 400
        # tokens, which takes minutes on a loaded 2-core machine.
        term.expect("> ", timeout=600)
        term.send("/exit")
        assert term.close() == 0


def test_large_pull_discloses_cost_and_refuses_without_a_terminal(tmp_path: Path) -> None:
    result = run(["--offline", "pull", "llama-3.2-3b-instruct"], tmp_path)
    line = assert_one_line_error(result, errors.UsageError.exit_code)
    assert "pass --yes" in line
    assert "size:" in result.stdout and "RAM:" in result.stdout and "time:" in result.stdout
    assert not any((tmp_path / "models").rglob("*.gguf"))
