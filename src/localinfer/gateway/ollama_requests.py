"""The bodies of Ollama's routes, typed so a wrong value is a 400 naming the field.
Shapes follow Ollama's API docs (docs/api.md) and the ``ollama`` client's pydantic types."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..request_fields import EXTENSIONS


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class OllamaFunctionCall(_Open):
    name: str
    arguments: dict[str, Any] = Field(default_factory=dict)


class OllamaToolCall(_Open):
    function: OllamaFunctionCall


class OllamaMessage(_Open):
    role: Literal["system", "user", "assistant", "tool"]
    content: str | None = None
    images: list[str] | None = None
    tool_calls: list[OllamaToolCall] | None = None
    tool_name: str | None = None


class OllamaOptions(_Open):
    """The ``options`` we translate, typed and bounded like their OpenAI targets, so a
    bad value is a 400 naming ``options.X``. Other options (num_ctx, num_gpu, …) tune
    Ollama's own runner and are accepted and dropped."""

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    # top_k and repeat_penalty go on as the table's extensions, with its bounds.
    top_k: int | None = Field(default=None, ge=0, le=EXTENSIONS["top_k"][2])
    num_predict: int | None = None
    stop: str | list[str] | None = None
    seed: int | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    repeat_penalty: float | None = Field(default=None, ge=0,
                                        le=EXTENSIONS["repeat_penalty"][2])
    min_p: float | None = Field(default=None, ge=0, le=1)


class OllamaChatRequest(_Open):
    model: str = Field(min_length=1)
    messages: list[OllamaMessage] = Field(min_length=1)
    tools: list[dict[str, Any]] | None = None
    format: str | dict[str, Any] | None = None
    options: OllamaOptions | None = None
    # Ollama streams unless told not to.
    stream: bool = True
    keep_alive: float | str | None = None


class OllamaEmbedRequest(_Open):
    model: str = Field(min_length=1)
    input: str | list[str]
    truncate: bool | None = None
    options: dict[str, Any] | None = None
    keep_alive: float | str | None = None
    dimensions: int | None = Field(default=None, ge=1, le=65536)


class OllamaEmbeddingsRequest(_Open):
    model: str = Field(min_length=1)
    prompt: str = ""


class OllamaModelRequest(_Open):
    model: str | None = None
    name: str | None = None  # older clients send `name`

    @property
    def wanted(self) -> str:
        return self.model or self.name or ""
