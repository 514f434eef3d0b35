"""The tracking list's pure parts: status filters, cursors, message ids and the statement built per filter set."""

from __future__ import annotations

import itertools
import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.api.tracking import parse_filter
from engine.errors import InvalidInput
from engine.store import tracking_queries as tq
from engine.store.tracking import STATES_BY_STATUS, decode_cursor, encode_cursor, parse_message_id, states_for

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


def test_every_state_has_exactly_one_status_code() -> None:
    listed = [s for states in STATES_BY_STATUS.values() for s in states]
    assert sorted(listed) == sorted(tq.STATES) and len(set(listed)) == len(listed)


@pytest.mark.parametrize(("text", "states"), [
    ("0", ("claimed", "queued", "sending", "unknown")),
    ("4", ("sent",)),
    ("1", ("delivered",)),
    ("2", ("canceled", "expired", "failed", "suppressed", "undelivered")),
    (" 1 , 4 ", ("delivered", "sent")),
    ("Undelivered,EXPIRED", ("expired", "undelivered")),
    ("2,failed", ("canceled", "expired", "failed", "suppressed", "undelivered")),
    ("queued,,", ("queued",)),
])
def test_status_filter_names_codes_and_states(text: str, states: tuple[str, ...]) -> None:
    assert states_for(text) == states


@pytest.mark.parametrize("text", ["3", "-1", "01x", "lost", "1,lost", ",", "", "٣", "delivered;1"])
def test_status_filter_refuses_what_it_does_not_know(text: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        states_for(text)
    assert exc.value.param == "status"


@given(st.sets(st.sampled_from([*sorted(tq.STATES), "0", "1", "2", "4"]), min_size=1))
def test_status_filter_is_the_union_of_its_words(words: set[str]) -> None:
    expected: set[str] = set()
    for w in words:
        expected.update(STATES_BY_STATUS[int(w)] if w.isdigit() else (w,))
    assert set(states_for(",".join(words))) == expected


@given(st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(9000, 1, 1), timezones=st.just(UTC)),
       st.integers(min_value=1, max_value=2**63 - 1))
def test_cursor_round_trips(at: datetime, message_id: int) -> None:
    cursor = encode_cursor(at, message_id)
    assert re.fullmatch(r"[A-Za-z0-9_-]+", cursor)
    assert decode_cursor(cursor) == (at, message_id)


@given(st.text(max_size=80))
def test_a_cursor_is_either_one_of_ours_or_refused(text: str) -> None:
    try:
        at, message_id = decode_cursor(text)
    except InvalidInput as exc:
        assert exc.param == "cursor"
    else:
        assert decode_cursor(encode_cursor(at, message_id)) == (at, message_id)


@pytest.mark.parametrize("text", ["", "abc", "MTIz", "0." * 3, "ZZZZ", "LTEuMQ", "x" * 100,
                                  "MS45OTk5OTk5OTk5OTk5OTk5OTk5", "OTk5OTk5OTk5OTk5OTk5OTk5OS4x"])
def test_foreign_cursors_are_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        decode_cursor(text)


def test_message_ids() -> None:
    assert parse_message_id("42") == 42 and parse_message_id(" +7 ") == 7
    assert parse_message_id(str(2**63 - 1)) == 2**63 - 1
    for bad in (None, "", "0", "-3", "1.5", "１２", "9" * 20, str(2**63)):
        with pytest.raises(InvalidInput) as exc:
            parse_message_id(bad, "job_id")
        assert exc.value.param == "job_id"


def test_filter_parameters() -> None:
    flt = parse_filter({"phone_number": "(347) 264-3707", "status": "2", "type": "reminder", "tag": " t ",
                        "job_id": "12", "since": "2026-03-01", "until": "tomorrow"}, NOW)
    assert flt.phone == "+13472643707" and set(flt.states) == set(STATES_BY_STATUS[2])
    assert (flt.type, flt.tag, flt.job_id) == ("reminder", "t", 12)
    assert flt.since == datetime(2026, 3, 1, tzinfo=UTC) and flt.until == datetime(2026, 3, 3, tzinfo=UTC)
    assert parse_filter({}, NOW) == parse_filter({"phone_number": " ", "status": ""}, NOW)
    with pytest.raises(InvalidInput, match=r"^until:"):
        parse_filter({"since": "2026-03-02", "until": "2026-03-02"}, NOW)


_FLAGS = ("phone", "type_", "tag", "job", "since", "until", "cursor")


@pytest.mark.parametrize("on", list(itertools.product((False, True), repeat=len(_FLAGS))))
def test_each_filter_set_gets_its_own_numbered_parameters(on: tuple[bool, ...]) -> None:
    flags = dict(zip(_FLAGS, on, strict=True))
    sql, names = tq.list_messages(**flags, states=("failed",))
    expected = [n for f, n in (("phone", "phone"), ("type_", "type"), ("tag", "tag"), ("job", "job_id"),
                               ("since", "since"), ("until", "until")) if flags[f]]
    expected += ["cursor_at", "cursor_id"] if flags["cursor"] else []
    assert names == expected
    assert sorted(set(re.findall(r"\$(\d+)", sql)), key=int) == [str(i) for i in range(1, len(names) + 3)]
    assert "'{failed}'::text[]" in sql
    lead = tq.driver(phone=flags["phone"], tag=flags["tag"], job=flags["job"], type_=flags["type_"],
                     states=("failed",))
    assert ("o.state = st.state" in sql) == (lead == "job")  # a job drives: one range of its index per state


def test_a_job_reads_each_state_asked_for() -> None:
    every = ",".join(sorted(tq.STATES))
    assert f"unnest('{{{every}}}'::text[]) AS st(state)" in tq.list_messages(job=True)[0]
    assert "unnest('{failed,undelivered}'::text[]) AS st(state)" in tq.list_messages(
        job=True, states=("undelivered", "failed"))[0]


def test_only_known_states_are_written_into_the_statement() -> None:
    with pytest.raises(ValueError, match="unknown states"):
        tq.list_messages(states=("delivered', 'x') OR true --",))


def test_cursor_keys_order_like_the_list() -> None:
    early, late = NOW, NOW + timedelta(microseconds=1)
    assert decode_cursor(encode_cursor(early, 9)) < decode_cursor(encode_cursor(late, 1))
