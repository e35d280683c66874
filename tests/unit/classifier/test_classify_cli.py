"""``dagmonitor classify`` on the whole annex, codes outside it, and bad lines."""

from __future__ import annotations

import json

from click.testing import CliRunner

from dagmonitor.jsonio import to_json
from dagmonitor_cli.cli import cli
from tests.samples import incident
from tests.unit.classifier.test_policy import ANNEX_CODES, OUTSIDE_ANNEX, full_incident


def _run(lines: list[str]) -> list[dict]:
    result = CliRunner().invoke(
        cli,
        ["classify", "-", "--now", "2026-11-28T06:00:00Z"],
        input="\n".join(lines) + "\n",
        env={"DAGMONITOR_TEAM_DISTRICTS": "DC01", "DAGMONITOR_MUNICIPALITY_CODE": "GM0344"},
    )
    assert result.exit_code == 0, result.output
    return [json.loads(line) for line in result.output.splitlines()]


def test_one_answer_per_line_over_the_whole_annex() -> None:
    codes = ANNEX_CODES + OUTSIDE_ANNEX
    answers = _run([json.dumps(to_json(full_incident(code))) for code in codes])
    assert len(answers) == len(codes)
    for code, answer in zip(codes, answers, strict=True):
        assert answer["key"] == "PL0900-2026000042"
        if code in ANNEX_CODES:
            assert (answer["decision"], answer["reason"]) == ("shared", None)
            entry = next(o for o in answer["outputs"] if o["topic"] == "dagmonitor.entries")
            assert entry["value"]["mk_code"] == code
            assert entry["value"]["reported_at"] == "2026-11-27T08:15:00.123Z"
        elif code == "F530X":  # not an MK code at all: ingest would dead-letter it
            assert (answer["decision"], answer["reason"]) == ("rejected", "invalid_mk_code")
        else:
            assert answer == {
                "key": "PL0900-2026000042",
                "decision": "dropped",
                "reason": "mk_not_shared",
                "outputs": [],
            }


def test_bad_lines_are_rejected_never_a_crash() -> None:
    good = to_json(incident())
    missing = {k: v for k, v in good.items() if k != "location"}
    bad_enum = json.loads(json.dumps(good))
    bad_enum["vehicles"][0]["kind"] = "SPACESHIP"
    bad_time = dict(good, reported_at="yesterday")
    naive = dict(good, reported_at="2026-11-27T08:15:00")
    future = dict(good, reported_at="2030-01-01T00:00:00Z")
    lines = [
        "{not json",
        "[1, 2]",
        json.dumps({"something": "else"}),
        json.dumps(missing),
        json.dumps(bad_enum),
        json.dumps(bad_time),
        json.dumps(naive),
        json.dumps(future),
        json.dumps(dict(good, registration_number=17)),
    ]
    answers = _run(lines)
    assert [a["decision"] for a in answers] == ["rejected"] * len(lines)
    assert [a["reason"] for a in answers] == [
        "invalid_json",
        "invalid_json",
        "unknown_record",
        "invalid_field",
        "invalid_field",
        "invalid_field",
        "invalid_field",
        "invalid_timestamp",
        "invalid_field",
    ]
    assert answers[3]["detail"] == "location: required field missing"
    assert answers[4]["detail"].startswith("vehicles[0].kind: not one of")
    assert "SPACESHIP" not in answers[4]["detail"]
    assert answers[6]["detail"] == "reported_at: timestamp without a timezone (add Z or an offset)"
