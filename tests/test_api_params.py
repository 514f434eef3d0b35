"""Carousel API parameter parsing (pure): booleans, phone lists, ids, templates, keywords, dates."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from engine.api import params as pp
from engine.api.dates import DateParseError, parse_when
from engine.errors import InvalidInput
from engine.policy.admission import AppRules
from engine.store.carousel import BLACKLISTED, FLOODED, INVALID, Draft, plan_outcomes

NOW = datetime(2024, 5, 17, 10, 11, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        *[(w, True) for w in ("1", "t", "true", "y", "yes", "T", "TRUE", "Yes", "yEs", " true ")],
        *[(w, False) for w in ("0", "f", "false", "n", "no", "F", "False", "NO", "N")],
        ("", False),  # blank = default
    ],
)
def test_booleans(raw: str, expected: bool) -> None:
    assert pp.parse_bool({"flag": raw}, "flag") is expected


def test_boolean_default_when_absent() -> None:
    assert pp.parse_bool({}, "flag") is False
    assert pp.parse_bool({}, "flag", default=True) is True


@pytest.mark.parametrize("raw", ["2", "yess", "on", "off", "-1", "truthy", "ja"])
def test_boolean_garbage_names_the_parameter(raw: str) -> None:
    with pytest.raises(InvalidInput) as err:
        pp.parse_bool({"action_expected": raw}, "action_expected")
    assert err.value.param == "action_expected"
    assert str(err.value).startswith("action_expected:")


def test_phone_list_takes_both_parameters_in_order() -> None:
    got = pp.phone_list({"phone_number": "+1(347)264-3707", "phone_numbers": " 2125550100, ,6462000001 "})
    assert got == ["+1(347)264-3707", "2125550100", "6462000001"]


def test_phone_list_required_and_limited() -> None:
    with pytest.raises(InvalidInput) as err:
        pp.phone_list({"phone_numbers": " , "})
    assert err.value.param == "phone_number"
    with pytest.raises(InvalidInput) as err:
        pp.phone_list({"phone_numbers": ",".join(["2125550100"] * (pp.MAX_RECIPIENTS + 1))})
    assert err.value.param == "phone_numbers"


def test_message_ids() -> None:
    assert pp.parse_message_ids({"message_ids": "5, 7,-1,5,-3, 9"}) == [5, 7, 9]
    with pytest.raises(InvalidInput) as err:
        pp.parse_message_ids({"message_ids": "5,x"})
    assert err.value.param == "message_ids"
    with pytest.raises(InvalidInput):
        pp.parse_message_ids({})


def test_int_bounds() -> None:
    assert pp.parse_int({"mode": "1"}, "mode", 0, low=0, high=1) == 1
    assert pp.parse_int({}, "mode", 0, low=0, high=1) == 0
    for bad in ("2", "x", "1.0"):
        with pytest.raises(InvalidInput) as err:
            pp.parse_int({"mode": bad}, "mode", 0, low=0, high=1)
        assert err.value.param == "mode"


def test_body_limits() -> None:
    assert pp.validate_body("body", "x" * pp.MAX_BODY_CHARS) == "x" * pp.MAX_BODY_CHARS
    for bad in ("", "   ", "x" * (pp.MAX_BODY_CHARS + 1)):
        with pytest.raises(InvalidInput) as err:
            pp.validate_body("body", bad)
        assert err.value.param == "body"


def test_country() -> None:
    assert pp.parse_country({}) == "US"
    assert pp.parse_country({"country": "ca"}) == "CA"
    with pytest.raises(InvalidInput) as err:
        pp.parse_country({"country": "USA"})
    assert err.value.param == "country"


# ---- templates -----------------------------------------------------------------------------------


def test_template_renders_every_placeholder() -> None:
    template = "Hello {{name}}. You have {{ credits }} credits, {{name}}!"
    assert pp.placeholders(template) == ["name", "credits"]
    assert pp.render_template(template, {"name": "John", "credits": 5}) == "Hello John. You have 5 credits, John!"
    assert pp.render_template("{{a}}/{{b}}/{{c}}", {"a": 2.5, "b": True, "c": ""}) == "2.5/true/"


def test_template_missing_placeholder_is_an_error_not_a_blank() -> None:
    with pytest.raises(InvalidInput) as err:
        pp.render_template("Hello {{name}}", {"nom": "Jean"}, who="3472643707")
    assert err.value.param == "recipients"
    assert "3472643707" in str(err.value) and "{{name}}" in str(err.value)


@pytest.mark.parametrize("value", [None, [1], {"x": 1}])
def test_template_rejects_non_scalar_values(value: object) -> None:
    with pytest.raises(InvalidInput):
        pp.render_template("{{v}}", {"v": value})


def test_template_without_placeholders_and_stray_braces() -> None:
    assert pp.render_template("{{}} and { {x} }", {}) == "{{}} and { {x} }"


def test_recipients_json() -> None:
    got = pp.parse_recipients('{"13472643707": {"name": "Alex"}, "1234567890": {"name": "Unknown"}}')
    assert list(got) == ["13472643707", "1234567890"]
    for bad in ("not json", "[1,2]", "{}", '{"3472643707": "Alex"}'):
        with pytest.raises(InvalidInput) as err:
            pp.parse_recipients(bad)
        assert err.value.param == "recipients"


# ---- keywords ------------------------------------------------------------------------------------


@pytest.mark.parametrize("keyword", ["SURF", "forecast", "Book Club", "a_b-c", "x" * 32, "9LIVES"])
def test_keyword_format_ok(keyword: str) -> None:
    assert pp.keyword_errors(keyword) == []


@pytest.mark.parametrize(
    "keyword",
    ["", "x" * 33, "-dash", "café", "a:b", "STOP", "stop", "Opt Out", "opt-in", "HELP", "hlp", "Start", "Q",
     "STOP ALL", "stop now", "quit it"],
)
def test_keyword_format_rejected(keyword: str) -> None:
    assert len(pp.keyword_errors(keyword)) == 1


def test_keyword_normalised_and_tags() -> None:
    assert pp.normalize_keyword("  Book   Club ") == "Book Club"
    assert pp.parse_tags({"auto_subscribe_tags": "news, sports,,news"}) == ("news", "sports")
    assert pp.parse_tags({}) == ()
    with pytest.raises(InvalidInput):
        pp.parse_tags({"auto_subscribe_tags": ",".join(f"t{i}" for i in range(21))})


# ---- outcomes (-1 / -2 / -3) ---------------------------------------------------------------------


def test_plan_outcomes_codes_and_flood_counting_within_the_call() -> None:
    a, b, c = "+12125550100", "+12125550101", "+12125550102"
    drafts = [Draft(None, ("x",)), Draft(a, ("x",)), Draft(b, ("1", "2")), Draft(b, ("x",)), Draft(c, ("x",)),
              Draft(c, ("x",))]
    plan = plan_outcomes(drafts, blocked={a}, recent={c: 1}, rules=AppRules(flood_limit=2, flood_seconds=60))
    assert plan == [INVALID, BLACKLISTED, None, FLOODED, None, FLOODED]
    assert plan_outcomes(drafts, blocked=set(), recent={c: 5}, rules=AppRules()) == [INVALID] + [None] * 5


# ---- dates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("16:30", datetime(2024, 5, 17, 16, 30, tzinfo=UTC)),
        ("Aug 31", datetime(2024, 8, 31, tzinfo=UTC)),
        ("7/31", datetime(2024, 7, 31, tzinfo=UTC)),
        ("2/9/2007", datetime(2007, 2, 9, tzinfo=UTC)),
        ("2007-02-09", datetime(2007, 2, 9, tzinfo=UTC)),
        ("02-09-2007 12:30:44 AM", datetime(2007, 9, 2, 0, 30, 44, tzinfo=UTC)),
        ("2007-09-02T00:30:44Z", datetime(2007, 9, 2, 0, 30, 44, tzinfo=UTC)),
        ("02-09-2007 12:30:44 PM EST", datetime(2007, 9, 2, 17, 30, 44, tzinfo=UTC)),
        ("2007-09-02T12:30:44-0500", datetime(2007, 9, 2, 17, 30, 44, tzinfo=UTC)),
        ("Wednesday, January 10, 2001", datetime(2001, 1, 10, tzinfo=UTC)),
        ("10/12/2008 12:55AM -0500", datetime(2008, 10, 12, 5, 55, tzinfo=UTC)),
        ("10/12/2008 12:55AM —0500", datetime(2008, 10, 12, 5, 55, tzinfo=UTC)),  # as the docs typeset it
        ("Tue, 10 Jun 2008 12:55:00 -0500", datetime(2008, 6, 10, 17, 55, tzinfo=UTC)),  # RFC 2822
        ("2007-09-02 12:00 PDT", datetime(2007, 9, 2, 19, 0, tzinfo=UTC)),
        ("2007-09-02 00:30 UTC", datetime(2007, 9, 2, 0, 30, tzinfo=UTC)),
        ("  now ", NOW),
        ("today", datetime(2024, 5, 17, tzinfo=UTC)),
        ("Tomorrow", datetime(2024, 5, 18, tzinfo=UTC)),
    ],
)
def test_dates(text: str, expected: datetime) -> None:
    got = parse_when(text, NOW)
    assert got == expected
    assert got.tzinfo is UTC


@pytest.mark.parametrize("text", ["", "hello", "25:00", "2/30/2007", "12:00 XYZ", "9" * 20, "x" * 80])
def test_dates_unparseable(text: str) -> None:
    with pytest.raises(DateParseError):
        parse_when(text, NOW)


def test_on_parameter_errors_name_on() -> None:
    assert pp.parse_on({}, NOW) is None
    assert pp.parse_on({"on": "16:30"}, NOW) == datetime(2024, 5, 17, 16, 30, tzinfo=UTC)
    with pytest.raises(InvalidInput) as err:
        pp.parse_on({"on": "someday"}, NOW)
    assert err.value.param == "on"
