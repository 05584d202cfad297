"""The watcher's completeness check and ISA reading go through the reader and the envelope checker
(``edi.x12.envelope``): an upload is complete when every interchange is closed as its ISA declares."""

from __future__ import annotations

from pathlib import Path

import pytest

from edi.adapters import jobs
from edi.adapters.rules_files import load_rule_book
from edi.adapters.watcher import Watcher, WatchSettings
from edi.synthetic import generate


@pytest.fixture(scope="module")
def interchange() -> bytes:
    return b"".join(generate(3, 1))


@pytest.fixture
def watcher(tmp_path: Path) -> Watcher:
    made = Watcher(WatchSettings(root=str(tmp_path / "root")), jobs.JobOptions(book=load_rule_book()))
    yield made
    made.ledger.close()


def in_chunks(data: bytes, size: int):
    return lambda: iter([data[i:i + size] for i in range(0, len(data), size)] or [b""])


@pytest.mark.parametrize("size", [1 << 20, 7])
def test_a_whole_interchange_is_complete_in_any_chunking(watcher: Watcher, interchange: bytes, size: int) -> None:
    assert watcher._completeness(in_chunks(interchange, size)) == "complete"
    assert watcher._completeness(in_chunks(interchange + interchange.replace(b"000000001", b"000000002"), size)) \
        == "complete"


@pytest.mark.parametrize(("change", "why"), [
    (lambda d: d[: len(d) // 2], "cut in the middle"),
    (lambda d: d[: d.rindex(b"IEA")], "no IEA"),
    (lambda d: d.replace(b"IEA*1*000000001", b"IEA*1*000000009"), "IEA02 is not ISA13"),
    (lambda d: d.replace(b"IEA*1*", b"IEA*2*"), "IEA01 counts another number of groups"),
    (lambda d: d.replace(b"IEA*1*", b"IEA*X*"), "IEA01 is not a number"),
    (lambda d: d[: d.rindex(b"IEA")] + d, "a second ISA before the first IEA"),
    (lambda d: d + d[d.rindex(b"IEA"):], "an IEA without an ISA"),
])
def test_an_interchange_not_closed_as_its_isa_declares_is_incomplete(watcher: Watcher, interchange: bytes,
                                                                      change, why: str) -> None:
    assert watcher._completeness(in_chunks(change(interchange), 4096)) == "incomplete", why


def test_errors_inside_the_groups_do_not_hold_a_closed_upload_back(watcher: Watcher, interchange: bytes) -> None:
    """A missing GE or a wrong SE01 is the content's error (CONTENT_ERROR once processed), not a
    sign that the upload is still being written: it must not wait out the grace."""
    without_ge = interchange.replace(interchange[interchange.rindex(b"GE*"):interchange.rindex(b"IEA")], b"")
    assert b"GE*" not in without_ge
    assert watcher._completeness(in_chunks(without_ge, 4096)) == "complete"
    wrong_se = interchange.replace(b"\nSE*", b"\nSE*9", 1)
    assert wrong_se != interchange
    assert watcher._completeness(in_chunks(wrong_se, 4096)) == "complete"


def test_not_x12_and_empty_inputs(watcher: Watcher) -> None:
    assert watcher._completeness(in_chunks(b"hello, this is not an interchange", 4096)) == "not_x12"
    assert watcher._completeness(in_chunks(b"", 4096)) == "not_x12"
    assert watcher._completeness(in_chunks(b"GS*HC*S*R*20261101*1200*1*X*005010X222A1~", 4096)) == "not_x12"


def test_the_isa_sender_and_control_number_are_the_readers(watcher: Watcher, interchange: bytes) -> None:
    sha, sender, control, isa = watcher._identify(in_chunks(interchange, 50))
    assert (sender, control) == ("SYNTHSUBMIT", "000000001") and len(sha) == 64
    assert isa == tuple(interchange.split(b"~", 1)[0].decode().split("*")[1:]) and len(isa) == 16
    assert watcher._identify(in_chunks(b"\xef\xbb\xbf\r\n" + interchange, 4096))[1:3] == ("SYNTHSUBMIT", "000000001")
    assert watcher._identify(in_chunks(b"not x12 at all", 4096))[1:] == (None, None, ())
