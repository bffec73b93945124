"""How an OpenAI-shaped request becomes llama-cpp-python arguments (no engine needed)."""

from __future__ import annotations

from localinfer.backends.embedded.params import llama_chat_params
from localinfer.types import ChatRequest


def test_sampling_options_pass_and_unset_ones_stay_out() -> None:
    params = llama_chat_params(ChatRequest.model_validate({
        "messages": [{"role": "user", "content": "hi"}],
        "temperature": 0.3, "top_p": 0.9, "max_tokens": 12, "stop": ["\n"], "seed": 5,
        "top_k": 20, "logit_bias": {"2": -100}, "user": "not-a-llama-option",
    }))
    assert params == {"messages": [{"role": "user", "content": "hi"}], "temperature": 0.3,
                      "top_p": 0.9, "max_tokens": 12, "stop": ["\n"], "seed": 5, "top_k": 20,
                      "logit_bias": {"2": -100}}


def test_messages_fit_the_chat_template() -> None:
    params = llama_chat_params(ChatRequest.model_validate({"messages": [
        {"role": "developer", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Describe "},
                                     {"type": "image_url", "image_url": {"url": "x"}},
                                     {"type": "text", "text": "this."}]},
        {"role": "assistant", "content": None},
    ]}))
    assert params["messages"] == [{"role": "system", "content": "Be brief."},
                                  {"role": "user", "content": "Describe this."},
                                  {"role": "assistant", "content": ""}]


def test_response_formats_map_onto_llama_grammars() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}}

    def mapped(fmt: dict[str, object]) -> object:
        request = ChatRequest.model_validate({"messages": [{"role": "user", "content": "x"}],
                                              "response_format": fmt})
        return llama_chat_params(request).get("response_format")

    assert mapped({"type": "json_object"}) == {"type": "json_object"}
    assert mapped({"type": "json_schema", "json_schema": {"name": "n", "schema": schema}}) == \
        {"type": "json_object", "schema": schema}
    assert mapped({"type": "text"}) is None
    assert mapped({"type": "something-new"}) is None


def test_max_completion_tokens_is_the_token_limit() -> None:
    """langchain-openai 1.x sends only max_completion_tokens: it must limit generation."""
    from localinfer.backends.embedded.params import llama_chat_params
    from localinfer.types import ChatRequest

    request = ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}],
                                          "max_completion_tokens": 5})
    assert llama_chat_params(request)["max_tokens"] == 5
    both = ChatRequest.model_validate({"messages": [{"role": "user", "content": "hi"}],
                                       "max_tokens": 7, "max_completion_tokens": 5})
    assert llama_chat_params(both)["max_tokens"] == 7
