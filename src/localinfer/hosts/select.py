"""Which host first: preferred hosts while healthy, then the least outstanding requests,
ties broken by weight (higher first), then latency (lower first)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Protocol, TypeVar

from .health import Health
from .spec import HostSpec


class Routed(Protocol):
    spec: HostSpec
    health: Health


R = TypeVar("R", bound=Routed)


def rank(host: Routed) -> tuple[int, int, float, float]:
    latency = host.health.latency
    return (0 if host.spec.prefer else 1, host.health.outstanding, -host.spec.weight,
            math.inf if latency is None else latency)


def order(hosts: Sequence[R]) -> list[R]:
    """Healthy hosts in the order they should be tried (a stable sort: equal hosts keep
    discovery's order)."""
    return sorted(hosts, key=rank)
