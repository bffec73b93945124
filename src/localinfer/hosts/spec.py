"""Declared hosts: where an inference server runs, and how far it may be trusted.

A host comes from a ``[[hosts]]`` table in config.toml (``localinfer hosts add``) or from
``LOCALINFER_SERVERS`` (trust ``lan`` unless the URL is loopback, then ``device``).
Servers discovery finds on the default loopback ports are implicit ``device`` hosts.

Trust classes: ``device`` (this machine), ``lan`` (your machines over a network); the
remote tier is the third class and is not a host. Sensitive requests go only to
``device`` hosts and to hosts marked ``trusted``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast

from ..http import network_class, parse_url
from .url import URLError, clean_url

Trust = Literal["device", "lan"]
TRUSTS: tuple[Trust, ...] = ("device", "lan")
# What a [[hosts]] table may hold, and the type each key must have.
FIELDS: dict[str, type | tuple[type, ...]] = {
    "url": str, "name": str, "trust": str, "token_env": str, "prefer": bool,
    "weight": (int, float), "trusted": bool,
}
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}")
_ENV = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,127}")


class HostSpecError(ValueError):
    """A [[hosts]] entry (or `hosts add` argument) that cannot be used."""


def root_url(url: str) -> str:
    """``localhost:11434/v1/`` → ``http://localhost:11434`` (as discovery normalises)."""
    url = url.strip()
    if "://" not in url:
        url = "http://" + url
    return url.rstrip("/").removesuffix("/v1")


@functools.lru_cache(maxsize=1024)
def url_key(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) a URL points at, with ``localhost`` as 127.0.0.1; None if
    it is no http(s) URL. Cached: routing asks for every host on every request."""
    try:
        parsed = parse_url(root_url(url))
    except ValueError:
        return None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        return None
    host = "127.0.0.1" if parsed.host == "localhost" else parsed.host
    return parsed.scheme, host, parsed.port or (443 if parsed.scheme == "https" else 80)


def default_trust(url: str) -> Trust:
    key = url_key(url)
    return "device" if key is not None and network_class(key[1]) == "loopback" else "lan"


@dataclass(frozen=True)
class HostSpec:
    url: str
    name: str | None = None  # None: named like discovery names it (kind@host:port)
    trust: Trust = "lan"
    token_env: str | None = None
    prefer: bool = False
    weight: float = 1.0
    trusted: bool = False
    declared: bool = True  # False: LOCALINFER_SERVERS or found on a default port

    @property
    def key(self) -> tuple[str, str, int] | None:
        return url_key(self.url)

    @property
    def takes_sensitive(self) -> bool:
        """Whether sensitive data may be sent here: this machine, or marked trusted."""
        return self.trust == "device" or self.trusted

    def to_toml(self) -> dict[str, Any]:
        """The [[hosts]] table for config.toml: defaults left out."""
        table = {k: v for k, v in asdict(self).items() if k in FIELDS}
        defaults = HostSpec(url=self.url)
        return {k: v for k, v in table.items()
                if v is not None and (k in ("url", "name", "trust") or v != getattr(defaults, k))}

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "url": self.url, "trust": self.trust,
                "trusted": self.trusted, "sensitive_ok": self.takes_sensitive,
                "prefer": self.prefer, "weight": self.weight, "token_env": self.token_env,
                "declared": self.declared}


def default_name(url: str) -> str:
    key = url_key(url)
    return f"{key[1]}:{key[2]}" if key else url


def make_spec(raw: Mapping[str, Any], where: str = "[[hosts]]") -> HostSpec:
    """One host from a [[hosts]] table (or `hosts add` flags); HostSpecError says what
    is wrong with it."""
    if not isinstance(raw, Mapping):
        raise HostSpecError(f"{where}: each entry must be a table, not {type(raw).__name__}")
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise HostSpecError(f"{where}: unknown key(s) {', '.join(unknown)} "
                            f"(known: {', '.join(FIELDS)})")
    for key, want in FIELDS.items():
        value = raw.get(key)
        if value is not None and (not isinstance(value, want)
                                  or (want is not bool and isinstance(value, bool))):
            raise HostSpecError(f"{where}: `{key}` has the wrong type ({value!r})")
    if not raw.get("url"):
        raise HostSpecError(f"{where}: `url` is missing (an http(s)://host:port URL)")
    try:
        url = clean_url(raw["url"])
    except URLError as exc:
        raise HostSpecError(f"{where}: {exc}") from None
    name = raw.get("name") or default_name(url)
    if not _NAME.fullmatch(name):
        raise HostSpecError(f"{where}: name {name!r} must be 1-64 letters, digits or ._:@-")
    trust = raw.get("trust") or default_trust(url)
    if trust not in TRUSTS:
        raise HostSpecError(f"{where}: trust must be device or lan, not {trust!r} (the remote "
                            "tier is configured with `localinfer remote add`)")
    if trust == "device" and default_trust(url) != "device":
        raise HostSpecError(f"{where}: {url} is not a loopback address, so it is not this "
                            "device; use trust = \"lan\" (and trusted = true to allow "
                            "sensitive data)")
    token_env = raw.get("token_env")
    if token_env is not None and not _ENV.fullmatch(token_env):
        raise HostSpecError(f"{where}: token_env must name an environment variable, "
                            f"not {token_env!r} (the token itself never goes in config)")
    weight = float(raw.get("weight", 1.0))
    if not math.isfinite(weight) or weight <= 0:
        raise HostSpecError(f"{where}: weight must be a positive number, not {weight!r}")
    return HostSpec(url=url, name=name, trust=cast(Trust, trust),
                    token_env=token_env, prefer=bool(raw.get("prefer", False)),
                    weight=weight, trusted=bool(raw.get("trusted", False)))


def declared_hosts(tables: Iterable[Mapping[str, Any]], servers: Iterable[str]) -> list[HostSpec]:
    """[[hosts]] entries first (HostSpecError on a bad one or a repeated name/URL), then
    each LOCALINFER_SERVERS URL not already declared, unnamed."""
    specs: list[HostSpec] = []
    for index, raw in enumerate(tables):
        spec = make_spec(raw, f"[[hosts]] entry {index + 1}")
        for other in specs:
            if other.name == spec.name or other.key == spec.key:
                raise HostSpecError(f"[[hosts]] entry {index + 1}: name or URL repeats "
                                    f"host {other.name!r}")
        specs.append(spec)
    seen = {s.key for s in specs}
    for url in servers:
        key = url_key(url)
        if key is None or key in seen:
            continue  # discovery warns about URLs it cannot use
        try:
            url = clean_url(url)  # settings refused a bad one already; this is a guard
        except URLError:
            continue
        seen.add(key)
        specs.append(HostSpec(url=url, trust=default_trust(url), declared=False))
    return specs
