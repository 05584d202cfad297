"""The CMS correct-coding tables (issue 17): import, the store, and rules NCC001-NCC003.

The fixture tables (fixtures/tables/) are in the CMS publication layouts with made-up edits and
values; the Excel and zip forms are made from them here (openpyxl writes what it reads). Every
store test runs on a real SQLite file and on a real PostgreSQL database.
"""

from __future__ import annotations

import shutil
import sqlite3
import zipfile
from pathlib import Path

import openpyxl
import pytest

from edi.adapters.rules_files import load_rule_book
from edi.adapters.table_files import TableFileError, read_table_files
from edi.adapters.table_import import import_files
from edi.adapters.tables import open_tables, tables_url
from edi.errors import UsageError
from edi.pipeline import validate
from edi.rules.engine import RuleEngine
from tests.conftest import ROOT, run_cli
from tests.helpers import HEADER, claim, secondary, span, sqlite_or_clean_postgres, subscriber, x12
from tests.test_history import postgres_url  # noqa: F401 - the fixture, shared

TABLES = ROOT / "fixtures" / "tables"
PTP_Q1 = TABLES / "ccipra-v320r0-f1.txt"
PTP_Q2 = TABLES / "ccipra-v321r0-f1.txt"
MUE_Q1 = TABLES / "MCR_MUE_PractitionerServices_Eff_01-01-2026.csv"
AOC_Q1 = TABLES / "AOC_V2026Q1-MCR.txt"
MEDICAID_PTP = TABLES / "medicaid-ncci-q1-2026-ptp-edits-practitioner-services.txt"
MEDICAID_MUE = TABLES / "medicaid-ncci-q1-2026-mue-edits-practitioner-services.csv"
ALL = [PTP_Q1, PTP_Q2, MUE_Q1, AOC_Q1, MEDICAID_PTP, MEDICAID_MUE]
JAN, FEB, MAY = "20260115", "20260215", "20260510"
STORE_TABLES = "ncc_import, ncc_ptp, ncc_mue, ncc_aoc, ncc_code, ncc_schema"


@pytest.fixture(params=["sqlite", "postgres"])
def store_url(request, tmp_path: Path) -> str:
    return sqlite_or_clean_postgres(request, tmp_path, "tables.sqlite", STORE_TABLES)


@pytest.fixture
def loaded(store_url: str) -> str:
    import_files([str(p) for p in ALL], store_url)
    return store_url


def found(url: str, data: bytes, rules_dir: str | None = None) -> list[tuple[str, str, str, str]]:
    """(rule, code, action, message) of the NCC findings of a buffer, with the tables at ``url``."""
    store = open_tables(url)
    try:
        engine = RuleEngine(load_rule_book(rules_dir), select=("NCC",), tables=store.lookup())
        report = validate([data], name="test", engine=engine)
    finally:
        store.close()
    return [(f.rule, f.code, f.action, f.message) for f in report.findings]


def day_file(*lines: tuple[str, ...], filing: str = "MB", claims: int = 1) -> bytes:
    """One patient, one billing provider; the lines spread over ``claims`` claims in turn."""
    groups = [lines[i::claims] for i in range(claims)]
    body = [segment for number, group in enumerate(groups) for segment in claim(f"C{number}", *group)]
    return x12(*HEADER, *subscriber(filing=filing), *body)


# -- import ------------------------------------------------------------------------------------
def test_each_format_is_read_with_its_header_found_below_the_title_lines(tmp_path: Path) -> None:
    ptp = read_table_files(str(PTP_Q1))[0][0]
    rows = list(ptp.rows)
    assert ptp.kind == "ptp" and [r.column2 for r in rows] == ["96360", "96523", "96521", "96374", "96372"]
    assert rows[4].effective == 19960101 and rows[4].deletion == 20260201 and rows[0].deletion == 99991231
    mue = read_table_files(str(MUE_Q1))[0][0]
    assert mue.kind == "mue" and [(r.code, int(r.units), r.mai) for r in mue.rows][:3] == [
        ("96413", 1, 2), ("96415", 6, 3), ("96523", 1, 1)]
    aoc = read_table_files(str(AOC_Q1))[0][0]
    aoc_rows = list(aoc.rows)
    assert aoc.kind == "aoc" and ("96375", "CCCCC") not in {(r.add_on, r.primary) for r in aoc_rows}
    assert {r.primary for r in aoc_rows if r.add_on == "96367"} == {"96365", "96413"}


