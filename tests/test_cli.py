"""The ``edi837 validate`` command as a process: formats, exit codes, logs."""

from __future__ import annotations

import argparse
import json
import os
import stat
import subprocess
import sys

from tests.conftest import ROOT, run_cli
from tests.helpers import HEADER, claim, subscriber, x12

GOOD = x12(*HEADER, *subscriber(), *claim("C1", ("99213", "1", "20261101")))


def test_clean_file_exit_0_and_text_summary(tmp_path) -> None:
    path = tmp_path / "good.x12"
    path.write_bytes(GOOD)
    result = run_cli("validate", str(path))
    assert result.returncode == 0
    assert result.stdout.decode().strip() == f"{path}: clean: 1 transaction(s), 1 claim(s), 1 line(s), 0 finding(s), 0 error(s)"


def test_x12_errors_exit_65_with_positions(tmp_path) -> None:
    path = tmp_path / "bad.x12"
    path.write_bytes(GOOD.replace(b"SE*", b"SE*1", 1))
    result = run_cli("validate", "--format", "json", str(path))
    assert result.returncode == 65
    report = json.loads(result.stdout)
    assert report["status"] == "error"
    (error,) = report["errors"]
    assert error["code"] == "SE01_COUNT"
    assert GOOD[error["offset"] :].startswith(b"SE*")


