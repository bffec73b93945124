"""Find local inference servers and tell what they are.

``discover()`` runs one sweep; ``Discovery`` caches it for a few seconds and shares an
in-flight sweep between concurrent callers. The kinds are a data table in
``fingerprints``.
"""

from __future__ import annotations

from .cache import Discovery
from .fingerprints import FINGERPRINTS, KINDS, Fingerprint, default_ports
from .report import status_json_servers
from .sweep import discover, normalize_base_url, probe_server

__all__ = [
    "FINGERPRINTS",
    "KINDS",
    "Discovery",
    "Fingerprint",
    "default_ports",
    "discover",
    "normalize_base_url",
    "probe_server",
    "status_json_servers",
]