def write_xlsx(path: Path, rows: list[list[object]]) -> Path:
    book = openpyxl.Workbook()
    sheet = book.active
    for row in rows:
        sheet.append(row)
    book.save(path)
    return path


def test_excel_with_date_cells_and_julian_dates_is_read(tmp_path: Path) -> None:
    from datetime import datetime

    ptp = write_xlsx(tmp_path / "ccipra-v320r0-f2.xlsx", [
        ["CPT codes only copyright American Medical Association."], [],
        ["Column 1", "Column 2", "*=in existence prior to 1996", "Effective Date", "Deletion Date *=no data",
         "Modifier 0=not allowed 1=allowed 9=not applicable", "PTP Edit Rationale"],
        ["96416", "96523", None, datetime(2025, 1, 1), "*", 0, "Made-up"],
        ["96416", "96360", "*", 20250101, 20260301, 1, "Made-up"],
    ])
    rows = list(read_table_files(str(ptp))[0][0].rows)
    assert [(r.column2, r.effective, r.deletion, r.modifier) for r in rows] == [
        ("96523", 20250101, 99991231, "0"), ("96360", 20250101, 20260301, "1")]
    aoc = write_xlsx(tmp_path / "AOC_V2026Q1-MCR.xlsx", [
        ["Made-up add-on edits"],
        ["Add-On Code", "AOC Del Dt (Julian)", "Primary Code", "Primary Code Del Dt (Julian)", "AOC Edit Type",
         "AOC Edit Eff Dt (Julian)", "AOC Edit Del Dt (Julian)"],
        ["96415", None, "96413", None, 1, 2025001, 2026060],
    ])
    row = next(read_table_files(str(aoc))[0][0].rows)
    assert (row.effective, row.deletion) == (20250101, 20260301)  # day 60 of 2026 is 1 March


def test_a_zip_of_parts_is_read_directly_and_its_notes_are_skipped(tmp_path: Path) -> None:
    archive = tmp_path / "ccipra-v320r0.zip"
    with zipfile.ZipFile(archive, "w") as out:
        out.write(PTP_Q1, "ccipra-v320r0-f1.txt")
        out.writestr("ccipra-v320r0-f2.txt", PTP_Q1.read_text().replace("96413\t96360", "96401\t96360"))
        out.writestr("readme.pdf", b"%PDF-1.4 made up")
        out.writestr("notes.txt", "Read me first.\nNothing tabular here.\n")
    tables, skipped = read_table_files(str(archive))
    assert [t.name.split("!")[1] for t in tables] == ["ccipra-v320r0-f1.txt", "ccipra-v320r0-f2.txt"]
    assert sorted(skipped) == ["notes.txt", "readme.pdf"]


def read_all(path: Path) -> None:
    for table in read_table_files(str(path))[0]:
        list(table.rows)


@pytest.mark.parametrize(("text", "problem"), [
    ("title\nCode\tUnits\n96413\t1\n", "no header row"),
    ("Column 1\tColumn 2\tEffective\tDeletion\tModifier\n96413\t96360\t20250101\t*\t5\n", ":2: modifier indicator"),
    ("Column 1\tColumn 2\tEffective\tDeletion\tModifier\n\n96413\t96360\t20251301\t*\t1\n", ":3: effective date"),
    ("Column 1\tColumn 2\tEffective\tDeletion\tModifier\n96413\t9636\t20250101\t*\t1\n", ":2: column 2"),
    ("HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator\n96413,1.5,2 Date\n", ":2: MUE value"),
    ("HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator\n96413,1,Line Edit\n",
     ":2: MUE adjudication indicator"),
    ("HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator\n96413,1,1\n96413,2,1\n",
     ":3: 96413 appears twice (first on line 2)"),
])
def test_bad_headers_and_rows_are_refused_with_file_and_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / f"bad-2026Q1-medicare{'.csv' if ',' in text else '.txt'}"
    path.write_text(text)
    with pytest.raises(TableFileError) as caught:
        read_all(path)
    assert str(path) in caught.value.message and problem in caught.value.message
    result = run_cli("tables", "import", str(path), "--tables", str(tmp_path / "t.sqlite"))
    assert result.returncode == 64 and b"TABLE_FILE_INVALID" in result.stderr


