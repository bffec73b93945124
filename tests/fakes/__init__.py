"""Protocol fakes of inference servers that cannot be installed here, each written from
that server's public API documentation or sources (see each module's docstring), plus a
helper to serve them on loopback. Reused by discovery, router and gateway tests."""

from __future__ import annotations

from .base import FakeModel, FakeServer, Recorded, fake_vector
from .docker_model_runner import DockerModelRunnerFake
from .foundry_local import FoundryLocalFake
from .gateway import GatewayFake
from .gpt4all import GPT4AllFake
from .jan import JanFake
from .koboldcpp import KoboldCppFake
from .lemonade import LemonadeFake
from .llama_router import LlamaRouterFake
from .llamafile import LlamafileFake
from .lmstudio import LMStudioFake
from .localai import LocalAIFake
from .nexa import NexaFake
from .ollama import OllamaFake
from .openai_compatible import OpenAICompatibleFake
from .serve import AppServer, free_port, port_is_free
from .textgen import TextgenFake
from .vllm import VLLMFake

# kind -> fake, for tests that go over every kind.
FAKES: dict[str, type[FakeServer]] = {
    "ollama": OllamaFake,
    "lmstudio": LMStudioFake,
    "llamafile": LlamafileFake,
    "vllm": VLLMFake,
    "localai": LocalAIFake,
    "jan": JanFake,
    "koboldcpp": KoboldCppFake,
    "textgen-webui": TextgenFake,
    "gpt4all": GPT4AllFake,
    "openai-compatible": OpenAICompatibleFake,
    "docker-model-runner": DockerModelRunnerFake,
    "lemonade": LemonadeFake,
    "foundry-local": FoundryLocalFake,
    "nexa": NexaFake,
    "llama.cpp": LlamaRouterFake,  # router mode; single-model llama-server is tested for real
}

__all__ = [
    "FAKES",
    "AppServer",
    "DockerModelRunnerFake",
    "FakeModel",
    "FakeServer",
    "FoundryLocalFake",
    "GPT4AllFake",
    "GatewayFake",
    "JanFake",
    "KoboldCppFake",
    "LMStudioFake",
    "LemonadeFake",
    "LlamaRouterFake",
    "LlamafileFake",
    "LocalAIFake",
    "NexaFake",
    "OllamaFake",
    "OpenAICompatibleFake",
    "Recorded",
    "TextgenFake",
    "VLLMFake",
    "fake_vector",
    "free_port",
    "port_is_free",
]
