"""The gateway, the library router and the CLI in front of the real llama-server:
clean model ids (the file's stem, the path llama-server lists kept as an alias) accepted
back by every route, and tool calls passed only to a server whose chat template takes
tools (/props ``chat_template_caps``), otherwise a 400 naming the reason."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import ollama
import openai
import pytest

from localinfer import AsyncClient, Client, Settings
from localinfer.gateway import create_app
from tests.fakes.serve import free_port
from tests.gateway_harness import RunApp
from tests.support.servers import SERVER_THREADS, serve

pytestmark = pytest.mark.integration

TOOLS: Any = [{"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object",
                                          "properties": {"city": {"type": "string"}}}}}]
RESPONSE_TOOLS: Any = [{"type": "function", "name": "get_weather",
                        "parameters": {"type": "object"}}]
# A chat template that renders `tools`, so llama-server reports supports_tools.
TOOLS_TEMPLATE = """{%- if tools %}<|im_start|>system
Tools: {{ tools | tojson }}<|im_end|>
{% endif %}{%- for message in messages %}<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


@pytest.fixture(scope="module")
def tools_server(llama_server_bin: Path, bundled_gguf: Path,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-server with --jinja and a chat template that takes tools."""
    where = tmp_path_factory.mktemp("llama-tools")
    template = where / "tools.jinja"
    template.write_text(TOOLS_TEMPLATE)
    port = free_port()
    cmd = [str(llama_server_bin), "-m", str(bundled_gguf), "--host", "127.0.0.1",
           "--port", str(port), "-c", "2048", "-t", SERVER_THREADS, "--no-webui", "--jinja",
           "--chat-template-file", str(template)]
    yield from serve(cmd, "/health", port, where / "server.log")


@pytest.fixture(scope="module")
def no_jinja_server(llama_server_bin: Path, bundled_gguf: Path,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    where = tmp_path_factory.mktemp("llama-nojinja")
    port = free_port()
    cmd = [str(llama_server_bin), "-m", str(bundled_gguf), "--host", "127.0.0.1",
           "--port", str(port), "-c", "2048", "-t", SERVER_THREADS, "--no-webui", "--no-jinja"]
    yield from serve(cmd, "/health", port, where / "server.log")


def settings_for(home: Path, *servers: str) -> Settings:
    return Settings(home=home, scan_default_ports=False, servers=list(servers),
                    discovery_timeout=5.0)


def gateway_over(run_app: RunApp, home: Path, *servers: str) -> str:
    settings = settings_for(home, *servers)
    return run_app(create_app(settings, AsyncClient(settings), close_client=True))


@pytest.mark.compat("openai", "chat", "llama-server")
@pytest.mark.compat("openai", "model list", "llama-server")
@pytest.mark.compat("openai", "model retrieve", "llama-server")
@pytest.mark.compat("ollama", "model show", "llama-server")
def test_clean_ids_accepted_back_everywhere(run_app: RunApp, tmp_path: Path,
                                           llama_server: str, bundled_gguf: Path) -> None:
    url = gateway_over(run_app, tmp_path, llama_server)
    client = openai.OpenAI(base_url=url + "/v1", api_key="x", max_retries=0, timeout=300)
    listed = [m for m in client.models.list().data if m.owned_by.startswith("llama.cpp")]
    assert [m.id for m in listed] == [bundled_gguf.stem]
    extra = listed[0].model_extra or {}
    assert str(bundled_gguf) in extra["localinfer"]["aliases"]
    for name in (bundled_gguf.stem, str(bundled_gguf)):
        raw = client.chat.completions.with_raw_response.create(
            model=name, max_tokens=3, temperature=0,
            messages=[{"role": "user", "content": "Hi"}])
        assert raw.headers["x-localinfer-tier"] == "local", name
        assert raw.parse().choices[0].message.content is not None
        assert client.models.retrieve(name).owned_by.startswith("llama.cpp")
        show = ollama.Client(host=url, timeout=300).show(name)
        assert show.capabilities == ["completion"]


def test_library_routes_a_listed_id_or_path_to_the_server(
        tmp_path: Path, llama_server: str, bundled_gguf: Path) -> None:
    with Client(settings_for(tmp_path, llama_server)) as client:
        for name in (bundled_gguf.stem, bundled_gguf.name):
            reply = client.chat("Hi", model=name, max_tokens=2)
            assert reply.tier == "local" and (reply.backend or "").startswith("llama.cpp"), name


def test_cli_chat_with_the_listed_id_goes_to_the_server(
        tmp_path: Path, llama_server: str, bundled_gguf: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOCALINFER_HOME": str(tmp_path),
           "LOCALINFER_SERVERS": llama_server, "LOCALINFER_SCAN_DEFAULT_PORTS": "false",
           "LOCALINFER_DISCOVERY_TIMEOUT": "5"}

    def chat(*extra: str) -> str:
        done = subprocess.run([sys.executable, "-m", "localinfer.cli.main", "chat",
                               "--max-tokens", "2", *extra, "Hi"], env=env,
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stderr

    assert "tier local" in chat("-m", bundled_gguf.stem)
    assert "tier local" in chat("-m", str(bundled_gguf))  # a path a server lists
    assert "tier embedded" in chat("--embedded", "-m", str(bundled_gguf))


@pytest.mark.compat("openai", "tools", "llama-server")
@pytest.mark.compat("openai", "tools (template without tools)",
                    "llama-server", refused="400 naming why (--jinja, template)")
def test_tools_only_to_a_server_whose_template_takes_them(
        run_app: RunApp, tmp_path: Path, llama_server: str, tools_server: str,
        no_jinja_server: str) -> None:
    plain = openai.OpenAI(base_url=gateway_over(run_app, tmp_path / "a", llama_server) + "/v1",
                          api_key="x", max_retries=0, timeout=300)
    with pytest.raises(openai.BadRequestError) as info:
        plain.chat.completions.create(model="default", tools=TOOLS, max_tokens=4,
                                      messages=[{"role": "user", "content": "Weather?"}])
    body = info.value.body
    assert isinstance(body, dict) and body["param"] == "tools" and "--jinja" in body["message"]
    # --no-jinja: /props cannot tell it apart, but the template has no tools either way.
    nojinja = openai.OpenAI(base_url=gateway_over(run_app, tmp_path / "b", no_jinja_server)
                            + "/v1", api_key="x", max_retries=0, timeout=300)
    with pytest.raises(openai.BadRequestError, match="tool calls"):
        nojinja.responses.create(model="default", input="Weather?", tools=RESPONSE_TOOLS)
    able_url = gateway_over(run_app, tmp_path / "c", tools_server)
    able = openai.OpenAI(base_url=able_url + "/v1", api_key="x", max_retries=0, timeout=300)
    reply = able.chat.completions.create(model="default", tools=TOOLS, max_tokens=4,
                                         messages=[{"role": "user", "content": "Weather?"}])
    assert reply.choices[0].finish_reason in ("stop", "length", "tool_calls")
    cards = httpx.get(able_url + "/v1/models", timeout=60).json()["data"]
    assert [c["localinfer"]["tools"] for c in cards if c["localinfer"]["tier"] == "local"] \
        == [True]


def test_status_shows_tool_support(tmp_path: Path, llama_server: str,
                                   tools_server: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "LOCALINFER_HOME": str(tmp_path),
           "LOCALINFER_SERVERS": f"{llama_server},{tools_server}",
           "LOCALINFER_SCAN_DEFAULT_PORTS": "false", "LOCALINFER_DISCOVERY_TIMEOUT": "5"}
    done = subprocess.run([sys.executable, "-m", "localinfer.cli.main", "status"], env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    lines = {line.split()[1]: line for line in done.stdout.splitlines()
             if line.split()[:1] == ["llama.cpp"]}  # the servers table, not the hosts
    assert "no (template)" in lines[llama_server] and " yes " in lines[tools_server]