def test_other_files_are_refused(tmp_path: Path) -> None:
    for name, content in (("edits.pdf", b"%PDF"), ("edits.zip", b"not a zip"), ("edits.xlsx", b"not a workbook")):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(TableFileError):
            read_table_files(str(path))
        assert run_cli("tables", "import", str(path), "--tables", str(tmp_path / "t.sqlite")).returncode == 64


def test_source_and_quarter_come_from_the_name_or_the_command_line(tmp_path: Path) -> None:
    unnamed = tmp_path / "edits.txt"
    shutil.copy(PTP_Q1, unnamed)
    url = str(tmp_path / "t.sqlite")
    with pytest.raises(UsageError, match="--source"):
        import_files([str(unnamed)], url)
    with pytest.raises(UsageError, match="--quarter"):
        import_files([str(unnamed)], url, source="medicaid")
    with pytest.raises(UsageError, match="2026Q1"):
        import_files([str(unnamed)], url, source="medicaid", quarter="2026-1")
    done = import_files([str(unnamed)], url, source="medicaid", quarter="2025Q4")
    assert [(d.source, d.version) for d in done] == [("medicaid", "2025Q4")]


def test_import_records_source_kind_quarter_and_hash_and_is_idempotent(store_url: str) -> None:
    import hashlib

    first = import_files([str(p) for p in ALL], store_url)
    again = import_files([str(PTP_Q1)], store_url)
    assert not any(d.already_loaded for d in first) and again[0].already_loaded
    store = open_tables(store_url)
    try:
        records = {(r.source, r.kind, r.version, r.file_hash, r.rows) for r in store.imports()}
    finally:
        store.close()
    assert ("medicare", "ptp", "2026Q1", hashlib.sha256(PTP_Q1.read_bytes()).hexdigest(), 5) in records
    assert {(s, k, v) for s, k, v, _, _ in records} == {
        ("medicare", "ptp", "2026Q1"), ("medicare", "ptp", "2026Q2"), ("medicare", "mue", "2026Q1"),
        ("medicare", "aoc", "2026Q1"), ("medicaid", "ptp", "2026Q1"), ("medicaid", "mue", "2026Q1")}
    assert len(records) == len(ALL)  # the second import of the same file added nothing


def test_a_failed_import_leaves_the_previous_tables(store_url: str, tmp_path: Path) -> None:
    import_files([str(PTP_Q1)], store_url)
    bad = tmp_path / "MCR_MUE_2026Q2.csv"
    bad.write_text("HCPCS/CPT Code,Practitioner Services MUE Values,MUE Adjudication Indicator\n96413,x,2\n")
    with pytest.raises(TableFileError):
        import_files([str(PTP_Q2), str(bad)], store_url)
    store = open_tables(store_url)
    try:
        assert [(r.kind, r.version) for r in store.imports()] == [("ptp", "2026Q1")]
    finally:
        store.close()


