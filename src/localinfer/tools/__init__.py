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
also a plain OpenAI tool dict, so ``client.chat(..., tools=[run_python])`` sends its schema
(the model's calls come back on ``reply.choices[0].message.tool_calls``); the loop that
*executes* them is ``run_with_tools`` / ``arun_with_tools``, bounded by ``max_rounds``.
"""

from .loop import ToolCallRecord, ToolReply, arun_with_tools, run_with_tools
from .tool import Tool, run_python, tool

__all__ = [
    "Tool",
    "ToolCallRecord",
    "ToolReply",
    "arun_with_tools",
    "run_python",
    "run_with_tools",
    "tool",
]
