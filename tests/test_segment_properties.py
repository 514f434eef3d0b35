"""Property tests: analyze agrees with a straight port of Twilio's calculator, and split_message keeps its promises."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.segment import SMART_MAP, SPLIT_MODES, analyze, has_unicode, smart_replace, split_message
from engine.segment.analyze import layout
from engine.segment.graphemes import Ucs2Boundaries, clusters

# Independent of engine/segment/gsm.py on purpose (3GPP TS 23.038 default alphabet + extension).
BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå" + "Δ_ΦΓΛΩΠΨΣΘΞ" + "ÆæßÉ" + " !\"#¤%&'()*+,-./" + "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§" + "¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
EXTENSION = "\f^{}\\[~]|€"
CHARSET = frozenset(BASIC + EXTENSION)

PROPERTY_SETTINGS = settings(
    max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# Alphabets weighted toward the interesting cases: extension chars, astral chars, whitespace, marks.
# Hypothesis favours short strings; the min_size variants make sure multi-segment bodies are common.
GSM_ALPHABET = st.sampled_from(BASIC + EXTENSION + "     .,!?")
EXT_HEAVY_ALPHABET = st.sampled_from("ab {}[]€~^|\\ \n")
UCS2_ALPHABET = st.sampled_from("abc Ж中é’… \n.,!?{]" + "\U0001f600\U0001f1ee\U0001f3f3")
# Pieces that make grapheme clusters of 2 to 8 units (and stray marks, joiners and skin tones).
CLUSTER_PIECES = st.sampled_from(
    ["Ж", "a", " ", "e\u0301", "o\u0301\u0302\u0303", "\u0301", "\u200d", "\U0001f3fd", "\U0001f1eb\U0001f1f7",
     "\U0001f44d\U0001f3fd", "\U0001f468\u200d\U0001f469\u200d\U0001f467", "क्ष", "कि", "\u1100\u1161\u11a8",
     "\r\n", "1\ufe0f\u20e3", "’"]
)
cluster_text = st.lists(CLUSTER_PIECES, min_size=20, max_size=200).map("".join)
bodies = st.one_of(
    st.text(alphabet=GSM_ALPHABET, max_size=700),
    st.text(alphabet=GSM_ALPHABET, min_size=150, max_size=700),
    st.text(alphabet=EXT_HEAVY_ALPHABET, min_size=70, max_size=700),
    st.text(alphabet=UCS2_ALPHABET, min_size=1, max_size=500),
    st.text(alphabet=UCS2_ALPHABET, min_size=60, max_size=500),
    cluster_text,
    st.text(max_size=400),  # arbitrary Unicode (no lone surrogates)
)
words_text = st.lists(
    st.one_of(
        st.text(alphabet=st.sampled_from("abcdefghij"), min_size=1, max_size=40),
        st.sampled_from(["Hi,", "ok.", "yes!", "why?", "€5", "{x}", "😀", "Ж", "1,234.56", "a" * 170]),
    ),
    min_size=1,
    max_size=120,
).flatmap(
    lambda words: st.lists(
        st.sampled_from([" ", "  ", "\n", ". ", ", "]), min_size=len(words), max_size=len(words)
    ).map(lambda seps: "".join(word + sep for word, sep in zip(words, seps, strict=True)))
)
split_bodies = st.one_of(bodies, words_text)
modes = st.sampled_from(SPLIT_MODES)


def reference_layout(body: str) -> tuple[str, list[int]]:
    """Twilio's calculator, ported item by item: grapheme clusters (or GSM characters) filled into
    segments in order; at the first overflow the first segment gets its header and gives back what
    no longer fits, which goes to the new segment ahead of the character that overflowed."""
    if all(char in CHARSET for char in body):
        encoding, single, concat = "GSM-7", 160, 153
        sizes = [2 if char in EXTENSION else 1 for char in body]
    else:
        encoding, single, concat = "UCS-2", 70, 67
        sizes = [len(cluster.encode("utf-16-le", "surrogatepass")) // 2 for cluster in clusters(body)]
    segments: list[list[int]] = [[]]
    for size in sizes:
        capacity = single if len(segments) == 1 else concat
        if capacity - sum(segments[-1]) < size:
            moved: list[int] = []
            if len(segments) == 1:  # the first segment gets its header now
                while sum(segments[0]) > concat:
                    moved.insert(0, segments[0].pop())
            segments.append(moved)
        segments[-1].append(size)
    return encoding, [sum(segment) for segment in segments]


def largest_cluster(body: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return 2 if any(char in EXTENSION for char in body) else 1
    return max((len(cluster.encode("utf-16-le")) // 2 for cluster in clusters(body)), default=1)


def units(text: str, encoding: str) -> int:
    if encoding == "GSM-7":
        return len(text) + sum(text.count(char) for char in EXTENSION)
    return len(text.encode("utf-16-le")) // 2


PREFIX = re.compile(r"\((\d+)/(\d+)\) ")


def strip_prefixes(parts: list[str]) -> tuple[list[str], list[int]]:
    """Contents and prefix lengths, checking every prefix reads (i/n) with the right i and n."""
    if len(parts) == 1:
        return parts, [0]
    contents, prefix_lengths = [], []
    for index, part in enumerate(parts, 1):
        match = PREFIX.match(part)
        assert match is not None, part
        assert (int(match[1]), int(match[2])) == (index, len(parts))
        contents.append(part[match.end() :])
        prefix_lengths.append(match.end())
    return contents, prefix_lengths


def locate(body: str, contents: list[str]) -> list[int]:
    """Where each content starts in body; asserts only whitespace lies between or after them."""
    starts = []
    position = 0
    for index, content in enumerate(contents):
        assert content or len(contents) == 1, "empty part"
        if index > 0:  # (a space that carries a combining mark is a character of its own)
            assert not clusters(content)[0].isspace(), "a later part starts with whitespace"
        if not body.startswith(content, position):
            while position < len(body) and (skipped := clusters(body[position : position + 16])[0]).isspace():
                position += len(skipped)
        assert body.startswith(content, position), (index, content, body[position : position + 40])
        starts.append(position)
        position += len(content)
    assert body[position:].strip() == "", "text lost after the last part"
    return starts


# --- analyze -------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(bodies)
def test_analyze_matches_the_naive_model(body: str) -> None:
    info = analyze(body)
    encoding, per_segment = reference_layout(body)
    assert info.encoding == encoding
    assert info.per_segment == per_segment
    assert info.segments == len(per_segment)
    assert info.units == sum(per_segment)
    assert info.body == body


@PROPERTY_SETTINGS
@given(bodies)
def test_gsm7_chosen_iff_every_char_is_encodable(body: str) -> None:
    encodable = all(char in CHARSET for char in body)
    assert (analyze(body).encoding == "GSM-7") == encodable
    assert has_unicode(body) == (not encodable)


@PROPERTY_SETTINGS
@given(bodies)
def test_segments_fit_their_limit(body: str) -> None:
    info = analyze(body)
    single, concat = (160, 153) if info.encoding == "GSM-7" else (70, 67)
    largest = largest_cluster(body, info.encoding)
    if info.segments == 1:
        assert info.units <= single
    else:
        assert info.units > single
        if largest <= 3:  # (a cluster of 30+ units can overflow a segment, as the calculator counts it)
            assert all(0 < units_ <= concat for units_ in info.per_segment)
        # greedy: each segment is full but for what an unsplittable cluster held back
        assert all(units_ >= concat - (largest - 1) for units_ in info.per_segment[:-1])


@PROPERTY_SETTINGS
@given(bodies)
def test_plain_67_unit_shortcut_is_what_the_layout_finds(body: str) -> None:
    info = analyze(body)
    data = body.encode("utf-16-le", "surrogatepass")
    if info.encoding == "UCS-2" and info.units > 70:
        bounds = Ucs2Boundaries(data)
        assert layout(info.units, 70, 67, bounds.floor, bounds.after) == info.per_segment


@settings(max_examples=40, deadline=None, database=None)
@given(bodies)
def test_segment_count_is_monotone_in_length(body: str) -> None:
    counts = [analyze(body[:end]).segments for end in range(len(body) + 1)]
    assert counts == sorted(counts)
    assert counts[0] == 1


@PROPERTY_SETTINGS
@given(st.text(alphabet=st.sampled_from("ab ’“”–—…•\u00a0\u2009\t😀中{€\u200b\u0302"), max_size=300))
def test_smart_encoding_replaces_then_chooses(body: str) -> None:
    info = analyze(body, smart=True)
    rewritten, pairs = smart_replace(body)
    assert rewritten == "".join(SMART_MAP.get(char, char) for char in body)  # per code point, one pass
    assert (info.body, info.replacements) == (rewritten, pairs)
    assert {original for original, _ in pairs} == {char for char in body if char in SMART_MAP}
    assert (info.encoding, info.per_segment) == reference_layout(rewritten)
    assert has_unicode(body, smart=True) == (info.encoding == "UCS-2")
    if all(char in CHARSET for char in body):
        assert (info.body, info.replacements) == (body, ())


# --- split_message -------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(split_bodies, modes)
def test_parts_always_fit_one_sms(body: str, mode: str) -> None:
    parts = split_message(body, mode)
    info = analyze(body)
    limit = 160 if info.encoding == "GSM-7" else 70
    assert parts
    assert all(units(part, info.encoding) <= limit for part in parts)
    if info.units <= limit:
        assert parts == [body]
    strip_prefixes(parts)


@PROPERTY_SETTINGS
@given(split_bodies, modes)
def test_content_preserved_modulo_whitespace_at_split_points(body: str, mode: str) -> None:
    contents, _ = strip_prefixes(split_message(body, mode))
    locate(body, contents)


@PROPERTY_SETTINGS
@given(split_bodies)
def test_character_mode_parts_are_full(body: str) -> None:
    parts = split_message(body, "character")
    contents, prefix_lengths = strip_prefixes(parts)
    if len(parts) == 1:
        return
    encoding = analyze(body).encoding
    starts = locate(body, contents)
    for index in range(len(parts) - 1):
        # the part could not have taken text up to and including the next part's first character
        # (a grapheme cluster in UCS-2)
        first = contents[index + 1][0] if encoding == "GSM-7" else clusters(contents[index + 1])[0]
        through_next = body[starts[index] : starts[index + 1]] + first
        assert prefix_lengths[index] + units(through_next, encoding) > (160 if encoding == "GSM-7" else 70)


@PROPERTY_SETTINGS
@given(split_bodies, st.sampled_from(["word", "sentence"]))
def test_words_broken_only_when_part_would_be_over_half_empty(body: str, mode: str) -> None:
    parts = split_message(body, mode)
    contents, prefix_lengths = strip_prefixes(parts)
    encoding = analyze(body).encoding
    limit = 160 if encoding == "GSM-7" else 70
    starts = locate(body, contents)
    atoms = list if encoding == "GSM-7" else clusters  # a space carrying a mark is no word break
    for index in range(len(parts) - 1):
        end = starts[index] + len(contents[index])
        content = atoms(contents[index])
        if starts[index + 1] != end or content[-1].isspace() or atoms(body[end:])[0].isspace():
            continue  # cut between words
        last_space = max((i for i, atom in enumerate(content) if atom.isspace()), default=-1)
        if last_space <= 0:
            continue  # one long word: it had to be broken
        word_cut = "".join(content[:last_space]).rstrip()
        capacity = limit - prefix_lengths[index]
        assert 2 * units(word_cut, encoding) < capacity, (content, word_cut)