def test_a_failure_while_writing_rolls_the_whole_import_back(tmp_path: Path) -> None:
    url = str(tmp_path / "t.sqlite")
    import_files([str(PTP_Q1)], url)
    with sqlite3.connect(url) as db:  # a constraint the second file's rows break, as a full disk would
        db.execute("CREATE TRIGGER no_mue BEFORE INSERT ON ncc_mue BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    with pytest.raises(OSError):
        import_files([str(PTP_Q2), str(MUE_Q1)], url)
    with sqlite3.connect(url) as db:
        assert db.execute("SELECT version FROM ncc_import").fetchall() == [("2026Q1",)]
        assert db.execute("SELECT count(*) FROM ncc_ptp").fetchone() == (5,)


def test_the_store_lies_beside_the_history_unless_named(tmp_path: Path) -> None:
    history = str(tmp_path / "state" / "history.sqlite")
    assert tables_url(None, history, env={}) == str(tmp_path / "state" / "tables.sqlite")
    assert tables_url(None, history, env={"EDI837_TABLES": "/x/t.sqlite"}) == "/x/t.sqlite"
    assert tables_url("/y.sqlite", history, env={"EDI837_TABLES": "/x/t.sqlite"}) == "/y.sqlite"
    assert tables_url(None, "postgresql://h/db", env={}) == "postgresql://h/db"
    assert tables_url(None, None, env={}) is None


# -- NCC001: PTP pairs -------------------------------------------------------------------------
def test_ptp_indicator_1_flags_without_a_modifier_and_is_silent_with_one(loaded: str) -> None:
    hits = found(loaded, day_file(("96413", "1", JAN), ("96360", "1", JAN)))
    assert [(rule, code, action) for rule, code, action, _ in hits] == [("NCC001", "96360", "flag")]
    assert "96413" in hits[0][3] and "2026Q1" in hits[0][3] and "Medicare" in hits[0][3]
    assert found(loaded, day_file(("96413", "1", JAN), ("96360:59", "1", JAN))) == []
    assert found(loaded, day_file(("96413:XS", "1", JAN), ("96360", "1", JAN))) == []


def test_ptp_indicator_0_drops_and_fires_whatever_the_modifier(loaded: str) -> None:
    hits = found(loaded, day_file(("96413", "1", JAN), ("96523", "1", JAN), ("J9190", "1", JAN)))
    assert [(rule, code, action) for rule, code, action, _ in hits] == [("NCC001", "96523", "drop_line")]
    with_modifier = found(loaded, day_file(("96413", "1", JAN), ("96523:59", "1", JAN), ("J9190", "1", JAN)))
    assert [(code, action) for _, code, action, _ in with_modifier] == [("96523", "flag")]
    assert "not dropped" in with_modifier[0][3]  # rewritable-line logic: the modifier may mean a separate visit


def test_ptp_indicator_9_never_fires(loaded: str) -> None:
    assert found(loaded, day_file(("96409", "1", JAN), ("96374", "1", JAN))) == []


def test_ptp_pairs_across_claims_of_one_provider_patient_day_only(loaded: str) -> None:
    two_claims = day_file(("96413", "1", JAN), ("96360", "1", JAN), claims=2)
    assert [code for _, code, _, _ in found(loaded, two_claims)] == ["96360"]
    other_day = x12(*HEADER, *subscriber(), *claim("C0", ("96413", "1", JAN)), *claim("C1", ("96360", "1", "20260116")))
    assert found(loaded, other_day) == []
    other_provider = x12(*HEADER, *subscriber(), *claim("C0", ("96413", "1", JAN)),
                         "HL*3**20*1", "NM1*85*2*OTHER CLINIC*****XX*1245319599", "N3*2 MAIN", "N4*TOWN*IL*62701",
                         "REF*EI*987654321", *[s.replace("HL*2*1*", "HL*4*3*") for s in subscriber(hl=2)],
                         *claim("C1", ("96360", "1", JAN)))
    assert found(loaded, other_provider) == []


def test_ptp_edits_apply_by_date_of_service_across_quarters(loaded: str) -> None:
    pair = ("96413", "1"), ("96360", "1")
    assert next(m for *_, m in found(loaded, day_file(*[(c, u, FEB) for c, u in pair]))).endswith("table 2026Q1)")
    assert found(loaded, day_file(*[(c, u, MAY) for c, u in pair])) == []  # deleted in 2026Q2's file
    deleted = ("96413", "1"), ("96372", "1")  # deletion date 2026-02-01 inside 2026Q1
    assert len(found(loaded, day_file(*[(c, u, JAN) for c, u in deleted]))) == 1
    assert found(loaded, day_file(*[(c, u, FEB) for c, u in deleted])) == []


def test_payer_scopes_pick_the_tables(loaded: str, tmp_path: Path) -> None:
    pair = [("96413", "1", JAN), ("96360", "1", JAN)]
    medicaid = found(loaded, day_file(*pair, filing="MC"))
    assert [(code, action) for _, code, action, _ in medicaid] == [("96360", "drop_line")]  # Medicaid: indicator 0
    assert "Medicaid" in medicaid[0][3]
    assert found(loaded, day_file(*pair, filing="CI")) == []
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    text = (rules / "ncc.toml").read_text().replace('modifiers = "distinct_modifiers"',
                                                    'modifiers = "distinct_modifiers"\nother_tables = "medicare"')
    (rules / "ncc.toml").write_text(text)
    mapped = found(loaded, day_file(*pair, filing="CI"), rules_dir=str(rules))
    assert [(code, action) for _, code, action, _ in mapped] == [("96360", "flag")]


# -- NCC002: MUE ------------------------------------------------------------------------------
def test_mue_per_line_mai_1(loaded: str) -> None:
    assert [(c, a) for _, c, a, _ in found(loaded, day_file(("96523", "2", JAN)))] == [("96523", "flag")]
    assert found(loaded, day_file(("96523", "1", JAN), ("96523", "1", JAN), claims=2)) == []


def test_mue_per_day_mai_2_and_3_across_claims(loaded: str) -> None:
    hits = found(loaded, day_file(("96413", "1", JAN), ("96413", "1", JAN), claims=2))
    assert [(rule, code) for rule, code, _, _ in hits] == [("NCC002", "96413")]
    assert "MAI 2" in hits[0][3] and "2 units per day" in hits[0][3]
    three = found(loaded, day_file(("96413", "1", JAN), ("96415", "4", JAN), ("96415", "3", JAN)))
    assert [(rule, code) for rule, code, _, _ in three] == [("NCC002", "96415")]
    assert found(loaded, day_file(("96413", "1", JAN), ("96415", "6", JAN))) == []


def test_mue_does_not_count_span_lines(loaded: str) -> None:
    data = x12(*HEADER, *subscriber(), *span(claim("C0", ("96523", "5", JAN)), JAN, "20260119"))
    assert found(loaded, data) == []


def test_medicaid_lines_use_the_medicaid_mue(loaded: str) -> None:
    assert found(loaded, day_file(("96413", "2", JAN), filing="MC")) == []  # Medicaid's made-up value is 2
    assert [c for _, c, _, _ in found(loaded, day_file(("96413", "2", JAN)))] == ["96413"]


# -- NCC003: add-on codes ----------------------------------------------------------------------
def test_add_on_without_its_primary(loaded: str) -> None:
    alone = found(loaded, day_file(("96415", "1", JAN)))
    assert [(rule, code) for rule, code, _, _ in alone] == [("NCC003", "96415")]
    assert "96413" in alone[0][3] and "type 1" in alone[0][3]
    assert found(loaded, day_file(("96413", "1", JAN), ("96415", "1", JAN), claims=2)) == []
    assert found(loaded, day_file(("96409", "1", JAN), ("96415", "1", JAN))) != []  # 96409 is no primary of 96415


def test_add_on_with_its_primary_in_an_earlier_file(loaded: str) -> None:
    from datetime import date

    from edi.rules.history import MemoryHistory
    from edi.rules.kinds import HistoryEvent

    key = "00431\x1fM1\x1fDOE\x1fJO\x1f19500101"
    data = day_file(("96415", "1", JAN))
    store = open_tables(loaded)
    try:
        def ncc003(history: MemoryHistory) -> list[str]:
            engine = RuleEngine(load_rule_book(), select=("NCC003",), history=history, tables=store.lookup())
            return [f.code for f in validate([data], name="t", engine=engine).findings]

        assert ncc003(MemoryHistory([(key, HistoryEvent(date(2026, 1, 15), "96413", "EARLIER"))])) == []
        assert ncc003(MemoryHistory([(key, HistoryEvent(date(2026, 1, 14), "96413", "EARLIER"))])) == ["96415"]
        # and the store is told to keep the primaries' lines, so that the next file can see them
        engine = RuleEngine(load_rule_book(), history=MemoryHistory(), tables=store.lookup())
        recorded = engine.history_codes()
        assert all(code in recorded for code in ("96413", "96409", "96365"))
    finally:
        store.close()


def test_add_on_type_3_and_type_2(loaded: str) -> None:
    assert found(loaded, day_file(("96365", "1", JAN), ("96367", "1", JAN))) == []
    assert [c for _, c, _, _ in found(loaded, day_file(("96367", "1", JAN)))] == ["96367"]
    assert found(loaded, day_file(("96375", "1", JAN))) == []  # type 2: the contractor defines the primaries


def test_a_file_of_several_providers_payers_modifiers_and_spans(loaded: str) -> None:
    """Exactly what the tables say: each payer its tables, each provider its own day."""
    second_provider = ["HL*6**20*1", "NM1*85*2*OTHER CLINIC*****XX*1245319599", "N3*2 MAIN", "N4*TOWN*IL*62701",
                       "REF*EI*987654321"]
    data = x12(
        *HEADER,
        *subscriber(2, filing="MB", member="M1"), *claim("A1", ("96413", "1", JAN), ("96360", "1", JAN)),
        *subscriber(3, filing="MC", member="M2", last="SMITH"),
        *claim("B1", ("96413", "1", JAN), ("96360:59", "1", JAN)),
        *subscriber(4, filing="CI", member="M3", last="JONES"), *claim("C1", ("96413", "1", JAN), ("96360", "1", JAN)),
        *subscriber(5, filing="MB", member="M4", last="BROWN"),
        *span(claim("D1", ("96413", "1", JAN), ("96523", "3", JAN)), JAN, "20260117"),
        *second_provider,
        *[s.replace("HL*7*1*", "HL*7*6*") for s in subscriber(7, filing="MB", member="M1")],
        *claim("E1", ("96415", "1", JAN)),
    )
    store = open_tables(loaded)
    try:
        engine = RuleEngine(load_rule_book(), select=("NCC",), tables=store.lookup())
        report = validate([data], name="test", engine=engine)
    finally:
        store.close()
    assert sorted((f.rule, f.claim, f.code, f.action) for f in report.findings) == [
        ("NCC001", "A1", "96360", "flag"),  # Medicare, indicator 1, no modifier
        ("NCC001", "B1", "96360", "flag"),  # Medicaid's indicator 0 ignores the 59; not rewritable with it
        ("NCC001", "D1", "96523", "flag"),  # indicator 0 on a span line: its day is uncertain
        ("NCC003", "E1", "96415", "flag"),  # 96413 was billed by the other provider
    ]


# -- rewriting and the command line ------------------------------------------------------------
def test_fix_drops_only_rewritable_column_2_lines(tmp_path: Path) -> None:
    url = str(tmp_path / "t.sqlite")
    assert run_cli("tables", "import", *map(str, ALL), "--tables", url).returncode == 0
    lines = [("96413", "1", JAN), ("96523", "1", JAN), ("J9190", "1", JAN)]
    primary = tmp_path / "primary.x12"
    primary.write_bytes(day_file(*lines))
    out = tmp_path / "out.x12"
    result = run_cli("fix", str(primary), "-o", str(out), "--tables", url, "--select", "NCC")
    assert result.returncode == 0, result.stderr
    assert b"96523" not in out.read_bytes() and b"96413" in out.read_bytes()
    cob = tmp_path / "secondary.x12"
    cob.write_bytes(x12(*HEADER, *subscriber(), *secondary(claim("C0", *lines))))
    result = run_cli("fix", str(cob), "-o", str(out), "--tables", url, "--select", "NCC")
    assert result.returncode == 1 and out.read_bytes() == cob.read_bytes()


def test_rules_command_shows_ncc_rules_inactive_until_a_table_is_loaded(tmp_path: Path) -> None:
    url = str(tmp_path / "t.sqlite")
    before = run_cli("rules").stdout.decode().splitlines()
    assert all("inactive" in line for line in before if line.startswith("NCC"))
    assert run_cli("tables", "import", str(MUE_Q1), "--tables", url).returncode == 0
    after = {line.split()[0]: line for line in run_cli("rules", "--tables", url).stdout.decode().splitlines()}
    assert "inactive" not in after["NCC002"] and "inactive" in after["NCC001"] and "inactive" in after["NCC003"]
    listing = run_cli("tables", "list", "--tables", url).stdout.decode()
    assert "medicare  mue   2026Q1" in listing


def test_a_named_store_that_does_not_exist_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "in.x12"
    data.write_bytes(day_file(("96413", "1", JAN)))
    result = run_cli("validate", str(data), "--tables", str(tmp_path / "typo.sqlite"))
    assert result.returncode == 64 and b"TABLES_NOT_FOUND" in result.stderr