def test_not_x12_exit_65(tmp_path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("hello")
    result = run_cli("validate", "--format", "json", str(path))
    assert result.returncode == 65
    assert json.loads(result.stdout)["errors"][0]["code"] == "NOT_X12"


def test_missing_input_exit_66_and_others_still_reported(tmp_path) -> None:
    path = tmp_path / "good.x12"
    path.write_bytes(GOOD)
    result = run_cli("validate", "--format", "json", str(tmp_path / "absent.x12"), str(path))
    assert result.returncode == 66
    first, second = (json.loads(line) for line in result.stdout.splitlines())
    assert first["errors"][0]["code"] == "UNREADABLE"
    assert second["status"] == "clean"


def test_directory_is_unreadable_input(tmp_path) -> None:
    result = run_cli("validate", str(tmp_path))
    assert result.returncode == 66


def test_usage_error_exit_64() -> None:
    assert run_cli("validate").returncode == 64
    assert run_cli("validate", "--format", "yaml", "x").returncode == 64
    assert run_cli("frobnicate").returncode == 64


def test_standard_input() -> None:
    result = run_cli("validate", "--format", "json", "-", stdin=GOOD)
    assert result.returncode == 0
    assert json.loads(result.stdout)["file"] == "-"


def test_report_file_is_written_atomically_and_private(tmp_path) -> None:
    source = tmp_path / "good.x12"
    source.write_bytes(GOOD)
    out = tmp_path / "report.json"
    result = run_cli("validate", "--format", "json", "--output", str(out), str(source))
    assert result.returncode == 0 and result.stdout == b""
    assert json.loads(out.read_text())["claims"] == 1
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == sorted(["good.x12", "report.json"]) or {p.name for p in tmp_path.iterdir()} == {"good.x12", "report.json"}


def test_limits_are_configurable(tmp_path) -> None:
    path = tmp_path / "long.x12"
    path.write_bytes(GOOD.replace(b"HI*ABK:C184", b"HI*ABK:C184" + b"*ABF:C19" * 40))
    result = run_cli("validate", "--format", "json", "--max-elements", "20", str(path))
    assert result.returncode == 65
    assert json.loads(result.stdout)["errors"][-1]["code"] == "TOO_MANY_ELEMENTS"
    assert run_cli("validate", str(path)).returncode == 0


def test_logs_are_json_on_a_pipe_and_carry_counts_only(tmp_path) -> None:
    path = tmp_path / "good.x12"
    path.write_bytes(GOOD)
    result = run_cli("validate", "--log-level", "debug", str(path))
    lines = [json.loads(line) for line in result.stderr.decode().splitlines()]
    (event,) = [line for line in lines if line["event"] == "file.validated"]
    assert event["claims"] == 1 and event["exit_code"] == 0 and len(event["file_id"]) == 12
    assert "dropped" not in event


def test_log_level_from_environment(tmp_path) -> None:
    path = tmp_path / "good.x12"
    path.write_bytes(GOOD)
    quiet = run_cli("validate", str(path), env={"EDI837_LOG_LEVEL": "error"})
    loud = run_cli("validate", str(path), env={"EDI837_LOG_LEVEL": "info"})
    assert quiet.stderr == b"" and b"file.validated" in loud.stderr


# -- an output never replaces an input or another output (issue 14, item 3) ------------------

FIXABLE = x12(*HEADER, *subscriber(), *claim("F1", ("96414", "1", "20261101")))


def claim_files(tmp_path):
    first, second = tmp_path / "a.x12", tmp_path / "b.x12"
    first.write_bytes(FIXABLE)
    second.write_bytes(GOOD)
    (tmp_path / "hard.x12").hardlink_to(first)
    (tmp_path / "soft.x12").symlink_to(first)
    return str(first), str(second)


def refused(result, args=()) -> None:
    assert result.returncode == 64, (args, result.stderr)
    assert b"same file" in result.stderr


def test_an_output_naming_an_input_is_refused(tmp_path) -> None:
    a, b = claim_files(tmp_path)
    hard, soft, other = str(tmp_path / "hard.x12"), str(tmp_path / "soft.x12"), str(tmp_path / "out.x12")
    spelled = os.path.join(str(tmp_path), ".", "a.x12")
    for args in (["validate", a, "-o", a], ["validate", a, "-o", hard], ["validate", a, "-o", soft],
                 ["validate", a, "-o", spelled], ["validate", b, a, "--output", a],
                 ["validate", a, "--ack", a], ["validate", a, "-o", other, "--ack", other],
                 ["fix", a, "-o", other, "--report", a], ["fix", a, "-o", other, "--report-output", a],
                 ["fix", a, "-o", other, "--report", other], ["fix", a, "-o", other, "--report-output", other],
                 ["fix", a, "-o", hard], ["fix", a, "-o", soft], ["fix", a, "--in-place", "--report", hard],
                 ["fix", a, "-o", other, "--report", str(tmp_path / "r"), "--report-output", str(tmp_path / "r")]):
        refused(run_cli(*args), args)
        assert (tmp_path / "a.x12").read_bytes() == FIXABLE and (tmp_path / "b.x12").read_bytes() == GOOD, args
        assert sorted(p.name for p in tmp_path.iterdir()) == ["a.x12", "b.x12", "hard.x12", "soft.x12"], args


def test_filter_report_naming_its_standard_input_is_refused(tmp_path) -> None:
    a, _ = claim_files(tmp_path)
    with open(a, "rb") as stdin:
        result = subprocess.run([sys.executable, "-m", "edi", "filter", "--report", a], stdin=stdin,
                                capture_output=True, cwd=ROOT, timeout=60, check=False)
    refused(result)
    assert (tmp_path / "a.x12").read_bytes() == FIXABLE and result.stdout == b""


def test_distinct_outputs_are_still_written(tmp_path) -> None:
    a, _ = claim_files(tmp_path)
    result = run_cli("fix", a, "-o", str(tmp_path / "o.x12"), "--report", str(tmp_path / "r.json"),
                     "--report-output", str(tmp_path / "r.txt"))
    assert result.returncode == 0, result.stderr
    assert all((tmp_path / name).exists() for name in ("o.x12", "r.json", "r.txt"))


# -- option ranges and long output names (issue 13, item 7) -----------------------------------


def test_ack_control_outside_1_to_999999999_is_a_usage_error(tmp_path) -> None:
    path = tmp_path / "good.x12"
    path.write_bytes(GOOD)
    ack = tmp_path / "a.999"
    for value in ("-1", "0", "1000000000", "12x"):
        result = run_cli("validate", "--ack", str(ack), "--ack-control", value, str(path))
        assert result.returncode == 64 and b"--ack-control" in result.stderr, (value, result.stderr)
        assert not ack.exists()
    accepted = run_cli("validate", "--ack", str(ack), "--ack-control", "999999999", str(path))
    # Exit 65: this file's GS02/GS03 ("S", "R") are shorter than the guide's minimum of 2.
    assert accepted.returncode == 65 and b"*999999999*" in ack.read_bytes()


def test_output_names_up_to_name_max_are_written(tmp_path) -> None:
    """A temp name built on the output's name must still fit the folder's NAME_MAX."""
    source = tmp_path / "good.x12"
    source.write_bytes(GOOD)
    name_max = os.pathconf(tmp_path, "PC_NAME_MAX")
    for name in ("r" * 230, "s" * name_max, "é" * (name_max // 2)):
        result = run_cli("validate", "--format", "json", "-o", str(tmp_path / name), str(source))
        assert result.returncode == 0, (len(name), result.stderr)
        assert json.loads((tmp_path / name).read_text())["claims"] == 1
        fixed = run_cli("fix", str(source), "-o", str(tmp_path / name))
        assert fixed.returncode == 0 and (tmp_path / name).read_bytes() == GOOD
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]


# -- command-line conventions (issue 13, item 8) ----------------------------------------------

PUMP_FLAGGED = (ROOT / "fixtures" / "rules" / "PMP004" / "bad.x12").read_bytes()


def test_filter_exit_zero_keeps_findings_out_of_the_exit_code() -> None:
    """With --exit-zero, a file that was rewritten and passed on exits 0; X12 errors still do not."""
    plain = run_cli("filter", stdin=PUMP_FLAGGED)
    assert plain.returncode == 1 and plain.stdout
    passed = run_cli("filter", "--exit-zero", stdin=PUMP_FLAGGED)
    assert passed.returncode == 0 and passed.stdout == plain.stdout
    assert json.loads(passed.stderr.decode().splitlines()[-1])["findings"]
    broken = run_cli("filter", "--exit-zero", stdin=PUMP_FLAGGED.replace(b"\nSE*", b"\nSE*1", 1))
    assert broken.returncode == 65 and broken.stdout == b""


def test_validate_and_fix_exit_zero(tmp_path) -> None:
    path = tmp_path / "flagged.x12"
    path.write_bytes(PUMP_FLAGGED)
    assert run_cli("validate", str(path)).returncode == 1
    assert run_cli("validate", "--exit-zero", str(path)).returncode == 0
    assert run_cli("fix", "--exit-zero", str(path), "-o", str(tmp_path / "o.x12")).returncode == 0


def every_subparser():
    from edi.cli import build_parser

    commands = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in commands.choices.items():
        nested = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for sub_name, sub in nested[0].choices.items():
                yield f"{name} {sub_name}", sub
        else:
            yield name, parser


def test_every_option_shows_its_default_in_help() -> None:
    missing = []
    for name, parser in every_subparser():
        for action in parser._actions:
            if not action.option_strings or action.help == argparse.SUPPRESS or action.dest in ("help", "version"):
                continue
            shown = parser._get_formatter()._expand_help(action) if action.help else ""  # as --help prints it
            if "default" not in shown and not (action.required and "required" in shown):
                missing.append(f"{name} {action.option_strings[-1]}")
    assert missing == []
    assert "(default: 65536)" in " ".join(build_parser_help("validate").split())


def build_parser_help(command: str) -> str:
    return run_cli(command, "--help").stdout.decode()


def test_readme_lists_every_option_with_its_default() -> None:
    from edi.cli import options_reference

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert options_reference() in readme, "regenerate with bin/make-options-table"


def test_text_report_of_a_note_without_a_segment_says_dash() -> None:
    from edi.errors import ErrorEntry
    from edi.report.model import FileReport
    from edi.report.text import render_text

    text = render_text(FileReport(file="in.x12", notes=(ErrorEntry("IG_NOT_RUN", None, None, "not run"),)))
    assert "in.x12:-: note IG_NOT_RUN not run" in text and "None" not in text


def test_an_error_appears_once_on_stderr_at_the_default_level(tmp_path) -> None:
    path = tmp_path / "good.x12"
    path.write_bytes(GOOD)
    quiet = {"EDI837_LOG_LEVEL": "", "EDI837_HISTORY_KEY": "k" * 32}
    for args in (["validate", "--history", "/nonexistent-folder-for-edi837/h.sqlite", str(path)],
                 ["validate", "--history", str(tmp_path), str(path)]):
        result = run_cli(*args, env=quiet)
        assert result.returncode in (74, 75)
        assert len(result.stderr.decode().splitlines()) == 1, result.stderr
    logged = run_cli("validate", "--log-level", "info", "--history", str(tmp_path), str(path), env=quiet)
    assert b'"command.failed"' in logged.stderr  # the log line is still there for who asks for it


def test_a_command_parsed_alone_reads_its_words_as_the_whole_parser_does() -> None:
    """main builds only the invoked command's arguments (start-up): the result must not differ."""
    from edi.cli import build_parser, command_named

    samples = [
        ["validate", "--format", "json", "--select", "PMP", "--ig", "--ack-sender", "ZZ:EDI837", "a.x12", "b.x12"],
        ["fix", "in.x12", "-o", "out.x12", "--hold", "held.x12", "--hold-severity", "warning", "--exit-zero"],
        ["watch", "root", "--once", "--mode", "annotate", "--stable-for", "0.5", "--acks"],
        ["serve", "--port", "9000", "--threads", "4", "--time-limit", "30"],
        ["history", "prune", "--older-than", "30", "--history", "h.sqlite"],
        ["tables", "import", "ptp.txt", "--quarter", "2026Q1"],
        ["filter", "--mode", "annotate"], ["rules", "PMP001"], ["synth", "--claims", "5"],
    ]
    for words in samples:
        assert command_named(words) == words[0]
        assert build_parser(only=words[0]).parse_args(words) == build_parser().parse_args(words), words
    assert command_named(["--version"]) is None and command_named(["validat", "x"]) is None


def test_help_and_usage_errors_are_those_of_the_whole_parser() -> None:
    listed = run_cli("--help")
    assert listed.returncode == 0 and b"synth" in listed.stdout and b"validate" in listed.stdout
    assert run_cli("validat", "x.x12").returncode == 64
    assert b"--ig-engine" in run_cli("validate", "--help").stdout
