"""The worklist for a billing office: HTML grouped by claim, CSV one finding per row, a page
Chromium renders with its summary, chart and first claim."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import html

from edi.adapters.rules_files import load_rule_book
from edi.report.worklist import CSV_COLUMNS, WorklistFile, html_pieces
from tests.conftest import run_cli
from tests.test_reports import SAMPLE, charge_of, json_report, run_on_terminal

BOOK = load_rule_book()


def sample_html(*extra: str) -> html.HtmlElement:
    result = run_cli("validate", "--format", "html", *extra, str(SAMPLE))
    assert result.returncode == 1
    return html.fromstring(result.stdout)


def test_each_claim_with_findings_has_its_findings_titles_and_what_to_bill_instead() -> None:
    page = sample_html()
    report = json_report(SAMPLE)
    sections = page.xpath("//section[@class='claim']")
    claims = {f["claim"] for f in report["findings"]}
    assert len(sections) == len(claims)
    for section in sections:
        heading = section.xpath("string(h3)")
        claim = heading.split(":")[0].removeprefix("Claim ")
        assert claim in claims
        assert "patient " in heading and "payer " in heading
        findings = [f for f in report["findings"] if f["claim"] == claim]
        rows = section.xpath(".//tbody/tr")
        assert len(rows) == len(findings)
        for row, finding in zip(rows, findings, strict=True):
            spec = BOOK.rule(finding["rule"])
            cells = [cell.text_content() for cell in row.xpath("td")]
            assert cells[1] == finding["code"]
            assert spec.title in cells[3] and finding["rule"] in cells[3]
            assert spec.docs["instead"] in cells[5] and spec.docs["why"] in cells[5]


def test_claims_with_the_most_dollars_left_come_first() -> None:
    page = sample_html()
    report = json_report(SAMPLE)
    data = SAMPLE.read_bytes()
    left: dict[str, Decimal] = {}
    for finding in report["findings"]:
        if finding["severity"] == "error":
            left[finding["claim"]] = left.get(finding["claim"], Decimal(0)) + charge_of(data, finding["segment"])
    order = [s.xpath("string(h3)").split(":")[0].removeprefix("Claim ") for s in page.xpath("//section")]
    dollars = [left.get(claim, Decimal(0)) for claim in order]
    assert dollars == sorted(dollars, reverse=True)


def summary_of(page: html.HtmlElement) -> dict[str, str]:
    return {row.xpath("string(th)"): row.xpath("string(td)") for row in page.xpath("//table[@id='summary']//tr")}


def test_summary_totals_by_rule_and_payer_add_up() -> None:
    page = sample_html()
    report = json_report(SAMPLE)
    data = SAMPLE.read_bytes()
    at_risk = sum({f["segment"]: charge_of(data, f["segment"]) for f in report["findings"]
                   if f["severity"] == "error"}.values(), Decimal(0))
    summary = summary_of(page)
    assert summary["dollars at risk found"] == f"${at_risk:,.2f}"
    assert summary["findings"] == str(len(report["findings"]))
    payer_rows = page.xpath("//h3[text()='Dollars at risk by payer']/following-sibling::table[1]/tbody/tr")
    payer_total = sum(Decimal(row.xpath("string(td[3])").strip("$").replace(",", "")) for row in payer_rows)
    assert payer_total == at_risk  # each line belongs to one payer
    chart = page.xpath("//*[local-name()='svg']")[0]
    assert len(chart.xpath(".//*[local-name()='rect'][@class='bar-findings']")) == len({f["rule"] for f in report["findings"]})
    assert not page.xpath("//script")


def test_fix_splits_dollars_between_applied_and_left_for_review(tmp_path: Path) -> None:
    result = run_cli("fix", str(SAMPLE), "-o", str(tmp_path / "out.x12"), "--format", "html", "--report",
                     str(tmp_path / "r.json"))
    page = html.fromstring(result.stdout)
    report = json.loads((tmp_path / "r.json").read_text())
    data = SAMPLE.read_bytes()

    def dollars(applied: bool) -> Decimal:
        return sum({f["segment"]: charge_of(data, f["segment"]) for f in report["findings"]
                    if f["severity"] == "error" and f["applied"] == applied}.values(), Decimal(0))

    summary = summary_of(page)
    assert summary["applied by fix"] == f"${dollars(True):,.2f}"
    assert summary["left for a person to review"] == f"${dollars(False):,.2f}"
    assert dollars(True) > 0 and dollars(False) > 0
    assert "fix removed line 2 (96523)" in page.text_content()


def test_csv_has_one_row_per_finding() -> None:
    result = run_cli("validate", "--format", "csv", str(SAMPLE))
    rows = list(csv.DictReader(io.StringIO(result.stdout.decode())))
    report = json_report(SAMPLE)
    assert tuple(rows[0]) == CSV_COLUMNS
    assert sorted((r["claim"], r["rule"], r["line"]) for r in rows) == sorted(
        (f["claim"], f["rule"], str(f["line"])) for f in report["findings"])
    for row in rows:
        assert row["rule title"] == BOOK.rule(row["rule"]).title
        assert (row["dollars at stake"] != "") == (row["severity"] == "error")
    assert b"\r\n" in result.stdout


def test_x12_errors_say_the_clearinghouse_will_reject_the_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.x12"
    broken.write_bytes(SAMPLE.read_bytes().replace(b"\nSE*743", b"\nSE*9743", 1))
    result = run_cli("validate", "--format", "html", str(broken))
    assert result.returncode == 65
    page = html.fromstring(result.stdout)
    (box,) = page.xpath("//div[@id='x12-errors']")
    assert "clearinghouse will reject this file" in box.text_content()
    assert "SE_COUNT" in box.text_content() or box.xpath(".//tbody/tr")


def test_a_long_worklist_shows_the_top_and_points_to_the_csv() -> None:
    from edi.pipeline import validate
    from edi.report.documents import worklist_file
    from edi.rules.engine import RuleEngine

    engine = RuleEngine(BOOK)
    report = validate([SAMPLE.read_bytes()], name="sample", engine=engine)
    made: WorklistFile = worklist_file(report, engine)
    page = html.fromstring("".join(html_pieces([made], claims_shown=2)))
    assert len(page.xpath("//section[@class='claim']")) == 2
    assert "Every finding of every claim is in the CSV" in page.xpath("string(//p[@class='more'])")


def test_csv_cells_a_spreadsheet_would_run_are_quoted() -> None:
    from edi.report.worklist import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell("@SUM") == "'@SUM"
    assert _cell(Decimal("12.5")) == "12.50"
    assert _cell("96413") == "96413"


def test_fix_shows_the_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    from edi.synthetic import generate

    big = tmp_path / "big.x12"
    with open(big, "wb") as handle:
        handle.writelines(generate(16000, seed=3))
    assert b"checking [" in run_on_terminal("fix", str(big), "-o", str(tmp_path / "out.x12"))
    assert b"checking [" not in run_on_terminal("fix", str(SAMPLE), "-o", str(tmp_path / "out.x12"))


# -- the page as a browser shows it ------------------------------------------------------------

def chromium() -> str:
    """Debian's ``chromium`` (``$EDI837_CHROMIUM`` names another build); CI installs it."""
    found = os.environ.get("EDI837_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("chromium is not installed (.ci/run installs it)")
        pytest.skip("chromium is not installed here (apt-get install -y chromium)")
    return found


def test_chromium_renders_the_summary_the_chart_and_the_first_claim(tmp_path: Path) -> None:
    """Headless Chromium prints the page's DOM after layout and takes a screenshot: the summary,
    the chart and the first claim are there, with a size on the page (not pixel-exact)."""
    browser = chromium()
    page = tmp_path / "worklist.html"
    page.write_bytes(run_cli("validate", "--format", "html", str(SAMPLE)).stdout)
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--user-data-dir={tmp_path / 'profile'}"]
    # The page's own measurements, taken by the browser after layout, written into the title.
    probe = tmp_path / "probe.html"
    probe.write_text(page.read_text() + """<script>
      const box = id => { const e = document.querySelector(id); if (!e) return null;
                          const r = e.getBoundingClientRect(); return [Math.round(r.width), Math.round(r.height)]; };
      document.title = JSON.stringify({summary: box('#summary'), chart: box('#chart'),
                                       claim: box('section.claim'), bars: document.querySelectorAll('#chart rect').length});
    </script>""")
    dumped = subprocess.run([browser, *flags, "--dump-dom", probe.as_uri()], capture_output=True, timeout=120, check=True)
    title = html.fromstring(dumped.stdout).xpath("string(//title)")
    sizes = json.loads(title)
    for name in ("summary", "chart", "claim"):
        width, height = sizes[name]
        assert width > 100 and height > 20, (name, sizes[name])
    assert sizes["bars"] > 0
    shot = tmp_path / "shot.png"
    subprocess.run([browser, *flags, "--window-size=1200,1600", f"--screenshot={shot}", page.as_uri()],
                   capture_output=True, timeout=120, check=True)
    image = shot.read_bytes()
    assert image.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(image[16:20], "big"), int.from_bytes(image[20:24], "big")
    assert (width, height) == (1200, 1600)
    assert len(image) > 50_000  # a page with tables and bars, not a blank one (a blank 1200x1600 PNG is ~10 KB)

