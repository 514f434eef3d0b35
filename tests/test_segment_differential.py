"""analyze() against the real thing: Twilio's segment calculator, run in node.

The npm package `sms-segments-calculator` 1.3.0 is installed from the registry into a temporary
directory and driven through tests/calculator_driver.js.  Without node/npm or the registry these
tests are skipped (the case tables in test_segment_calculator.py and test_segment_smart_map.py,
made with the same calculator, still run).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import regex
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from engine.segment import GSM7_BASIC, GSM7_EXTENSION, SMART_MAP, analyze, smart_replace
from engine.segment.graphemes import clusters
from tests.test_segment_calculator import BOUNDARY_CASES, CLUSTERS, DIVERGENCES, FILL, SPECIAL_CASES

PACKAGE = "sms-segments-calculator@1.3.0"
DRIVER = Path(__file__).with_name("calculator_driver.js")


class Calculator:
    """One node process answering one JSON line per request."""

    def __init__(self, package_dir: Path) -> None:
        self._process = subprocess.Popen(
            ["node", str(DRIVER), str(package_dir)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
        )

    def ask(self, request: object) -> Any:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.write(json.dumps(request) + "\n")
        self._process.stdin.flush()
        line = self._process.stdout.readline()
        assert line, "the calculator process died"
        return json.loads(line)

    def layout(self, body: str, smart: bool) -> tuple[str, list[int], str, list[str]]:
        encoding, per_segment, text, graphemes = self.ask([body, smart])
        return encoding, per_segment, text, graphemes  # a tuple, to compare with ours()

    def close(self) -> None:
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        self._process.wait(timeout=10)
        self._process.stdout.close()


@pytest.fixture(scope="module")
def calculator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Calculator]:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed to run Twilio's calculator")
    directory = tmp_path_factory.mktemp("calculator")
    try:
        subprocess.run(
            ["npm", "install", "--no-save", "--no-audit", "--no-fund", "--ignore-scripts", PACKAGE],
            cwd=directory, check=True, capture_output=True, text=True, timeout=180,
        )
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as error:
        stderr = error.stderr if isinstance(error.stderr, str) else ""
        pytest.skip(f"could not install {PACKAGE} from the npm registry: {stderr.strip()[-300:]}")
    running = Calculator(directory / "node_modules" / "sms-segments-calculator")
    yield running
    running.close()


def ours(body: str, smart: bool) -> tuple[str, list[int], str, list[str]]:
    info = analyze(body, smart=smart)
    return info.encoding, info.per_segment, info.body, clusters(info.body)


# --- the tables the other tests use ------------------------------------------------------------------


def test_smart_map_is_the_packages_in_order(calculator: Calculator) -> None:
    assert [tuple(entry) for entry in calculator.ask("map")] == list(SMART_MAP.items())


def test_gsm_table_is_the_packages(calculator: Calculator) -> None:
    table = dict(calculator.ask("gsm"))
    assert {char for char, septets in table.items() if septets == 1} == GSM7_BASIC
    assert {char for char, septets in table.items() if septets == 2} == GSM7_EXTENSION


def test_case_tables_are_the_calculators(calculator: Calculator) -> None:
    for name, before, after, per_segment in BOUNDARY_CASES:
        body = FILL * before + CLUSTERS[name] + FILL * after
        assert calculator.layout(body, False)[:2] == ("UCS-2", per_segment), (name, before)
    for description, body, smart, encoding, per_segment in SPECIAL_CASES:
        assert calculator.layout(body, smart)[:2] == (encoding, per_segment), description
    for description, body, theirs, _ in DIVERGENCES:
        assert calculator.layout(body, False)[1] == theirs, description


# --- generated bodies --------------------------------------------------------------------------------

# Text as people write it: GSM, Latin with accents (precomposed and combining), other scripts,
# Hindi conjuncts, Hangul jamo, emoji of Unicode 10 with skin tones and ZWJ sequences, flags,
# keycaps, line breaks of every style, and every character of the smart table.
WORDS = [
    "Hello", "ok", "{x}", "[1]", "€5", "a|b", "~", "^_^", "\\o/", "Ça", "Grüße", "ÄÖÜ", "Ω",
    "café", "cafe\u0301", "n\u0303", "a\u0308\u0301", "o\u0301\u0302\u0303", "Привет", "мир", "中文", "αβγ",
    "नमस्ते", "क्षत्रिय", "स्त्री", "कि", "हैं", "\u1100\u1161\u11a8", "한국", "مرحبا",
    "😀", "👍", "👍🏽", "👋🏿", "👨\u200d👩\u200d👧", "👩\u200d💻", "🏳️\u200d🌈", "❤️", "1️⃣", "🇫🇷", "🇮🇹🇩🇪", "\U0001f1eb",
    "\u0301", "\U0001f3fd",  # stray marks and skin tones join whatever precedes them
]
# No stray ZWJ: whether one joins what follows depends on Unicode 10's Glue_After_Zwj list, which
# no current property gives (test_segment_calculator.DIVERGENCES pins two such cases).
SEPARATORS = [" ", " ", " ", ", ", ". ", "! ", "? ", "\n", "\r\n", "\r", "  ", "\t", ""]
pieces = st.one_of(
    st.sampled_from(WORDS),
    st.sampled_from(SEPARATORS),
    st.sampled_from(sorted(SMART_MAP)),
    st.sampled_from(sorted(GSM7_BASIC | GSM7_EXTENSION)),
)
generated = st.one_of(
    st.lists(pieces, max_size=40).map("".join),
    st.lists(pieces, min_size=40, max_size=160).map("".join),
)

# Divergences from the calculator that generated text can still assemble from the pieces: its
# Unicode 10 rule for a skin tone after a non-emoji (split there) and its grapheme-splitter quirk
# after a flag (a second mark starts a new cluster); see test_segment_calculator.DIVERGENCES.
KNOWN_DIVERGENCE = regex.compile(
    r"(?<!\p{EBase})\p{EMod}|\p{RI}\p{RI}[\p{GCB=Extend}\p{GCB=ZWJ}\p{GCB=SpacingMark}]{2}"
)


@settings(max_examples=3000, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(generated, st.booleans())
def test_analyze_agrees_with_the_calculator(calculator: Calculator, body: str, smart: bool) -> None:
    sent = smart_replace(body)[0] if smart else body
    assume(KNOWN_DIVERGENCE.search(sent) is None)
    assert ours(body, smart) == calculator.layout(body, smart)
