"""Reports for people: HTML and XML built with lxml, golden files, schema, no PHI."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from lxml import etree

from edi.synthetic import generate
from tests.conftest import ROOT, run_cli

SAMPLE = ROOT / "fixtures" / "sample-oncology.x12"
GOLDEN = ROOT / "tests" / "golden"
SCHEMA = etree.XMLSchema(etree.parse(str(ROOT / "edi" / "report" / "report.xsd")))
NS = {"r": "urn:edi837:report:1"}


def json_report(path: Path) -> dict:
    return json.loads(run_cli("validate", "--format", "json", str(path)).stdout)


def charge_of(data: bytes, segment: int) -> Decimal:
    body = data.split(b"~")[segment - 1].strip()
    return Decimal(body.split(b"*")[2].decode())


def test_xml_validates_and_carries_the_same_findings() -> None:
    result = run_cli("validate", "--format", "xml", str(SAMPLE))
    document = etree.fromstring(result.stdout)
    assert SCHEMA.validate(document), SCHEMA.error_log
    report = json_report(SAMPLE)
    found = [(f.get("rule"), f.get("claim"), int(f.get("line")), f.get("code"), int(f.get("segment")))
             for f in document.xpath("//r:finding", namespaces=NS)]
    assert found == [(f["rule"], f["claim"], f["line"], f["code"], f["segment"]) for f in report["findings"]]
    (node,) = document.xpath("//r:file", namespaces=NS)
    assert (int(node.get("claims")), int(node.get("lines"))) == (report["claims"], report["lines"])


def test_xml_schema_rejects_what_it_should() -> None:
    document = etree.fromstring(run_cli("validate", "--format", "xml", str(SAMPLE)).stdout)
    document.xpath("//r:finding", namespaces=NS)[0].set("rule", "XYZ1")
    assert not SCHEMA.validate(document)


@pytest.mark.parametrize(("name", "command"), [
    ("sample.html", ["validate", "--format", "html", "fixtures/sample-oncology.x12"]),
    ("sample.csv", ["validate", "--format", "csv", "fixtures/sample-oncology.x12"]),
    ("sample.xml", ["validate", "--format", "xml", "fixtures/sample-oncology.x12"]),
    ("sample-fix.html", ["fix", "fixtures/sample-oncology.x12", "-o", "-", "--format", "html"]),
    ("sample-fix.csv", ["fix", "fixtures/sample-oncology.x12", "-o", "-", "--format", "csv"]),
    ("sample-fix.xml", ["fix", "fixtures/sample-oncology.x12", "-o", "-", "--format", "xml"]),
])
def test_golden_files(name: str, command: list[str]) -> None:
    """Same sample, same report: regenerate with EDI837_UPDATE_GOLDEN=1 after a deliberate change."""
    result = run_cli(*command, cwd=ROOT)
    output = result.stderr if "-o" in command else result.stdout
    golden = GOLDEN / name
    if os.environ.get("EDI837_UPDATE_GOLDEN") == "1":
        golden.write_bytes(output)
    assert output == golden.read_bytes()


def test_fix_report_shows_before_and_after() -> None:
    result = run_cli("fix", str(SAMPLE), "-o", "-", "--format", "xml")
    document = etree.fromstring(result.stderr)
    assert SCHEMA.validate(document)
    changes = document.xpath("//r:change", namespaces=NS)
    assert changes and document.xpath("//r:file/@rewritten", namespaces=NS) == ["true"]
    claims = {c.get("claim") for c in changes}
    assert "PCN04200000027" in claims  # PMP006 drops the flush (PMP003 only flags since rules v2)
    assert "PCN04200000006" not in claims
    dropped = [c for c in changes if not c.xpath("r:after", namespaces=NS)]
    assert any(c.xpath("string(r:before)", namespaces=NS).startswith("SV1*HC:96523") for c in dropped)


def test_reports_carry_no_phi(tmp_path: Path) -> None:
    from tests.test_phi import CANARY_STRINGS, canary_file

    source = tmp_path / "canary.x12"
    source.write_bytes(canary_file())
    outputs = [run_cli("validate", "--format", fmt, str(source)).stdout for fmt in ("html", "csv", "xml")]
    outputs += [run_cli("fix", str(source), "-o", "-", "--format", fmt).stderr for fmt in ("html", "csv", "xml")]
    for output in outputs:
        assert output.startswith((b"<!DOCTYPE html>", b"<?xml", b"file,claim,patient"))
        for canary in CANARY_STRINGS:
            assert canary.encode() not in output


def test_output_option_writes_any_format(tmp_path: Path) -> None:
    for fmt in ("text", "json", "html", "csv", "xml"):
        out = tmp_path / f"report.{fmt}"
        assert run_cli("validate", "--format", fmt, "--output", str(out), str(SAMPLE)).stdout == b""
        assert out.stat().st_size > 100


def run_on_terminal(*args: str) -> bytes:
    """Run edi837 with stderr on a pseudo-terminal; what it wrote there."""
    leader, follower = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "edi", *args], stdout=subprocess.DEVNULL, stderr=follower,
                               cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 4096)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    process.wait(60)
    os.close(leader)
    return output


def test_progress_bar_only_on_a_terminal_for_large_input(tmp_path: Path) -> None:
    big = tmp_path / "big.x12"
    with open(big, "wb") as handle:
        handle.writelines(generate(16000, seed=3))
    assert big.stat().st_size > 8 * 1024 * 1024
    assert b"reading [" in run_on_terminal("validate", str(big))
    assert b"reading [" not in run_on_terminal("validate", str(SAMPLE))
    assert b"reading [" not in run_cli("validate", str(big)).stderr
