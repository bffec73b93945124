"""Which running programs are inference servers: one row per kind, matched against a
process's name (``comm``, at most 15 characters on Linux) and its argument vector.

Only sockets owned by a process that matches a row are ever probed by discovery, so a
database or a web app on some port never receives an HTTP request from localinfer.
Rows are data: adding a server program is adding a row.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Linux truncates comm to 15 bytes (TASK_COMM_LEN - 1).
COMM_LEN = 15
# Interpreters whose own name says nothing: their arguments decide.
INTERPRETER = re.compile(r"^(python|pypy)(\d+(\.\d+)?)?(\.exe)?$")


@dataclass(frozen=True)
class ProcessRule:
    """``kind`` is a hint for what the socket will answer (the answer still decides).
    A process matches when its name or its program's file name is in ``names`` (or
    starts with one of ``prefixes`` / ends with one of ``suffixes``), and it carries
    every argument pair in ``pairs``; an interpreter matches when some argument contains
    one of ``markers`` (``python -m vllm.entrypoints.openai.api_server``,
    ``python koboldcpp.py``)."""

    kind: str
    names: frozenset[str] = frozenset()
    prefixes: tuple[str, ...] = ()
    suffixes: tuple[str, ...] = ()
    markers: tuple[str, ...] = ()
    pairs: tuple[tuple[str, str], ...] = ()

    def named(self, name: str) -> bool:
        return (name in self.names or name[:COMM_LEN] in {n[:COMM_LEN] for n in self.names}
                or any(name.startswith(p) for p in self.prefixes)
                or any(name.endswith(s) for s in self.suffixes))

    def has_pairs(self, argv: Sequence[str]) -> bool:
        adjacent = set(itertools.pairwise(argv))
        return all(pair in adjacent for pair in self.pairs)


def _names(*names: str) -> frozenset[str]:
    return frozenset(names) | frozenset(n + ".exe" for n in names)


PROCESS_RULES: tuple[ProcessRule, ...] = (
    ProcessRule("ollama", _names("ollama")),
    ProcessRule("llama.cpp", _names("llama-server"), markers=("xllamacpp",)),
    # LM Studio's app (macOS "LM Studio", Linux AppImage "lm-studio"), its CLI and the
    # headless daemon llmster (lmstudio.ai/docs/developer/core/headless_llmster).
    ProcessRule("lmstudio", _names("LM Studio", "lm-studio", "lmstudio", "lms", "llmster")),
    # Foundry Local: the `foundry` CLI starts Inference.Service.Agent on a random port.
    ProcessRule("foundry-local", _names("foundry"), prefixes=("Inference.Service",)),
    ProcessRule("lemonade", _names("lemonade-server", "lemonade-router", "lemonade")),
    ProcessRule("nexa", _names("nexa")),
    ProcessRule("koboldcpp", prefixes=("koboldcpp",), markers=("koboldcpp",)),
    ProcessRule("llamafile", _names("llamafile"), suffixes=(".llamafile",)),
    ProcessRule("jan", _names("jan", "Jan")),
    ProcessRule("vllm", _names("vllm"), markers=("vllm.entrypoints",)),
    ProcessRule("openai-compatible", markers=("llama_cpp.server",)),
    # Docker Model Runner: its own binary, or (Docker Engine on Linux) the docker-proxy
    # publishing the runner container's port 12434 — never any other container's port.
    ProcessRule("docker-model-runner", _names("model-runner", "com.docker.model-runner")),
    ProcessRule("docker-model-runner", _names("docker-proxy"),
                pairs=(("-container-port", "12434"),)),
)


def _basename(arg: str) -> str:
    return arg.replace("\\", "/").rsplit("/", 1)[-1]


def _targets(argv: Sequence[str]) -> list[str]:
    """What an interpreter runs: the module after ``-m``, else its script's file name
    (never any other argument: ``pytest -k koboldcpp`` is not KoboldCpp)."""
    modules = [b for a, b in itertools.pairwise(argv) if a == "-m"]
    script = [_basename(a) for a in argv[1:2] if not a.startswith("-")]
    return modules or script


def needs_argv(comm: str, rules: Sequence[ProcessRule] = PROCESS_RULES) -> bool:
    """Whether ``comm`` alone cannot decide, so the argument vector must be read."""
    return bool(INTERPRETER.match(comm)) or any(r.pairs and r.named(comm) for r in rules)


def server_kind(comm: str, argv: Sequence[str] = (),
                rules: Sequence[ProcessRule] = PROCESS_RULES) -> str | None:
    """The kind hint of a process, or None when it is no known inference server."""
    interpreted = bool(INTERPRETER.match(comm)) or (
        bool(argv) and bool(INTERPRETER.match(_basename(argv[0]))))
    # A script run by an interpreter is named by its file (`python /usr/bin/vllm serve`).
    names = [comm, *(_basename(a) for a in argv[:2])] if interpreted else \
        [comm, *(_basename(a) for a in argv[:1])]
    for rule in rules:
        if any(rule.named(n) for n in names if n) and rule.has_pairs(argv):
            return rule.kind
        if interpreted and any(t.startswith(m) for t in _targets(argv) for m in rule.markers):
            return rule.kind
    return None


def could_match(comm: str, rules: Sequence[ProcessRule] = PROCESS_RULES) -> bool:
    """Cheap first filter on ``comm`` alone: False means no rule can match this process."""
    return needs_argv(comm, rules) or any(r.named(comm) for r in rules)
