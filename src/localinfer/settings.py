"""The one settings model.

Precedence, highest first: keyword arguments, ``LOCALINFER_*`` environment variables,
``$LOCALINFER_HOME/config.toml``, defaults. Every field is documented; the README's
settings table is checked against this model by a test.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "LOCALINFER_"


def default_home() -> Path:
    env = os.environ.get(ENV_PREFIX + "HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("localinfer"))


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    home: Path = Field(
        default_factory=default_home,
        description="Directory holding all state: config.toml, consent grants, ledger, "
        "model cache, indexes. Default: the platform's user data dir.",
    )
    servers: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra server base URLs to probe, comma-separated "
        "(e.g. http://192.168.1.20:11434).",
    )
    scan_default_ports: bool = Field(
        default=True,
        description="Probe the default loopback ports of known servers. Off: only `servers`.",
    )
    embedded: bool = Field(
        default=True, description="Enable the embedded llama.cpp tier (`off` disables it)."
    )
    embedded_model: Path | None = Field(
        default=None,
        description="GGUF file for the embedded tier. Default: the bundled SmolLM2-135M-Instruct.",
    )
    embedded_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for the embedded engine. Default: all cores."
    )
    embedded_context: int = Field(
        default=2048, ge=128, description="Context length (tokens) of the embedded engine."
    )
    embedded_stall_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds without a token before the embedded engine is declared hung "
        "and restarted.",
    )
    debug: bool = Field(
        default=False,
        description="Show diagnostic output, including llama.cpp's own logs from the "
        "embedded engine (quiet otherwise).",
    )
    discovery_timeout: float = Field(
        default=0.5, gt=0, description="Seconds an HTTP probe of one server may take."
    )
    discovery_ttl: float = Field(
        default=5.0, ge=0, description="Seconds a discovery sweep stays cached."
    )
    connect_timeout: float = Field(
        default=3.0, gt=0, description="Seconds to open a connection to a backend."
    )
    request_timeout: float = Field(
        default=600.0, gt=0, description="Seconds a whole non-streamed backend request may take."
    )
    first_token_timeout: float = Field(
        default=120.0,
        gt=0,
        description="Seconds to wait for a backend's first byte before failing over.",
    )
    offline: bool = Field(
        default=False,
        description="Refuse every non-loopback destination before connecting.",
    )
    remotes: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Remote providers (`[remotes.NAME]` tables in config.toml: base_url, "
        "key_env, models). Used only with consent; `localinfer remote add` keeps its own "
        "list in remotes.json.",
    )
    ledger_retention_days: float = Field(
        default=30.0, gt=0,
        description="Days the egress ledger keeps a record of each outbound request.",
    )
    ledger_max_rows: int = Field(
        default=100_000, ge=100,
        description="Most records the egress ledger keeps; the oldest go first.",
    )
    models: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Extra model catalog entries, by name (`[models.NAME]` tables in "
        "config.toml): sources, size, sha256, license, ram, context, purpose. "
        "They override built-in entries of the same name.",
    )
    download_confirm_bytes: int = Field(
        default=1_000_000_000,
        ge=0,
        description="`pull` asks before downloading more than this many bytes "
        "(`--yes` skips the question).",
    )
    download_bandwidth: float | None = Field(
        default=None,
        gt=0,
        description="Bytes per second used to estimate download times. "
        "Default: measured on earlier downloads.",
    )
    ollama_url: str = Field(
        default="http://127.0.0.1:11434",
        description="Ollama server that `pull ollama:NAME` asks to fetch a model.",
    )
    host: str = Field(
        default="127.0.0.1",
        description="Address `localinfer serve` binds. A non-loopback address requires `token`.",
    )
    port: int = Field(default=8642, ge=0, le=65535,
                      description="Port `localinfer serve` listens on (0: any free port).")
    token: SecretStr | None = Field(
        default=None,
        description="Bearer token the gateway requires (`Authorization: Bearer TOKEN`). "
        "Optional on loopback, required when binding any other address.",
    )
    allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra Host header names the gateway accepts, comma-separated, besides "
        "localhost, 127.0.0.1 and [::1] (any port). Others get 403 (DNS-rebinding guard).",
    )
    allowed_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Web origins allowed to call the gateway from a browser, comma-separated "
        "(e.g. http://localhost:3000; `http://localhost:*` for any port). The gateway's own "
        "origin is always allowed; no wildcard `*`.",
    )
    max_body_bytes: int = Field(
        default=16 * 1024 * 1024, ge=1024,
        description="Largest request body the gateway reads; larger ones get 413.",
    )
    gateway_timeout: float = Field(
        default=300.0, gt=0,
        description="Seconds the gateway waits for a non-streamed answer, a stream's first "
        "chunk, or the next chunk, before answering 504 or ending the stream with an error.",
    )
    embed_threads: int | None = Field(
        default=None, ge=1, description="CPU threads for the local embedder. Default: all cores."
    )
    embed_precision: Literal["int8", "fp32"] = Field(
        default="int8",
        description="Arithmetic of the local embedder: `int8` (integer kernels, derived once "
        "from the shipped model; several times faster, cosine ~0.99 to fp32) or `fp32`.",
    )
    index_path: Path | None = Field(
        default=None,
        description="SQLite file of the document index (`index`, `search`, `ask`). "
        "Default: `index/index.db` under home.",
    )

    @field_validator("servers", "allowed_hosts", "allowed_origins", mode="before")
    @classmethod
    def _servers_csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def config_file(self) -> Path:
        return self.home / "config.toml"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The config file lives inside home, so home is resolved first (env or default).
        toml = TomlConfigSettingsSource(settings_cls, toml_file=default_home() / "config.toml")
        return (init_settings, env_settings, toml)

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
