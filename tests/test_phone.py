"""Phone numbers to E.164: the fast path for plain North American digits gives exactly phonenumbers' answer."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from engine.phone import library_e164, to_e164


def reference(raw: str, region: str = "US") -> str | None:
    """The general path alone (what to_e164 did before its fast path): phonenumbers' parse and validation."""
    text = raw.strip()
    if not text or len(text) > 32:
        return None
    return library_e164(text, region)


_ten = st.text(alphabet="0123456789", min_size=10, max_size=10)
# Area codes of the US, Canada and the Caribbean (+1 is shared), unassigned ones and N11 codes.
_area = st.sampled_from(["212", "646", "305", "505", "274", "983", "416", "604", "876", "809", "284", "555", "211",
                         "999", "800", "900", "456", "200", "670", "671", "684", "787", "939", "340"])
_nanp = st.builds(lambda a, b: a + b, _area, st.text(alphabet="0123456789", min_size=7, max_size=7))


@settings(max_examples=3000, deadline=None)
@given(national=st.one_of(_ten, _nanp), form=st.sampled_from(["+1{}", "1{}", "{}", " {} ", "+1 {}", "({})"]))
@example(national="2122000000", form="+1{}")
@example(national="5551234567", form="{}")
@example(national="1234567890", form="+1{}")
def test_fast_path_agrees_with_phonenumbers(national: str, form: str) -> None:
    raw = form.format(national)
    assert to_e164(raw) == reference(raw)


@settings(max_examples=3000, deadline=None)
@given(digits=st.one_of(_ten, _nanp, _nanp.map(lambda d: "1" + d), st.text(alphabet="0123456789", max_size=13)),
       plus=st.booleans(), data=st.data())
@example(digits="2125550100", plus=False, data=None)
def test_punctuated_numbers_agree_with_phonenumbers(digits: str, plus: bool, data: st.DataObject | None) -> None:
    """Spaces, parentheses, dashes and dots anywhere between (and around) the digits."""
    separators = st.text(alphabet=" ().-", max_size=2)
    gaps = [data.draw(separators) for _ in range(len(digits) + 1)] if data is not None else [""] * (len(digits) + 1)
    raw = ("+" if plus else "") + "".join(g + d for g, d in zip(gaps, digits, strict=False)) + gaps[-1]
    assert to_e164(raw) == reference(raw), raw


@given(st.text(max_size=40))
def test_any_text_agrees_with_phonenumbers(raw: str) -> None:
    assert to_e164(raw) == reference(raw)


def test_examples() -> None:
    assert to_e164("+1 (347) 264-3707") == "+13472643707"
    assert to_e164("1-347-264-3707") == "+13472643707"
    assert to_e164("(347) 264.3707") == "+13472643707"
    assert to_e164("3472643707") == "+13472643707"
    assert to_e164("13472643707") == "+13472643707"
    assert to_e164("+13472643707") == "+13472643707"
    assert to_e164("5551234567") == "+15551234567"
    assert to_e164("1234567890") is None
    assert to_e164("+442071838750") == "+442071838750"
    assert to_e164("") is None


def test_every_north_american_area_code_agrees_with_phonenumbers() -> None:
    """Every +1 area code (the US, Canada, the Caribbean, toll-free, unassigned) with a spread of exchanges."""
    for area in range(200, 1000):
        for exchange in (200, 211, 262, 305, 411, 454, 555, 611, 700, 749, 800, 862, 911, 958, 999):
            for line in ("0000", "1234", "9999"):
                raw = f"+1{area}{exchange}{line}"
                assert to_e164(raw) == reference(raw), raw
