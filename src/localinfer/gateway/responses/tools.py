"""Responses ``tools``, ``tool_choice`` and ``text.format`` → their chat twins, each
field type-checked as /openapi.json says (a wrong type is the client's mistake: a 400)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidRequest

# Tool fields besides the name: (key, accepted type).
TOOL_FIELDS: tuple[tuple[str, type], ...] = (
    ("description", str), ("parameters", dict), ("strict", bool))
PLAIN_CHOICES = (None, "auto", "none", "required")


def chat_tools(tools: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for i, tool in enumerate(tools):
        if tool.get("type") != "function":
            raise InvalidRequest(f"tools[{i}]: tool type {tool.get('type')!r} is not "
                                 "supported; only function tools", param=f"tools[{i}].type")
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise InvalidRequest(f"tools[{i}].name must be a non-empty string",
                                 param=f"tools[{i}].name")
        for key, types in TOOL_FIELDS:
            if tool.get(key) is not None and not isinstance(tool[key], types):
                raise InvalidRequest(f"tools[{i}].{key} has the wrong type",
                                     param=f"tools[{i}].{key}")
        fn = {k: tool[k] for k in ("name", "description", "parameters", "strict")
              if tool.get(k) is not None}
        out.append({"type": "function", "function": fn})
    return out


def chat_tool_choice(choice: str | dict[str, Any] | None) -> str | dict[str, Any] | None:
    if choice in PLAIN_CHOICES:
        return choice
    if (isinstance(choice, dict) and choice.get("type") == "function"
            and isinstance(choice.get("name"), str)):
        return {"type": "function", "function": {"name": choice["name"]}}
    raise InvalidRequest("tool_choice must be 'auto', 'none', 'required' or "
                         "{'type': 'function', 'name': ...}", param="tool_choice")


# json_schema format fields: (key, accepted types, required, what the 400 says it must be).
FORMAT_FIELDS: tuple[tuple[str, type | tuple[type, ...], bool, str], ...] = (
    ("name", str, True, "a string"), ("schema", dict, True, "an object"),
    ("strict", bool, False, "a boolean"), ("description", str, False, "a string"))
# Format types that map to a fixed chat response_format (None: plain text).
FIXED_FORMATS: dict[str, dict[str, Any] | None] = {
    "text": None, "json_object": {"type": "json_object"}}


def _json_schema(fmt: dict[str, Any]) -> dict[str, Any]:
    for key, types, required, what in FORMAT_FIELDS:
        value = fmt.get(key)
        if (value is None and not required) or isinstance(value, types):
            continue
        raise InvalidRequest(f"text.format.{key} must be {what}", param=f"text.format.{key}")
    schema = {k: fmt[k] for k, *_ in FORMAT_FIELDS if k in fmt}
    return {"type": "json_schema", "json_schema": schema}


def chat_format(text: dict[str, Any] | None) -> dict[str, Any] | None:
    fmt = (text or {}).get("format")
    if fmt is None:
        return None
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if isinstance(kind, str) and kind in FIXED_FORMATS:
        fixed = FIXED_FORMATS[kind]
        return dict(fixed) if fixed else None
    if kind == "json_schema" and isinstance(fmt, dict):
        return _json_schema(fmt)
    raise InvalidRequest("text.format.type must be 'text', 'json_object' or 'json_schema'",
                         param="text.format")
