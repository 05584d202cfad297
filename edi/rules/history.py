"""An in-memory pump history: the ``PumpHistory`` the rules see, holding events for one process.

The durable stores (SQLite, PostgreSQL) live in ``edi.adapters.history``; this one serves tests,
one-off runs that want PMP011 evaluated against the file alone, and as the reference behaviour
the durable stores must match (``tests/test_history.py`` runs one scenario against all three):

- events are kept per provider patient; a lookup returns the events of that provider only,
  plus the events recorded without a provider (``provider`` None: what a store of schema
  version 2 or older holds), which count for every provider of the patient;
- a claim is its billing provider's CLM01. Recording a file replaces the events of each of its
  claims (voids included, which so remove them); an event recorded without a provider belongs
  to the claim with its CLM01 of the same patient (the key those stores used);
- after ``prefetch``, lookups leave out the events of the file's claims.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date

from edi.rules.kinds import EventToRecord, FileClaim, HistoryEvent

# (patient key, event) is an event recorded without a provider; (patient key, provider, event)
MemoryEvent = tuple[str, HistoryEvent] | tuple[str, str, HistoryEvent]


class MemoryHistory:
    def __init__(self, events: Iterable[MemoryEvent] = ()) -> None:
        self._events: list[tuple[str, str | None, HistoryEvent]] = []
        for entry in events:
            if len(entry) == 2:
                self._events.append((entry[0], None, entry[1]))
            else:
                self._events.append(entry)
        self._superseded: set[tuple[str, str]] = set()  # (provider, CLM01) of the file's claims
        self._superseded_unattributed: set[tuple[str, str]] = set()  # (patient key, CLM01)

    def patient_keys(self) -> set[str]:
        return {patient for patient, _, _ in self._events}

    def record(self, file_hash: str, events: Iterable[EventToRecord], claims: Iterable[FileClaim] = ()) -> int:  # noqa: ARG002 - no file to name in memory
        """Replace the events of the file's claims (``claims``, and those of ``events``) with ``events``."""
        new = list(events)
        claims = [*claims, *(FileClaim(e.patient_key, e.provider, e.claim_id) for e in new)]
        by_provider = {(c.provider, c.claim_id) for c in claims}
        unattributed = {(c.patient_key, c.claim_id) for c in claims}
        self._events = [(patient, provider, event) for patient, provider, event in self._events
                        if (provider, event.claim_id) not in by_provider
                        and (provider is not None or (patient, event.claim_id) not in unattributed)]
        self._events += [(e.patient_key, e.provider, HistoryEvent(e.service_date, e.code, e.claim_id)) for e in new]
        self._superseded, self._superseded_unattributed = set(), set()  # the file checked is recorded now
        return len(new)

    def prefetch(self, patient_keys: list[str], claims: Iterable[FileClaim] = ()) -> None:  # noqa: ARG002 - all in memory
        claims = list(claims)
        self._superseded = {(c.provider, c.claim_id) for c in claims}
        self._superseded_unattributed = {(c.patient_key, c.claim_id) for c in claims}

    def events(self, patient_key: str, provider: str, since: date, until: date) -> list[HistoryEvent]:
        found = []
        for patient, recorded_by, event in self._events:
            if patient != patient_key or not since <= event.date <= until:
                continue
            if recorded_by is None:
                if (patient, event.claim_id) not in self._superseded_unattributed:
                    found.append(event)
            elif recorded_by == provider and (provider, event.claim_id) not in self._superseded:
                found.append(event)
        return found
