"""An in-memory pump history: the ``PumpHistory`` the rules see, holding events for one process.

The durable stores (SQLite, PostgreSQL) live in ``edi.adapters.history``; this one serves tests,
one-off runs that want PMP011 evaluated against the file alone, and as the reference behaviour
the durable stores must match.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import date

from edi.rules.kinds import HistoryEvent


class MemoryHistory:
    def __init__(self, events: Iterable[tuple[str, HistoryEvent]] = ()) -> None:
        self._events: dict[str, list[HistoryEvent]] = defaultdict(list)
        for key, event in events:
            self._events[key].append(event)

    def record(self, patient_key: str, event: HistoryEvent) -> None:
        self._events[patient_key].append(event)

    def prefetch(self, patient_keys: list[str]) -> None:  # noqa: ARG002 - nothing to load in memory
        return None

    def events(self, patient_key: str, since: date, until: date, exclude_claims: Iterable[str] = ()) -> list[HistoryEvent]:
        excluded = set(exclude_claims)
        return [e for e in self._events.get(patient_key, ()) if since <= e.date <= until and e.claim_id not in excluded]
