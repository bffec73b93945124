"""Tools a model may call, executed locally — and the loop that runs them.

>>> from localinfer import Client
>>> from localinfer.tools import run_python, run_with_tools
>>> with Client() as client:
...     reply = run_with_tools(client, "What is 2**100? Use Python.", tools=[run_python])
...     print(reply.text)
...     for call in reply.calls:          # every call the model made, and what it got back
...         print(call.name, call.arguments, call.result)

``run_python`` executes the model's code in the WebAssembly sandbox
(:mod:`localinfer.sandbox`): no host files, no network, capped time and memory. A tool is
also a plain OpenAI tool dict. ``client.chat(..., tools=[run_python])`` executes the
model's calls and answers when the model does (``reply.tool_run`` holds every call and
result; ``max_tool_rounds`` bounds it); ``run_with_tools`` / ``arun_with_tools`` are the
same loop returning a :class:`ToolReply`. Plain tool dicts (not :class:`Tool`) are sent
unexecuted, as OpenAI's API does, and a call to one hands the reply back to you.
"""

from ..types import ToolCallRecord, ToolRun
from .loop import ToolReply, arun_with_tools, run_with_tools
from .tool import Tool, run_python, tool

__all__ = [
    "Tool",
    "ToolCallRecord",
    "ToolReply",
    "ToolRun",
    "arun_with_tools",
    "run_python",
    "run_with_tools",
    "tool",
]
