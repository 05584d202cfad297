"""Small builders shared by tests: X12 text from readable lines, and running the pipeline."""

from __future__ import annotations

from edi.claims import ClaimWalker
from edi.x12 import Reader

ISA_LINE = "ISA*00*          *00*          *ZZ*SENDER         *ZZ*RECEIVER       *261101*1200*^*00501*000000001*0*T*:"


def x12(*segments: str, se_count: bool = True) -> bytes:
    """An interchange around the given transaction body segments (ST..SE counted for you)."""
    body = list(segments)
    lines = [ISA_LINE, "GS*HC*S*R*20261101*1200*1*X*005010X222A1", "ST*837*0001*005010X222A1", *body]
    if se_count:
        lines.append(f"SE*{len(body) + 2}*0001")
    lines += ["GE*1*1", "IEA*1*000000001"]
    return ("~\n".join(lines) + "~\n").encode("latin-1")


def walk(data: bytes):
    """(claims, walker) for a whole buffer; reader errors propagate."""
    reader = Reader()
    walker = ClaimWalker()
    reader.feed(data)
    reader.end()
    claims = []
    while segments := reader.segments():  # until empty: a held-back error is raised then
        claims.extend(walker.walk(segments))
    claims.extend(walker.finish())
    return claims, walker


HEADER = [
    "BHT*0019*00*1*20261101*1200*CH",
    "NM1*41*2*SUBMITTER*****46*S1",
    "PER*IC*OFFICE*TE*5555550100",
    "NM1*40*2*RECEIVER*****46*R1",
    "HL*1**20*1",
    "NM1*85*2*CLINIC*****XX*1234567893",
    "N3*1 MAIN", "N4*TOWN*IL*62701", "REF*EI*123456789",
]


def subscriber(hl: int = 2, *, filing: str = "MB", member: str = "M1", last: str = "DOE", first: str = "JO",
               birth: str = "19500101", payer: str = "00431", children: bool = False) -> list[str]:
    return [
        f"HL*{hl}*1*22*{1 if children else 0}",
        f"SBR*P*{'' if children else '18'}*******{filing}",
        f"NM1*IL*1*{last}*{first}****MI*{member}",
        "N3*1 WAY", "N4*TOWN*IL*62701", f"DMG*D8*{birth}*F",
        f"NM1*PR*2*PAYER*****PI*{payer}",
    ]


def dependent(hl: int, parent: int, *, last: str = "DOE", first: str = "KID", birth: str = "20100101") -> list[str]:
    return [f"HL*{hl}*{parent}*23*0", "PAT*19", f"NM1*QC*1*{last}*{first}", "N3*1 WAY", "N4*TOWN*IL*62701",
            f"DMG*D8*{birth}*M"]


def claim(claim_id: str, *lines: tuple[str, ...], pos: str = "11") -> list[str]:
    """A claim with lines given as (procedure composite, units, date CCYYMMDD[, line POS])."""
    from decimal import Decimal

    out = []
    total = Decimal(0)
    body = []
    for number, (procedure, units, day, *line_pos) in enumerate(lines, start=1):
        charge = Decimal("100.00") * int(units)
        total += charge
        place = line_pos[0] if line_pos else ""
        body += [f"LX*{number}", f"SV1*HC:{procedure}*{charge}*UN*{units}*{place}**1", f"DTP*472*D8*{day}"]
    out.append(f"CLM*{claim_id}*{total}***{pos}:B:1*Y*A*Y*Y")
    out.append("HI*ABK:C184")
    return out + body


def frequency(lines: list[str], code: str) -> list[str]:
    """The claim with CLM05-3 ``code`` (1 original, 7 replacement, 8 void)."""
    return [line.replace(":B:1*", f":B:{code}*", 1) if line.startswith("CLM*") else line for line in lines]


def secondary(lines: list[str], *, amounts: bool = True, line_adjudication: bool = True) -> list[str]:
    """The claim as a secondary payer receives it: 2320 (with AMT*D), 2330A/B and, per line,
    2430 SVD with its CAS and adjudication date, where the guide puts them."""
    out: list[str] = []
    for line in lines:
        out.append(line)
        if line.startswith("HI*"):
            out += ["SBR*P*18*******CI", "CAS*CO*45*10", *(["AMT*D*90"] if amounts else []), "OI***Y***Y",
                    "NM1*IL*1*DOE*JO****MI*OTHER1", "NM1*PR*2*FIRST PAYER*****PI*99999"]
        if line.startswith("DTP*472") and line_adjudication:
            out += ["SVD*99999*90*HC:96416**1", "CAS*CO*45*10", "DTP*573*D8*20261120"]
    return out


def span(lines: list[str], first: str, last: str) -> list[str]:
    """The claim with every DTP*472 turned into an RD8 range."""
    return [f"DTP*472*RD8*{first}-{last}" if line.startswith("DTP*472") else line for line in lines]


def findings(data: bytes, *, history=None, select=(), ignore=(), rules_dir: str | None = None):
    """The pump-rule findings of a buffer (the validate pipeline, no files)."""
    from edi.adapters.rules_files import load_rule_book
    from edi.pipeline import validate
    from edi.rules.engine import RuleEngine

    engine = RuleEngine(load_rule_book(rules_dir), select=select, ignore=ignore, history=history)
    return validate([data], name="test", engine=engine).findings


def sqlite_or_clean_postgres(request, tmp_path, sqlite_name: str, tables: str) -> str:
    """A store URL for a test parametrized over ``sqlite`` and ``postgres``: a new SQLite file, or
    the shared test PostgreSQL database with the store's ``tables`` dropped (a clean store)."""
    if request.param == "sqlite":
        return str(tmp_path / sqlite_name)
    url = request.getfixturevalue("postgres_url")
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(f"DROP TABLE IF EXISTS {tables}")
    return url
