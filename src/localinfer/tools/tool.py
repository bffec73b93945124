"""A tool: an OpenAI function-tool dict that also knows how to run itself."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio.to_thread

ToolFunc = Callable[[Mapping[str, Any]], str]
AsyncToolFunc = Callable[[Mapping[str, Any]], Awaitable[str]]

RESULT_TEXT_LIMIT = 8000  # characters of stdout / stderr handed back to the model


class Tool(dict[str, Any]):
    """``{"type": "function", "function": {name, description, parameters}}`` — what a chat
    request's ``tools`` holds — plus ``call`` (sync) and ``acall`` (async)."""

    def __init__(self, name: str, description: str, parameters: Mapping[str, Any],
                 func: ToolFunc, afunc: AsyncToolFunc | None = None) -> None:
        super().__init__(type="function", function={
            "name": name, "description": description, "parameters": dict(parameters)})
        self.name = name
        self._func = func
        self._afunc = afunc

    def call(self, arguments: Mapping[str, Any]) -> str:
        return self._func(arguments)

    async def acall(self, arguments: Mapping[str, Any]) -> str:
        if self._afunc is not None:
            return await self._afunc(arguments)
        return await anyio.to_thread.run_sync(self._func, arguments)


def executes_tools(tools: object) -> bool:
    """Whether a chat request's ``tools`` hold any tool localinfer can run itself."""
    return isinstance(tools, (list, tuple)) and any(isinstance(t, Tool) for t in tools)


def tool(name: str, description: str, parameters: Mapping[str, Any]) -> Callable[[ToolFunc], Tool]:
    """Decorator: ``@tool("lookup", "…", {"type": "object", …})`` over ``f(args) -> str``."""

    def wrap(func: ToolFunc) -> Tool:
        return Tool(name, description, parameters, func)

    return wrap


RUN_PYTHON_PARAMETERS: dict[str, Any] = {
    "type": "object",
    "properties": {
        "code": {"type": "string",
                 "description": "Python 3.12 source to run; print() what you want to see."},
        "files": {"type": "object", "additionalProperties": {"type": "string"},
                  "description": "Optional text files to create in the working directory "
                                 "first, as {name: content}."},
    },
    "required": ["code"],
}

RUN_PYTHON_DESCRIPTION = (
    "Run Python 3.12 code in an isolated sandbox and get its stdout, stderr and exit code. "
    "Standard library only; no network, no host files, at most 10 seconds and 256 MB. "
    "Files written in the working directory are listed in the result.")


def _sandbox_kwargs(arguments: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    code = arguments.get("code")
    if not isinstance(code, str) or not code.strip():
        raise ValueError("run_python needs a non-empty string argument 'code'")
    files = arguments.get("files") or {}
    if not isinstance(files, Mapping) or not all(isinstance(v, str) for v in files.values()):
        raise ValueError("run_python's 'files' must map names to text")
    return code, {"files": dict(files), "timeout": 10.0, "memory": "256M"}


def _clip(text: str) -> str:
    if len(text) <= RESULT_TEXT_LIMIT:
        return text
    return text[:RESULT_TEXT_LIMIT] + f"\n… [{len(text) - RESULT_TEXT_LIMIT} more characters cut]"


def sandbox_result_text(result: Any) -> str:
    """A SandboxResult as the JSON text a model reads."""
    return json.dumps({
        "exit_code": result.exit_code,
        "error": result.error,  # timeout | memory | fuel | null
        "stdout": _clip(result.stdout.decode("utf-8", "replace")),
        "stderr": _clip(result.stderr.decode("utf-8", "replace")),
        "files": sorted(result.files),
    }, ensure_ascii=False)


def _run_python(arguments: Mapping[str, Any]) -> str:
    from ..sandbox import run

    code, kwargs = _sandbox_kwargs(arguments)
    return sandbox_result_text(run(code, **kwargs))


async def _arun_python(arguments: Mapping[str, Any]) -> str:
    from ..sandbox import arun

    code, kwargs = _sandbox_kwargs(arguments)
    return sandbox_result_text(await arun(code, **kwargs))


run_python = Tool("run_python", RUN_PYTHON_DESCRIPTION, RUN_PYTHON_PARAMETERS,
                  _run_python, _arun_python)

# The tools localinfer itself provides, by name (the gateway's ``x-localinfer-tools``).
BUILTIN: dict[str, Tool] = {run_python.name: run_python}
