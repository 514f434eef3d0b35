"""A job's recipients (pure): reading CSVs, checking every row by line number, and the job report's arithmetic."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.api import recipients as rc
from engine.api.job_report import COUNTS, by_status, counts, eta_seconds, job_report
from engine.errors import InvalidInput
from engine.policy.admission import AppRules, BodyLimits
from engine.progress import format_eta
from engine.store.jobs import Job, JobSnapshot

LIMITS = BodyLimits(max_chars=200, max_segments=2)


def plan(template: str, text: str, rules: AppRules | None = None, **kw: str) -> rc.JobPlan:
    return rc.plan_job(template, rc.read_csv(text, template, **kw), rules or AppRules(), LIMITS)


# ---- reading -------------------------------------------------------------------------------------


@pytest.mark.parametrize(("header", "delimiter"), [
    ("phone,name", ","), ("phone;name;date", ";"), ("phone\tname", "\t"), ("phone|name", "|"), ("phone", ","),
    ('"a,b";phone;name', ";"), ("phone,name;x,y", ","), ("", ","),
])
def test_sniff_delimiter(header: str, delimiter: str) -> None:
    assert rc.sniff_delimiter(header) == delimiter


_name = st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True)
_cell = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\r\x00"), max_size=12)


@settings(max_examples=200, deadline=None)
@given(names=st.lists(_name, min_size=1, max_size=4, unique=True).filter(lambda n: "phone" not in n),
       records=st.lists(st.tuples(st.text(alphabet="0123456789+", min_size=1, max_size=12),
                                  st.lists(_cell, min_size=4, max_size=4)), max_size=15),
       delimiter=st.sampled_from(rc.DELIMITERS), terminator=st.sampled_from(["\n", "\r\n"]))
def test_read_csv_gives_back_what_was_written_with_its_line_numbers(
    names: list[str], records: list[tuple[str, list[str]]], delimiter: str, terminator: str
) -> None:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter, lineterminator=terminator)
    writer.writerow(["phone", *names])
    line, expected = 2, []
    for phone, cells in records:
        values = cells[: len(names)]
        writer.writerow([phone, *values])
        expected.append(rc.Row(line, phone, dict(zip(names, values, strict=True))))
        line += 1 + sum(v.count("\n") for v in values)  # a quoted field may span lines
    template = " ".join(f"{{{{{n}}}}}" for n in names)
    assert rc.read_csv(out.getvalue(), template) == expected


def test_line_numbers_count_blank_lines_and_fields_spanning_lines() -> None:
    text = 'phone,name\r\n\r\n2125550100,"Ann\r\nMarie"\r\n,\r\n2125550101,Bob\r\n'
    rows = rc.read_csv(text, "Hi {{name}}")
    assert [(r.line, r.phone, dict(r.values)) for r in rows] == [
        (3, "2125550100", {"name": "Ann\r\nMarie"}), (6, "2125550101", {"name": "Bob"})]


def test_decode_drops_a_bom_and_names_the_line_of_a_bad_byte() -> None:
    assert rc.decode("\ufeffphone\n1\n".encode(), "csv") == "phone\n1\n"
    with pytest.raises(InvalidInput, match=r"^csv: is not UTF-8 text \(line 3\)"):
        rc.decode(b"phone,name\n2125550100,Al\n2125550101,J\xe9r\xf4me\n", "csv")


@pytest.mark.parametrize(("text", "template", "message"), [
    ("", "Hi", "is empty"),
    ("\n2125550100\n", "Hi", "is empty"),
    ("phone,name,name\n", "Hi", "column 'name' appears twice"),
    ("number,name\n", "Hi", "has no 'phone' column (columns: number, name)"),
    ("phone,name\n", "Hi {{first}}", "has no column for the template's {{first}} (columns: phone, name)"),
    ('phone,name\n2125550100,"Al\n', "Hi {{name}}", "line 2: unexpected end of data"),
    ('phone,name\n2125550100,"Al"x\n', "Hi {{name}}", "line 2: ',' expected after '\"'"),
])
def test_a_file_that_cannot_be_read_is_one_error(text: str, template: str, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        rc.read_csv(text, template, param="--csv")
    assert str(caught.value).startswith("--csv: ") and message in str(caught.value)


def test_the_phone_column_is_found_by_name_in_any_case() -> None:
    assert rc.read_csv(" Phone ;name\n2125550100;Al\n", "Hi {{name}}")[0].phone == "2125550100"
    assert rc.read_csv("mobile,name\n2125550100,Al\n", "Hi {{name}}", phone_column="mobile")[0].phone == "2125550100"


# ---- checking ------------------------------------------------------------------------------------


def test_every_row_is_checked_and_problems_name_their_line() -> None:
    text = "\n".join([
        "phone,name,when",
        "212 555 0100,Al,Monday",  # 2: fine
        "12,Bo,Monday",  # 3: bad number
        ",Cy,Monday",  # 4: no number
        "2125550103,,Monday",  # 5: no name
        "2125550104",  # 6: short row: no name, no when
        "2125550105,Di,Monday,extra",  # 7: a field too many
        "bad,,",  # 8: two problems at once
        f"2125550106,{'x' * 300},Monday",  # 9: too long
        "2125550107,Ed,Tuesday",  # 10: fine
    ]) + "\n"
    result = plan("Hi {{name}}, see you {{when}}", text)
    assert [(m.line, m.recipient, m.parts) for m in result.messages] == [
        (2, "+12125550100", ("Hi Al, see you Monday",)), (10, "+12125550107", ("Hi Ed, see you Tuesday",))]
    assert [(s.line, s.problem) for s in result.skipped] == [
        (3, "'12' is not a valid phone number"),
        (4, "no phone number"),
        (5, "no value for {{name}}"),
        (6, "no value for {{name}}, {{when}}"),
        (7, "has 4 fields; the header has 3"),
        (8, "'bad' is not a valid phone number; no value for {{name}}, {{when}}"),
        (9, "the message is 319 characters; at most 200 are allowed"),
    ]
    assert result.rows == 9


def test_segments_empty_bodies_nul_and_single_sms_parts() -> None:
    long_text = "word " * 35  # 175 characters: 2 segments, within the 200 characters allowed
    emoji = "😀" * 80  # UCS-2: 3 segments
    text = f"phone,v\n2125550100,{long_text}\n2125550101,{emoji}\n2125550102, \n2125550103,a\x00b\n"
    result = plan("{{v}}", text)
    assert [(m.line, m.segments) for m in result.messages] == [(2, 2)]  # what the console's preview shows
    assert [(s.line, s.problem) for s in result.skipped] == [
        (3, "the message would be 3 SMS segments; at most 2 are allowed"),
        (4, "no value for {{v}}"),
        (5, "the message must not contain NUL characters"),
    ]
    single = plan("{{v}}", f"phone,v\n2125550100,{long_text}\n", AppRules(single_sms=True, split_mode="word"))
    parts = single.messages[0].parts
    assert single.messages[0].segments == 2  # billed as the two SMS its parts are
    assert len(parts) == 2 and parts[0].startswith("(1/2) ") and parts[1].startswith("(2/2) ")
    assert plan("Hi {{v}}", "phone,v\n2125550100,  \n").skipped[0].problem == "no value for {{v}}"
    assert plan("{{v}}", "phone,v\n2125550100,{{v}}\n").messages[0].parts == ("{{v}}",)  # values are not templates
    assert plan("{{v}}", "phone,v\n2125550100,😀 hi\n").messages[0].segments == 1  # UCS-2, one SMS


def test_json_recipients_render_numbers_and_refuse_objects() -> None:
    rows = rc.json_rows({"2125550100": {"n": 3, "ok": True}, "2125550101": {"n": None, "ok": 1},
                         "2125550102": {"n": [1], "ok": 2}, "2125550103": {"n": 1.5, "ok": "yes"}})
    result = rc.plan_job("{{n}} {{ok}}", rows, AppRules(), LIMITS)
    assert [(m.line, m.parts) for m in result.messages] == [(1, ("3 true",)), (4, ("1.5 yes",))]
    assert [(s.line, s.phone, s.problem) for s in result.skipped] == [
        (2, "2125550101", "no value for {{n}}"),
        (3, "2125550102", "the value for {{n}} must be a string or a number")]


def test_require_valid() -> None:
    text = "phone,v\n" + "".join(f"12,{i}\n" for i in range(25)) + "2125550100,ok\n"
    result = plan("{{v}}", text)
    with pytest.raises(InvalidInput) as caught:
        rc.require_valid(result, skip_invalid=False, param="csv")
    message = str(caught.value)
    assert message.startswith("csv: 25 of 26 recipients cannot be sent, nothing was queued")
    assert "line 2: '12' is not a valid phone number" in message and "and 5 more" in message
    assert caught.value.details is not None and len(caught.value.details) == 25
    assert caught.value.details[0] == {"line": 2, "phone": "12", "problem": "'12' is not a valid phone number"}
    rc.require_valid(result, skip_invalid=True, param="csv")  # the valid one goes
    none_valid = plan("{{v}}", "phone,v\n12,a\n")
    with pytest.raises(InvalidInput, match="no recipient that can be sent"):
        rc.require_valid(none_valid, skip_invalid=True, param="csv")
    with pytest.raises(InvalidInput, match="has no recipients"):
        rc.require_valid(plan("{{v}}", "phone,v\n"), skip_invalid=True, param="csv")


# ---- the report ----------------------------------------------------------------------------------


_STATES = ["queued", "claimed", "sending", "sent", "delivered", "undelivered", "failed", "suppressed", "canceled",
           "unknown", "expired"]


@given(st.dictionaries(st.sampled_from(_STATES), st.integers(0, 10**6)))
def test_counts_and_statuses_partition_the_messages(by_state: dict[str, int]) -> None:
    grouped = counts(by_state)
    assert tuple(grouped) == COUNTS and sum(grouped.values()) == sum(by_state.values())
    assert sum(by_status(by_state).values()) == sum(by_state.values())
    assert grouped["queued"] == by_state.get("queued", 0) + by_state.get("claimed", 0)
    assert grouped["failed"] == by_state.get("failed", 0) + by_state.get("undelivered", 0)


def test_eta() -> None:
    assert eta_seconds(0, 0.0, None, running=False) == 0.0  # nothing left
    assert eta_seconds(100, 10.0, None, running=False) is None  # paused: it will not move
    assert eta_seconds(100, 10.0, 50.0, running=True) == 10.0  # the observed rate
    assert eta_seconds(100, 80.0, 20.0, running=True) == 5.0  # never faster than the pool's capacity
    assert eta_seconds(100, 0.0, 20.0, running=True) == 5.0  # nothing sent yet: at capacity
    assert eta_seconds(100, 0.0, 20.0, running=True, wait=60.0) == 65.0  # scheduled later
    assert eta_seconds(100, 0.0, None, running=True) is None  # nothing to go by
    assert [format_eta(s) for s in (None, 0, 42.4, 185, 7260)] == ["-", "0s", "42s", "3m05s", "2h01m"]


def test_job_report() -> None:
    now = datetime(2026, 9, 1, 12, tzinfo=UTC)
    job = Job(7, 1, "lib", "csv", "members.csv", "Hi", None, "transactional", None, None, "running", 10,
              now - timedelta(seconds=30), now, None)
    report = job_report(JobSnapshot(job, {"queued": 4, "sending": 1, "delivered": 5}, 15, 30.0, 2.0, now))
    assert report["job_id"] == "7" and report["state"] == "running" and report["total"] == 10
    assert report["counts"]["queued"] == 4 and report["counts"]["delivered"] == 5 and report["final"] == 5
    assert report["by_status"] == {"0": 5, "1": 5, "2": 0, "4": 0}
    assert report["rate"] == 0.5 and report["capacity_per_s"] == 2.0
    assert report["eta_seconds"] == 10.0  # 5 left at the observed 0.5/s
