"""One outcome for every front end: X12 errors are refused, temporary failures retried, the rest
passed on (``jobs.process``), and each outcome carries its exit code and HTTP status."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from edi.adapters import jobs
from edi.adapters.rules_files import load_rule_book
from edi.errors import TemporaryFailure
from edi.pipeline import Accepted, Refused, Retry, fix
from edi.rewrite import fix_bytes
from tests.conftest import ROOT
from tests.helpers import HEADER, claim, subscriber, x12

SAMPLE = ROOT / "fixtures" / "sample-oncology.x12"


@pytest.fixture(scope="module")
def options() -> jobs.JobOptions:
    return jobs.JobOptions(book=load_rule_book())


class UnreachableHistory:
    """A history store that answers lookups but is down when the file's events are recorded."""

    def prefetch(self, patient_keys, claims=()) -> None:
        pass

    def events(self, patient_key, provider, since, until):
        return []

    def record(self, file_hash, events, claims=()):
        raise TemporaryFailure("history store unavailable (OperationalError)", code="HISTORY_UNAVAILABLE")


def broken_file() -> bytes:
    return x12(*HEADER, *subscriber(), *claim("C1", ("96413", "1", "20261101")), se_count=False)


def test_a_file_with_findings_is_accepted_and_its_fixed_copy_written(tmp_path: Path, options) -> None:
    out = tmp_path / "out.x12"
    outcome = jobs.process(str(SAMPLE), options, mode="rewrite", output=str(out))
    assert isinstance(outcome, Accepted)
    assert out.read_bytes() == fix_bytes(SAMPLE.read_bytes(), options.book)
    assert outcome.result is not None and outcome.result.dropped
    assert any(finding.applied for finding in outcome.report.findings)
    assert (outcome.exit_code, outcome.http_status) == (1, 200)  # flags are left for review


def test_annotate_passes_the_input_on_unchanged(options) -> None:
    out = io.BytesIO()
    outcome = jobs.process(str(SAMPLE), options, mode="annotate", output=out)
    assert isinstance(outcome, Accepted) and outcome.result is None
    assert out.getvalue() == SAMPLE.read_bytes()
    assert not any(finding.applied for finding in outcome.report.findings)


def test_x12_errors_are_refused_with_their_codes_and_nothing_is_opened(tmp_path: Path, options) -> None:
    source = tmp_path / "in.x12"
    source.write_bytes(broken_file())
    outcome = jobs.process(str(source), options, mode="rewrite", output=str(tmp_path / "out.x12"))
    assert isinstance(outcome, Refused)
    assert "SE01_COUNT" not in outcome.codes and "MISSING_SE" in outcome.codes
    assert (outcome.exit_code, outcome.http_status) == (65, 422)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.x12"]  # no output, no temp file


def test_an_unreadable_input_is_refused_with_exit_66(tmp_path: Path, options) -> None:
    outcome = jobs.process(str(tmp_path / "missing.x12"), options, mode="rewrite", output=str(tmp_path / "o"))
    assert isinstance(outcome, Refused) and outcome.codes == ("UNREADABLE",)
    assert (outcome.exit_code, outcome.http_status) == (66, 422)
    assert not (tmp_path / "o").exists()


def test_a_history_down_is_a_retry_and_no_output_goes_out(tmp_path: Path, options) -> None:
    out = tmp_path / "out.x12"
    outcome = jobs.process(str(SAMPLE), options._replace(history=UnreachableHistory()), mode="rewrite",
                           output=str(out))
    assert isinstance(outcome, Retry) and outcome.code == "HISTORY_UNAVAILABLE"
    assert (outcome.exit_code, outcome.http_status) == (75, 503)
    assert list(tmp_path.iterdir()) == []


def test_an_input_that_changes_between_the_passes_is_a_retry(tmp_path: Path, options) -> None:
    reads = []

    def source():
        reads.append(1)
        data = SAMPLE.read_bytes()
        yield data if len(reads) == 1 else data.replace(b"PCN04200000006", b"PCN04200000007")

    outcome = jobs.process(source, options, mode="rewrite", output=str(tmp_path / "out.x12"))
    assert isinstance(outcome, Retry) and outcome.code == "INPUT_CHANGED"
    assert list(tmp_path.iterdir()) == []


def test_the_hooks_run_in_order_and_may_ask_for_a_retry(tmp_path: Path, options) -> None:
    out = tmp_path / "out.x12"
    calls = []

    def publish(report) -> None:
        calls.append(("publish", out.exists(), any(f.applied for f in report.findings)))

    outcome = jobs.process(str(SAMPLE), options, mode="rewrite", output=str(out),
                           check_input=lambda report: calls.append(("checked", bool(report.sha256))),
                           before_record=lambda report: calls.append(("record", out.exists())),
                           before_publish=publish)
    assert isinstance(outcome, Accepted) and out.exists()
    # The report goes out with the output, not after: publish sees the applied report, no output yet.
    assert calls == [("checked", True), ("record", False), ("publish", False, True)]

    def changed(report) -> None:
        raise TemporaryFailure("changed", code="INPUT_CHANGED")

    again = jobs.process(str(SAMPLE), options, mode="rewrite", output=str(tmp_path / "other.x12"),
                         check_input=changed)
    assert isinstance(again, Retry) and not (tmp_path / "other.x12").exists()


def test_pipeline_fix_writes_what_fix_bytes_makes_and_says_what_it_put_in(options) -> None:
    data = SAMPLE.read_bytes()
    report, _ = jobs.check(lambda: iter([data]), options)
    pieces: list[bytes] = []
    fixed = fix(iter([data[:1000], data[1000:]]), report, pieces.append)
    assert b"".join(pieces) == fix_bytes(data, options.book)
    assert fixed.new_codes and set(fixed.new_codes) == fixed.result.replaced
    assert "96416" in fixed.new_codes.values()  # 96414 was deleted in 2006: 96416 put in


def test_pipeline_fix_refuses_bytes_other_than_pass_1s(options) -> None:
    data = SAMPLE.read_bytes()
    report, _ = jobs.check(lambda: iter([data]), options)
    with pytest.raises(TemporaryFailure) as caught:
        fix(iter([data + b"\n"]), report, lambda piece: None)
    assert caught.value.code == "INPUT_CHANGED" and caught.value.exit_code == 75


def test_the_front_ends_translate_the_outcome_instead_of_deciding_again() -> None:
    """'X12 errors: refuse; temporary failure: retry; else pass on' lives in jobs.process only:
    the front ends that pass files on map its outcome (each once) and no longer test the report."""
    for name in ("edi/cli.py", "edi/adapters/gateway.py", "edi/adapters/watcher.py"):
        source = (ROOT / name).read_text(encoding="utf-8")
        assert "report.errors or report.unreadable" not in source, name
        assert "jobs.process(" in source and "isinstance(outcome, Retry)" in source, name
    assert (ROOT / "edi/cli.py").read_text(encoding="utf-8").count("jobs.process(") == 2  # fix, filter
