"""What a GGUF's chat template can carry, found by rendering it (as llama.cpp's own
``chat_template_caps`` does): a template that never mentions ``tools`` would drop them
silently, and the model would answer as if none had been offered.
"""

from __future__ import annotations

from functools import lru_cache

# A name no template writes by itself: if it shows up in the prompt, the tools did.
_PROBE = "localinfer_probe_tool_7f3a"
_TOOLS = [{"type": "function", "function": {
    "name": _PROBE, "description": "probe", "parameters": {
        "type": "object", "properties": {"x": {"type": "string"}}, "required": ["x"]}}}]
_MESSAGES = [{"role": "user", "content": "hi"}]


@lru_cache(maxsize=32)
def renders_tools(template: str | None) -> bool | None:
    """True when ``template`` puts offered tools into the prompt, False when it renders
    without them, None when there is no template or it cannot be rendered here (unknown
    is never a refusal)."""
    if not template:
        return None
    try:
        from jinja2 import TemplateError
        from jinja2.sandbox import ImmutableSandboxedEnvironment
    except ImportError:  # jinja2 comes with llama-cpp-python; without it we cannot tell
        return None

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    try:
        prompt = env.from_string(template).render(
            messages=_MESSAGES, tools=_TOOLS, add_generation_prompt=True, bos_token="",
            eos_token="", raise_exception=raise_exception)
    except Exception:  # a template our probe trips up (strict role checks, …): unknown
        return None
    return _PROBE in prompt
