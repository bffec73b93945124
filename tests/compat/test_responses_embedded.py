"""``/v1/responses`` over the real embedded engine (llama.cpp on the bundled SmolLM2-135M)
through the official ``openai`` SDK: create, stream, max_output_tokens and a chat
continued with previous_response_id."""

from __future__ import annotations

from typing import Any

import openai
import pytest

from tests.test_gateway_embedded import engine, url

__all__ = ["engine", "url"]  # the fixtures, shared with test_gateway_embedded, used by name

pytestmark = pytest.mark.integration
TOOLS: Any = [{"type": "function", "name": "f", "parameters": {"type": "object"}}]


@pytest.mark.compat("openai", "/v1/responses", "embedded")
@pytest.mark.compat("openai", "/v1/responses stream", "embedded")
@pytest.mark.compat("openai", "/v1/responses previous_response_id", "embedded")
def test_responses_on_the_embedded_engine(url: str) -> None:
    client = openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=300)
    first = client.responses.create(model="smollm2", input="My name is Ada. Say hello.",
                                    instructions="Answer in one short sentence.",
                                    max_output_tokens=12, temperature=0)
    assert first.output_text.strip() and first.usage is not None
    assert 0 < first.usage.output_tokens <= 12 and first.usage.input_tokens > 0
    assert first.status in ("completed", "incomplete")
    with client.responses.stream(model="smollm2", input="What is my name?", temperature=0,
                                 max_output_tokens=128,
                                 previous_response_id=first.id) as stream:
        deltas = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert deltas and "".join(deltas) == final.output_text
    # The stored conversation reached the model: more input tokens than the question alone.
    assert final.usage is not None and final.usage.input_tokens > first.usage.input_tokens
    with pytest.raises(openai.BadRequestError, match="tool_choice"):
        client.responses.create(model="smollm2", input="hi", tool_choice="required", tools=TOOLS)
