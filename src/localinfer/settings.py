"""The one settings model.

Precedence, highest first: keyword arguments, ``LOCALINFER_*`` environment variables,
``$LOCALINFER_HOME/config.toml``, defaults. Every field is documented; the README's
settings table is checked against this model by a test.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

import platformdirs
from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from .errors import UsageError
from .hosts.url import mask_userinfo, server_url

ENV_PREFIX = "LOCALINFER_"


def default_home() -> Path:
    env = os.environ.get(ENV_PREFIX + "HOME")
    return Path(env).expanduser() if env else Path(platformdirs.user_data_dir("localinfer"))


class SettingsError(UsageError):
    """A setting has a value it cannot take, or config.toml cannot be read."""

    code = "bad_settings"


def config_path(home: Path) -> Path:
    return home / "config.toml"


class HomeConfigSource(PydanticBaseSettingsSource):
    """``config.toml`` of *this* settings' home: the ``home`` keyword when given, else
    ``LOCALINFER_HOME``, else the default (the file lives inside home, so home is
    resolved first). A file that is not valid TOML is one SettingsError."""

    def __init__(self, settings_cls: type[BaseSettings],
                 init_settings: PydanticBaseSettingsSource) -> None:
        super().__init__(settings_cls)
        self._init = init_settings

    def home(self) -> Path:
        given = getattr(self._init, "init_kwargs", {}).get("home")
        return Path(given).expanduser() if given is not None else default_home()

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # __call__ reads the whole file at once

    def __call__(self) -> dict[str, Any]:
        return read_config(config_path(self.home()))


def read_config(path: Path) -> dict[str, Any]:
    try:
        raw = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return {}
    except OSError as exc:
        raise SettingsError(f"{path}: cannot be read ({exc.strerror}); check its "
                            "permissions") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc}); fix it, or move it away to "
                            "use the defaults") from None


def _describe(exc: ValidationError, values: dict[str, Any]) -> str:
    """One line: which setting, what is wrong, and where the value came from."""
    err = exc.errors()[0]
    name = str(err["loc"][0]) if err["loc"] else "?"
    env = ENV_PREFIX + name.upper()
    given = values.get("home")
    home = Path(given).expanduser() if given is not None else default_home()
    if name in values:
        origin = "the value passed in"
    elif env in os.environ:
        origin = f"environment variable {env}"
    else:
        origin = f"{config_path(home)} (key `{name}`)"
    more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
    given_value = mask_userinfo(repr(err.get("input")))  # a URL's password never repeats
    return (f"bad setting {name} = {given_value} from {origin}: {mask_userinfo(err['msg'])}"
            f"{more}; fix or remove it")


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
    hosts: list[dict[str, Any]] = Field(
        default_factory=list,
        description="Declared inference hosts (`[[hosts]]` tables in config.toml: url, name, "
        "trust = device or lan, token_env, prefer, weight, trusted; `localinfer hosts add`). "
        "Sensitive requests go only to device hosts and trusted ones.",
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
    embedded_parallel: int = Field(
        default=4,
        ge=1,
        le=64,
        description="Requests the embedded engine decodes at once (one batch, one sequence "
        "each, as `llama-server -np N`); more wait their turn. Each keeps the full "
        "`embedded_context`, so the KV cache takes this many times the memory of one.",
    )
    embedded_gpu_layers: int = Field(
        default=-1,
        ge=-1,
        description="Model layers the embedded engine offloads to a GPU: -1 = all, 0 = none. "
        "Applied only where the llama.cpp build supports offload (Metal, CUDA, Vulkan); "
        "elsewhere every layer stays on the CPU.",
    )
    embedded_idle_timeout: float = Field(
        default=300.0,
        gt=0,
        description="Seconds without a request before the shared embedded engine (one per "
        "home, used by every localinfer process) stops and frees its memory; the next "
        "request starts it again.",
    )
    embedded_chat_template: Path | None = Field(
        default=None,
        description="A Jinja chat template file for the embedded engine, instead of the "
        "model's own (e.g. one that renders `tools` for a model whose template does not).",
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
    router_autoload: bool = Field(
        default=True,
        description="Send a request for a model that a llama-server in router mode lists "
        "but has not loaded to that server, which loads it (its 503 \"Loading model\" is "
        "retried within the request's deadline). Off: such a model is asked for only where "
        "it is loaded, and otherwise refused with 503 naming the model.",
    )
    offline: bool = Field(
        default=False,
        description="Refuse every non-loopback destination before connecting.",
    )
    strict_ledger: bool = Field(
        default=False,
        description="Refuse every non-loopback request while the egress ledger cannot "
        "record it (damaged or unwritable); off: such requests go ahead with a warning.",
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
    assume_yes: bool = Field(
        default=False,
        description="Answer yes to `chat`'s first-run question (no chat model here and no "
        "server: download the default model, its cost shown first), as `--yes` does; also "
        "without a terminal.",
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
    header_timeout: float = Field(
        default=10.0, gt=0,
        description="Seconds a client may take to send a request's headers to the gateway "
        "before the connection is closed (slow-loris guard).",
    )
    body_timeout: float = Field(
        default=60.0, gt=0,
        description="Seconds a client may take to send a request's body to the gateway "
        "before the connection is closed.",
    )
    max_connections: int = Field(
        default=1000, ge=1,
        description="Most open connections the gateway keeps; beyond it a new connection "
        "gets 503 with Retry-After. The soft file-descriptor limit is raised to fit.",
    )
    gateway_timeout: float = Field(
        default=300.0, gt=0,
        description="Seconds the gateway waits for a non-streamed answer, a stream's first "
        "chunk, or the next chunk, before answering 504 or ending the stream with an error.",
    )
    request_deadline: float = Field(
        default=600.0, gt=0,
        description="Seconds a gateway request may take: a non-streamed answer or a "
        "stream's first chunk (with gateway_timeout, the smaller wins), and a whole stream; "
        "past it the upstream connection is closed, freeing the server's slot, and the "
        "client gets 504 (in a stream: an error event).",
    )
    max_response_bytes: int = Field(
        default=32 * 1024 * 1024, ge=65536,
        description="Largest answer read from a local server for one request, whole or "
        "streamed; past it the upstream connection is closed and the request fails.",
    )
    max_choices: int = Field(
        default=4, ge=1, le=128,
        description="Largest `n` (choices per chat request) passed to a backend; more is "
        "a 400.",
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

    @field_validator("servers", mode="after")
    @classmethod
    def _valid_servers(cls, value: list[str]) -> list[str]:
        return [server_url(url) for url in value]  # URLError (a ValueError): one safe line

    @field_validator("hosts", mode="after")
    @classmethod
    def _valid_hosts(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        from .hosts.spec import declared_hosts

        declared_hosts(value, ())  # raises HostSpecError (a ValueError) naming the entry
        return value

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def config_file(self) -> Path:
        return config_path(self.home)

    def __init__(self, **values: Any) -> None:
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise SettingsError(_describe(exc, values)) from None

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, HomeConfigSource(settings_cls, init_settings))

    def ensure_home(self) -> Path:
        self.home.mkdir(parents=True, exist_ok=True)
        return self.home
