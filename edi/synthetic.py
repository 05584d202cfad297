"""A deterministic synthetic 837P generator for tests, the README sample and the benchmark.

No real patient data anywhere: names are built from invented syllables, member IDs and dates
from a seeded ``random.Random``. The output is 005010X222A1 that pyx12 accepts: oncology visits
with chemotherapy administration, pump initiation and refill, port flushes and drug lines
(2410 NDC), several payers (Medicare ``SBR09=MB``, commercial ``CI``, Blue Cross ``BL``,
Medicaid ``MC``), dependents (2000C), and a share of visits that break the pump-coding rules.

Two layers: ``Visit``/``Patient``/``LineSpec`` values (also drawn by the hypothesis strategies in
the tests) and ``render`` that turns visits into X12 bytes with the chosen delimiters.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal

_SYLLABLES = ("ka", "lo", "mi", "ne", "ru", "ta", "vo", "zi", "be", "do", "fa", "gu", "hi", "jo")
PAYERS = (
    ("MEDICARE PART B", "00431", "MB"),
    ("COMMERCIAL HEALTH PLAN", "60054", "CI"),
    ("BLUE PLAN", "00590", "BL"),
    ("STATE MEDICAID", "77027", "MC"),
)
PRICES = {
    "96413": "350.00", "96415": "75.00", "96416": "400.00", "96417": "160.00", "96409": "180.00",
    "96411": "95.00", "96521": "210.00", "96522": "190.00", "96523": "45.00", "96365": "170.00",
    "96366": "40.00", "96374": "90.00", "96375": "40.00", "96360": "150.00", "96401": "85.00",
    "99213": "110.00", "99214": "160.00", "J9190": "12.50", "J9200": "300.00", "J9065": "55.00",
    "J2405": "6.00", "J1100": "4.00", "E0781": "95.00", "A4222": "60.00", "96414": "400.00",
    "96520": "210.00", "96410": "350.00", "96412": "75.00", "96530": "190.00", "G0359": "350.00",
    "96425": "420.00", "J9040": "180.00", "96402": "70.00",
}
NDC_FOR = {"J9190": "63323011710", "J9200": "55390013501", "J9065": "00703515101", "J9040": "00703316101"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Patient:
    last_name: str
    first_name: str
    member_id: str
    birth_date: date
    sex: str
    payer: int  # index into PAYERS
    dependent_of: tuple[str, str, date] | None = None  # subscriber name and birth date


@dataclass(frozen=True, slots=True, kw_only=True)
class LineSpec:
    code: str
    units: int = 1
    modifiers: tuple[str, ...] = ()
    place_of_service: str | None = None
    charge: Decimal | None = None

    def amount(self) -> Decimal:
        if self.charge is not None:
            return self.charge
        return Decimal(PRICES.get(self.code, "100.00")) * self.units


@dataclass(frozen=True, slots=True, kw_only=True)
class Visit:
    patient: Patient
    service_date: date
    lines: tuple[LineSpec, ...]
    claim_id: str
    place_of_service: str = "11"
    # What the v2 rules' exemptions turn on (the defaults render as before): the billing
    # provider (index into BILLING_PROVIDERS), the claim frequency (CLM05-3: 1, 7, 8), the last
    # day of an RD8 span, and a secondary claim carrying the first payer's adjudication (2320
    # AMT*D, 2330A/B, 2430 SVD per line).
    provider: int = 0
    frequency: str = "1"
    span_end: date | None = None
    other_payer_paid: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Style:
    """How the file is written: delimiters and what follows each terminator."""

    element: str = "*"
    component: str = ":"
    repetition: str = "^"
    terminator: str = "~"
    line_break: str = "\n"
    claims_per_transaction: int = 5000


def _name(rng: random.Random, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES) for _ in range(syllables)).upper()


def make_patients(rng: random.Random, count: int) -> list[Patient]:
    patients = []
    for number in range(count):
        payer = rng.choices(range(len(PAYERS)), weights=(5, 3, 2, 1))[0]
        birth = date(1940, 1, 1) + timedelta(days=rng.randrange(0, 365 * 60))
        member = f"SYN{number:07d}{rng.randrange(10)}"
        dependent = None
        if payer != 0 and rng.random() < 0.2:
            dependent = (_name(rng, 3), _name(rng, 2), birth - timedelta(days=rng.randrange(7000, 12000)))
        patients.append(Patient(
            last_name=_name(rng, 3), first_name=_name(rng, 2), member_id=member, birth_date=birth,
            sex=rng.choice("FM"), payer=payer, dependent_of=dependent,
        ))
    return patients


CLEAN_VISITS: tuple[tuple[LineSpec, ...], ...] = (
    (LineSpec(code="96413"), LineSpec(code="96415", units=2), LineSpec(code="J9065", units=4)),
    (LineSpec(code="96416"), LineSpec(code="J9190", units=20)),
    (LineSpec(code="96521"),),
    (LineSpec(code="96522"),),
    (LineSpec(code="96523"),),
    (LineSpec(code="99214", modifiers=("25",)), LineSpec(code="96413"), LineSpec(code="96417"),
     LineSpec(code="96416"), LineSpec(code="J9040", units=2), LineSpec(code="J9190", units=20)),
    (LineSpec(code="96365"), LineSpec(code="96366"), LineSpec(code="J2405", units=2)),
    (LineSpec(code="96409"), LineSpec(code="96411"), LineSpec(code="J9200", units=1)),
    (LineSpec(code="99213"),),
)
RULE_BREAKING_VISITS: tuple[tuple[LineSpec, ...], ...] = (
    (LineSpec(code="96416"), LineSpec(code="96521"), LineSpec(code="J9190", units=20)),  # PMP002
    (LineSpec(code="96413"), LineSpec(code="96521"), LineSpec(code="J9065", units=2)),  # PMP003
    (LineSpec(code="96414"), LineSpec(code="J9190", units=20)),  # PMP001 replace
    (LineSpec(code="96520"),),  # PMP001 replace
    (LineSpec(code="96530"),),  # PMP001 flag
    (LineSpec(code="96413"), LineSpec(code="96415", units=7), LineSpec(code="J9190", units=20)),  # PMP005
    (LineSpec(code="96413"), LineSpec(code="96523")),  # PMP006
    (LineSpec(code="96416", place_of_service="22"), LineSpec(code="J9190", units=20)),  # PMP007
    (LineSpec(code="96413", units=2), LineSpec(code="J9065", units=2)),  # PMP008
    (LineSpec(code="96416"), LineSpec(code="E0781"), LineSpec(code="J9190", units=20)),  # PMP009
    (LineSpec(code="96365"), LineSpec(code="96413"), LineSpec(code="J9065", units=2)),  # PMP010
)


def make_visits(
    claims: int, seed: int = 1, *, rule_breaking_share: float = 0.25, start: date = date(2026, 10, 1)
) -> Iterator[Visit]:
    """``claims`` visits over 28 days for about claims/3 patients (several visits each)."""
    rng = random.Random(seed)  # noqa: S311 - deterministic synthetic data, not a secret
    patients = make_patients(rng, max(1, claims // 3))
    for number in range(claims):
        patient = rng.choice(patients)
        day = start + timedelta(days=rng.randrange(28))
        pool = RULE_BREAKING_VISITS if rng.random() < rule_breaking_share else CLEAN_VISITS
        yield Visit(patient=patient, service_date=day, lines=rng.choice(pool), claim_id=f"PCN{seed:03d}{number:08d}")


def _npi(base: str) -> str:
    """A 10-digit NPI with its Luhn check digit (prefix 80840)."""
    digits = [int(d) for d in "80840" + base]
    total = 0
    for index, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if index % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return base + str((10 - total % 10) % 10)


BILLING_NPI = _npi("123456789")
RENDERING_NPI = _npi("987654321")
# (name, NPI, tax ID) of each billing provider a visit may name; the first is the default.
BILLING_PROVIDERS = (
    ("SYNTHETIC ONCOLOGY ASSOCIATES", BILLING_NPI, "123456789"),
    ("SYNTHETIC LABORATORY SERVICES", _npi("555666777"), "987654321"),
)


class _Transaction:
    def __init__(self, style: Style, control: int) -> None:
        self.style = style
        self.control = f"{control:04d}"
        self.segments: list[str] = []
        self.hl = 0

    def add(self, *elements: str) -> None:
        self.segments.append(self.style.element.join(elements).rstrip(self.style.element))


def _money(value: Decimal) -> str:
    return f"{value:.2f}"


def _render_visit(tx: _Transaction, visit: Visit, billing_hl: int) -> None:
    style = tx.style
    c = style.component
    patient = visit.patient
    payer_name, payer_id, filing = PAYERS[patient.payer]
    dependent = patient.dependent_of is not None
    tx.hl += 1
    subscriber_hl = tx.hl
    tx.add("HL", str(subscriber_hl), str(billing_hl), "22", "1" if dependent else "0")
    tx.add("SBR", "P", "" if dependent else "18", "", "", "", "", "", "", filing)
    if dependent:
        sub_last, sub_first, _ = patient.dependent_of  # type: ignore[misc]
        tx.add("NM1", "IL", "1", sub_last, sub_first, "", "", "", "MI", patient.member_id)
    else:
        tx.add("NM1", "IL", "1", patient.last_name, patient.first_name, "", "", "", "MI", patient.member_id)
        tx.add("N3", "1 SYNTHETIC WAY")
        tx.add("N4", "SPRINGFIELD", "IL", "627010000")
        tx.add("DMG", "D8", patient.birth_date.strftime("%Y%m%d"), patient.sex)
    tx.add("NM1", "PR", "2", payer_name, "", "", "", "", "PI", payer_id)
    tx.add("N3", "PO BOX 1000")
    tx.add("N4", "CAPITAL CITY", "IL", "627050000")
    if dependent:
        tx.hl += 1
        tx.add("HL", str(tx.hl), str(subscriber_hl), "23", "0")
        tx.add("PAT", "19")
        tx.add("NM1", "QC", "1", patient.last_name, patient.first_name)
        tx.add("N3", "1 SYNTHETIC WAY")
        tx.add("N4", "SPRINGFIELD", "IL", "627010000")
        tx.add("DMG", "D8", patient.birth_date.strftime("%Y%m%d"), patient.sex)
    total = sum((line.amount() for line in visit.lines), Decimal(0))
    tx.add("CLM", visit.claim_id, _money(total), "", "", f"{visit.place_of_service}{c}B{c}{visit.frequency}", "Y", "A", "Y", "Y")
    if visit.frequency in ("7", "8"):
        tx.add("REF", "F8", f"ORIG{visit.claim_id[-8:]}")  # the payer's claim number of the claim replaced or voided
    if any(line.code.startswith(("964", "J9")) for line in visit.lines):
        tx.add("REF", "G1", f"PA{visit.claim_id[-8:]}")  # chemotherapy needs a prior authorisation
    tx.add("HI", f"ABK{c}C184")
    tx.add("NM1", "82", "1", "ONCOLOGIST", "SYNTH", "", "", "", "XX", RENDERING_NPI)
    tx.add("PRV", "PE", "PXC", "207RX0202X")  # medical oncology
    if visit.other_payer_paid:  # 2320 (the first payer), 2330A (its subscriber), 2330B (the payer)
        tx.add("SBR", "P", "18", "", "", "", "", "", "", "CI")
        tx.add("CAS", "CO", "45", _money(total * Decimal("0.2")))
        tx.add("AMT", "D", _money(total * Decimal("0.8")))
        tx.add("OI", "", "", "Y", "", "", "Y")
        tx.add("NM1", "IL", "1", patient.last_name, patient.first_name, "", "", "", "MI", f"OP{patient.member_id[-8:]}")
        tx.add("NM1", "PR", "2", "FIRST COMMERCIAL PAYER", "", "", "", "", "PI", "99999")
    day = visit.service_date.strftime("%Y%m%d")
    dated = ("RD8", f"{day}-{visit.span_end.strftime('%Y%m%d')}") if visit.span_end else ("D8", day)
    for number, line in enumerate(visit.lines, start=1):
        tx.add("LX", str(number))
        procedure = c.join(("HC", line.code, *line.modifiers))
        tx.add("SV1", procedure, _money(line.amount()), "UN", str(line.units), line.place_of_service or "", "", "1")
        tx.add("DTP", "472", *dated)
        tx.add("REF", "6R", f"{visit.claim_id[-8:]}L{number}")  # line item control number
        ndc = NDC_FOR.get(line.code)
        if ndc:
            tx.add("LIN", "", "N4", ndc)
            tx.add("CTP", "", "", "", str(line.units), "UN")
        if visit.other_payer_paid:  # 2430: the first payer's adjudication of this line
            paid = line.amount() * Decimal("0.8")
            tx.add("SVD", "99999", _money(paid), c.join(("HC", line.code, *line.modifiers)), "", str(line.units))
            tx.add("CAS", "CO", "45", _money(line.amount() - paid))
            tx.add("DTP", "573", "D8", "20261120")


def render(visits: Iterable[Visit], *, style: Style = Style(), control: int = 1,
           created: date = date(2026, 11, 1)) -> Iterator[bytes]:
    """X12 bytes for the visits: one interchange, one group, an ST every N claims."""
    e, term = style.element, style.terminator + style.line_break
    stamp = created.strftime("%Y%m%d")
    isa = e.join((
        "ISA", "00", " " * 10, "00", " " * 10, "ZZ", "SYNTHSUBMIT    ", "ZZ", "SYNTHRECEIVE   ",
        stamp[2:], "1200", style.repetition, "00501", f"{control:09d}", "0", "T", style.component,
    ))
    yield (isa + term).encode("ascii")
    yield (e.join(("GS", "HC", "SYNTHSUBMIT", "SYNTHRECEIVE", stamp, "1200", str(control), "X", "005010X222A1")) + term).encode("ascii")
    sets = 0
    batch: list[Visit] = []

    def flush(items: Sequence[Visit]) -> bytes:
        nonlocal sets
        sets += 1
        tx = _Transaction(style, sets)
        tx.add("ST", "837", tx.control, "005010X222A1")
        tx.add("BHT", "0019", "00", f"SYN{control:05d}{sets:04d}", stamp, "1200", "CH")
        tx.add("NM1", "41", "2", "SYNTHETIC BILLING SERVICE", "", "", "", "", "46", "SYNTHSUBMIT")
        tx.add("PER", "IC", "BILLING OFFICE", "TE", "5555550100")
        tx.add("NM1", "40", "2", "SYNTHETIC CLEARINGHOUSE", "", "", "", "", "46", "SYNTHRECEIVE")
        tx.hl = 0
        provider, billing_hl = -1, 0
        for visit in items:
            if visit.provider != provider:  # a 2000A billing provider loop where the provider changes
                provider = visit.provider
                name, npi, tax_id = BILLING_PROVIDERS[provider]
                tx.hl += 1
                billing_hl = tx.hl
                tx.add("HL", str(billing_hl), "", "20", "1")
                tx.add("NM1", "85", "2", name, "", "", "", "", "XX", npi)
                tx.add("N3", "100 MAIN ST")
                tx.add("N4", "SPRINGFIELD", "IL", "627010000")
                tx.add("REF", "EI", tax_id)
            _render_visit(tx, visit, billing_hl)
        if not items:
            name, npi, tax_id = BILLING_PROVIDERS[0]
            tx.add("HL", "1", "", "20", "1")
            tx.add("NM1", "85", "2", name, "", "", "", "", "XX", npi)
            tx.add("N3", "100 MAIN ST")
            tx.add("N4", "SPRINGFIELD", "IL", "627010000")
            tx.add("REF", "EI", tax_id)
        tx.add("SE", str(len(tx.segments) + 1), tx.control)
        return (term.join(tx.segments) + term).encode("ascii")

    for visit in visits:
        batch.append(visit)
        if len(batch) >= style.claims_per_transaction:
            yield flush(batch)
            batch = []
    if batch or sets == 0:
        yield flush(batch)
    yield (e.join(("GE", str(sets), str(control))) + term).encode("ascii")
    yield (e.join(("IEA", "1", f"{control:09d}")) + term).encode("ascii")


def generate(claims: int, seed: int = 1, *, rule_breaking_share: float = 0.25, style: Style = Style()) -> Iterator[bytes]:
    """A whole synthetic file as chunks (stream it: 100k claims is about 80 MB)."""
    return render(make_visits(claims, seed, rule_breaking_share=rule_breaking_share), style=style, control=seed)
