"""The one HTTP layer: every outbound request localinfer makes goes through a client built
by ``make_client`` (client.py) over one transport seam (transport.py), so the egress
check and record (egress.py), timeouts, the size cap and the error table (errors.py) live
in one place each."""

from .client import (
    MAX_RESPONSE_BYTES,
    AuthHook,
    HttpClient,
    Response,
    json_bytes,
    make_client,
    parse_url,
)
from .egress import (
    EgressPolicy,
    EgressRecord,
    NetworkClass,
    Purpose,
    Recorder,
    network_class,
    port_of,
)
from .errors import backend_error
from .streams import ndjson_objects, sse_payloads
from .transport import AiohttpTransport, Answer, HTTPError, Request, Transport, WireKind

__all__ = [
    "MAX_RESPONSE_BYTES", "AiohttpTransport", "Answer", "AuthHook",
    "EgressPolicy", "EgressRecord", "HTTPError", "HttpClient", "NetworkClass", "Purpose",
    "Recorder", "Request", "Response", "Transport", "WireKind", "backend_error",
    "json_bytes", "make_client", "ndjson_objects", "network_class", "parse_url", "port_of",
    "sse_payloads",
]
