"""The gateway's ``?hold=true``: multipart/mixed (forward, held, report) for a client that takes
it, else the forward file with ``X-EDI837-Held``; against the real server on 127.0.0.1."""

from __future__ import annotations

import email
import email.policy
import json

import pytest

from edi.adapters.rules_files import load_rule_book
from edi.split import hold_bytes
from tests.test_gateway import Server
from tests.test_worklist import SAMPLE

BOOK = load_rule_book()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    running = Server(tmp_path_factory.mktemp("gateway-hold"), "--max-bytes", "200000")  # no history: findings as hold_bytes
    yield running
    running.stop()


def parts_of(content_type: str, body: bytes) -> dict[str, tuple[str, bytes]]:
    message = email.message_from_bytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body,
                                       policy=email.policy.HTTP)
    assert message.is_multipart()
    return {part.get_filename(): (part.get_content_type(), part.get_payload(decode=True))
            for part in message.iter_parts()}


def test_multipart_answer_has_the_forward_file_the_held_file_and_the_report(server: Server) -> None:
    data = SAMPLE.read_bytes()
    response = server.post(data, params="?mode=rewrite&hold=true", headers={"Accept": "multipart/mixed"})
    assert response.status_code == 200
    assert response.headers["x-edi837-held"] == "2"
    parts = parts_of(response.headers["content-type"], response.content)
    forward, held, report = hold_bytes(data, BOOK)
    assert parts["forward.x12"] == ("application/edi-x12", forward)
    assert parts["held.x12"] == ("application/edi-x12", held)
    media, record = parts["report.json"]
    assert media == "application/json"
    assert json.loads(record) == json.loads(report._replace(file="request").to_json())


def test_without_multipart_the_forward_file_and_the_held_count(server: Server) -> None:
    data = SAMPLE.read_bytes()
    forward, _, _ = hold_bytes(data, BOOK)
    response = server.post(data, params="?mode=rewrite&hold=true", headers={"Accept": "application/EDI-X12"})
    assert response.status_code == 200
    assert response.content == forward
    assert response.headers["x-edi837-held"] == "2"
    listed = server.post(data, params="?mode=rewrite&hold=true", headers={"Accept": "application/json"}).json()
    assert listed["held_claims"] == 2
    assert {f["claim"] for f in listed["findings"] if f["held"]} == {"PCN04200000031", "PCN04200000032"}


def test_hold_needs_rewrite_mode_and_a_known_value(server: Server) -> None:
    data = SAMPLE.read_bytes()
    assert server.post(data, params="?mode=annotate&hold=true").status_code == 422
    assert server.post(data, params="?hold=yes").status_code == 422
    assert server.post(data, params="?hold=true&hold=false").status_code == 400
    plain = server.post(data, params="?mode=rewrite")
    assert "x-edi837-held" not in plain.headers
