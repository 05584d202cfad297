"""Immutable values of the 837P claim model: patient identity, claim, service line.

They are ``NamedTuple`` classes rather than frozen dataclasses: the walker builds one per line
and claim (tens of thousands per file) and a frozen dataclass ``__init__`` costs about 1.3 us
against 0.15 us for ``_make``. They are immutable and have named fields all the same.

``repr`` of these values never shows names, member IDs, birth dates or claim IDs: values end
up in tracebacks and debug output, and claim files are PHI.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from operator import itemgetter
from typing import Any, NamedTuple


def fields_getter(value_type: type[tuple], *names: str) -> Callable[[Any], tuple[Any, ...]]:
    """A function returning the named fields of a ``value_type`` value as a tuple, in one C call.

    For the loops that run once per line of a file: the names are resolved to positions here,
    once, so a reader names what it reads and a reordered field cannot be read by mistake.
    """
    fields: tuple[str, ...] = value_type._fields  # type: ignore[attr-defined]
    unknown = [name for name in names if name not in fields]
    if unknown:
        raise AttributeError(f"{value_type.__name__} has no field {unknown[0]!r}")
    return itemgetter(*(fields.index(name) for name in names))  # type: ignore[return-value]


class PatientIdentity(NamedTuple):
    """Who the service was for: the 2010CA patient when a 2000C loop exists, else 2010BA.

    Keyed by payer (2010BB NM109), subscriber ID (2010BA NM109), the patient's name and birth
    date: a dependent has no member ID of its own and shares the subscriber's.
    """

    payer_id: str
    subscriber_id: str
    last_name: str
    first_name: str
    birth_date: str
    is_dependent: bool = False

    @property
    def key(self) -> tuple[str, str, str, str, str]:
        """A grouping key (PHI: keep in memory, never log; hash it before storing)."""
        return (
            self.payer_id.upper(),
            self.subscriber_id.upper(),
            self.last_name.upper(),
            self.first_name.upper(),
            self.birth_date,
        )

    def fingerprint(self) -> str:
        """A short one-way tag, for tests and debugging; never the identity itself."""
        return hashlib.sha256("\x1f".join(self.key).encode()).hexdigest()[:12]

    def __repr__(self) -> str:
        return f"PatientIdentity(dependent={self.is_dependent}, fingerprint={self.fingerprint()})"


class ServiceLine(NamedTuple):
    """One 2400 loop: LX and the SV1 professional service with its date."""

    lx: int | None
    qualifier: str
    procedure_code: str
    modifiers: tuple[str, ...]
    charge: Decimal | None
    units: Decimal | None
    place_of_service: str | None
    service_date: date | None
    service_date_end: date | None
    segment: int  # SV1's 1-based segment number in the file (ISA = 1)
    offset: int  # SV1's byte offset in the file
    first_segment: int  # the LX
    last_segment: int  # the last segment of the 2400 loop (and its 2410-2440 children)

    def __repr__(self) -> str:
        return f"ServiceLine(lx={self.lx}, segment={self.segment})"


class Claim(NamedTuple):
    """One 2300 loop with the context above it and its service lines."""

    claim_id: str
    total_charge: Decimal | None
    place_of_service: str | None
    frequency_code: str | None
    filing_indicator: str | None
    payer_id: str
    patient: PatientIdentity
    billing_npi: str | None
    lines: tuple[ServiceLine, ...]
    segment: int  # CLM's segment number
    offset: int
    last_segment: int
    transaction_segment: int  # the ST's segment number

    def __repr__(self) -> str:
        return f"Claim(segment={self.segment}, lines={len(self.lines)})"
