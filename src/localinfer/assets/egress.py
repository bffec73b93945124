"""The egress policy asset fetches run under: the caller's (e.g. the Client's, which
records into its ledger), or a fresh one that records into the ledger under home."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from ..http import EgressPolicy
from ..ledger import EgressLedger
from ..settings import Settings


@contextlib.contextmanager
def egress_policy(settings: Settings, policy: EgressPolicy | None = None
                  ) -> Iterator[EgressPolicy]:
    if policy is not None:
        yield policy
        return
    ledger = EgressLedger.from_settings(settings)
    try:
        yield ledger.policy(settings)
    finally:
        ledger.close()
