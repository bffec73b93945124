"""A server's base URL, checked and normalised in one place before it is written to
config.toml, probed, or put in a header (the ``/ui/`` Content-Security-Policy).

Refused, each with one line that never repeats a password: a ``user:password@`` part
(it would be stored and shown in clear: a host's token goes in an environment variable,
``--token-env``), characters no URL may hold (quotes, spaces, control characters,
non-ASCII, lone surrogates: percent-encode them), a query or fragment (a base URL has
none), schemes other than http(s), a malformed host or port.
"""

from __future__ import annotations

import ipaddress
import re
import string
from urllib.parse import SplitResult, urlsplit

SCHEMES = {"http": 80, "https": 443}
# RFC 3986's characters (unreserved, reserved and '%'); anything else is refused.
_URL_CHARS = frozenset(string.ascii_letters + string.digits + "-._~:/?#[]@!$&'()*+,;=%")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# `scheme://anything@` in free text, for messages that quote a URL.
_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/?#@\s'\"]*@")


class URLError(ValueError):
    """A URL that cannot be used; the message is one line and safe to show."""


def mask_userinfo(text: str) -> str:
    """``http://user:pw@host`` → ``http://***@host`` wherever a URL appears in ``text``."""
    return _USERINFO.sub(r"\1***@", text)


def shown(url: str) -> str:
    """A URL as a message may quote it: userinfo masked, anything unprintable escaped
    (a lone surrogate would otherwise fail to print)."""
    return ascii(mask_userinfo(url))


def _host_ok(host: str) -> bool:
    if host.startswith("["):
        try:
            return ipaddress.ip_address(host[1:-1]).version == 6 and host.endswith("]")
        except ValueError:
            return False
    labels = host.removesuffix(".").split(".")
    return all(_LABEL.fullmatch(label) for label in labels)


def _refuse_userinfo(url: str) -> None:
    with_scheme = url if "://" in url else "http://" + url
    if mask_userinfo(with_scheme) != with_scheme:
        raise URLError(f"URL {shown(url)}: a user or password in the URL is refused (it "
                       "would be stored and shown in clear); put the host's token in an "
                       "environment variable and name it with --token-env (token_env in "
                       "config.toml)")


def _split(url: str) -> SplitResult:
    _refuse_userinfo(url)
    bad = next((c for c in url if c not in _URL_CHARS), None)
    if bad is not None:
        raise URLError(f"URL {shown(url)} holds {bad!a}, which no URL may hold "
                       "(percent-encode it)")
    if _BAD_ESCAPE.search(url):
        raise URLError(f"URL {shown(url)} has a '%' that is not followed by two hex digits")
    try:
        parts = urlsplit(url if "://" in url else "http://" + url)
    except ValueError as exc:  # e.g. an unclosed [IPv6 literal
        raise URLError(f"URL {shown(url)} cannot be parsed ({exc})") from None
    if parts.username is not None or parts.password is not None:
        raise URLError(f"URL {shown(url)}: a user or password in the URL is refused")
    if parts.scheme.lower() not in SCHEMES:
        raise URLError(f"URL {shown(url)} must start with http:// or https://")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise URLError(f"URL {shown(url)}: a server's base URL has no ?query or #fragment")
    return parts


def clean_url(url: str) -> str:
    """``localhost:11434/v1/`` → ``http://localhost:11434``: the server root, scheme and
    host lower-cased; URLError (one safe line) when it cannot be used."""
    parts = _split(url.strip())
    netloc = parts.netloc.lower()
    host, _, port = netloc.rpartition(":") if not netloc.endswith("]") else (netloc, "", "")
    if not host:
        host, port = netloc, ""
    if not _host_ok(host):
        raise URLError(f"URL {shown(url)} has no valid host name or address")
    if port and (not port.isdigit() or not 0 < int(port) < 65536):
        raise URLError(f"URL {shown(url)} has a port that is not 1-65535")
    path = parts.path.rstrip("/").removesuffix("/v1")
    return f"{parts.scheme.lower()}://{netloc}{path}"


def server_url(url: str) -> str:
    """A ``LOCALINFER_SERVERS`` entry: normalised when usable. One that is not is kept
    as given, for discovery to warn about and skip (it is never probed or put in a
    header); a password is refused either way."""
    _refuse_userinfo(url.strip())
    try:
        return clean_url(url)
    except URLError:
        return url


def origin(url: str) -> str | None:
    """``scheme://host[:port]`` of a usable URL (what a CSP source names), else None."""
    try:
        parts = urlsplit(clean_url(url))
    except URLError:
        return None
    return f"{parts.scheme}://{parts.netloc}"
