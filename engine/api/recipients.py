"""A job's recipients: read from a CSV file (or an API call's ``recipients`` JSON), each rendered with the template
and validated before anything is queued (pure: text in, a plan out).

Every row is checked: its phone number (:func:`engine.phone.to_e164`), a value for every ``{{placeholder}}``
of the template, and the rendered body (not empty; within the characters and billed segments every door allows,
counted with the app's smart encoding; cut into ``(i/n)`` parts for a single-SMS carrier as admission would).
Problems are reported by CSV line number (the line a record starts on; the header is line 1) or, for JSON, by
the recipient's position. A file that cannot be read as a whole (not UTF-8, no phone column, a placeholder no
column provides, broken quoting) is one error naming the file's parameter.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from engine.api.params import placeholders, render_template
from engine.errors import InvalidInput
from engine.phone import to_e164
from engine.policy.admission import AppRules, BodyLimits, body_problem, prepare

__all__ = [
    "DELIMITERS",
    "JobPlan",
    "Planned",
    "Row",
    "Skipped",
    "decode",
    "json_rows",
    "plan_job",
    "read_csv",
    "require_valid",
    "sniff_delimiter",
]

DELIMITERS: Final = (",", ";", "\t", "|")
SHOWN_PROBLEMS: Final = 20  # problems quoted in an error message (all of them are in its details)


@dataclass(frozen=True, slots=True)
class Row:
    """One recipient as given: where it is (CSV line, or position in the JSON), its raw phone and its values."""

    line: int
    phone: str
    values: Mapping[str, Any]
    problem: str | None = None  # the row itself is malformed (more fields than the header)


@dataclass(frozen=True, slots=True)
class Skipped:
    """A row that cannot be sent, and why."""

    line: int
    phone: str
    problem: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "phone": self.phone, "problem": self.problem}


@dataclass(frozen=True, slots=True)
class Planned:
    """A row that can be sent: its E.164 number, its body's parts and the SMS segments it is billed as."""

    line: int
    recipient: str
    parts: tuple[str, ...]
    segments: int = 1


@dataclass(frozen=True, slots=True)
class JobPlan:
    messages: list[Planned]
    skipped: list[Skipped]

    @property
    def rows(self) -> int:
        return len(self.messages) + len(self.skipped)


def decode(data: bytes, param: str) -> str:
    """The file's text (UTF-8, a byte-order mark dropped); InvalidInput naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InvalidInput(param, f"is not UTF-8 text (line {line}): save it as CSV UTF-8") from None


def sniff_delimiter(header: str) -> str:
    """The delimiter of a CSV whose first line is *header*: the most frequent of , ; TAB | outside quotes
    (',' when none occurs, a one-column file); ties go to the earlier in that list."""
    counts = dict.fromkeys(DELIMITERS, 0)
    quoted = False
    for ch in header:
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in counts:
            counts[ch] += 1
    best = max(DELIMITERS, key=lambda d: (counts[d], -DELIMITERS.index(d)))
    return best if counts[best] else ","


def _find_column(header: Sequence[str], wanted: str) -> int | None:
    if wanted in header:
        return header.index(wanted)
    folded = [i for i, name in enumerate(header) if name.casefold() == wanted.casefold()]
    return folded[0] if len(folded) == 1 else None


def read_csv(text: str, template: str, *, phone_column: str = "phone", param: str = "csv") -> list[Row]:
    """The rows of a CSV with a header line: the phone from *phone_column*, the values of the template's
    placeholders from the columns of those names. Blank lines are skipped."""
    end = text.find("\n")
    first_line = text if end < 0 else text[:end]
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sniff_delimiter(first_line), strict=True)
    start = 1  # the line the record being read starts on
    try:
        header = [name.strip() for name in next(reader, [])]
        if not any(header):
            raise InvalidInput(param, "is empty: the first line must name the columns (e.g. phone,name)")
        named = [n for n in header if n]
        if len(set(named)) != len(named):
            twice = sorted({n for n in named if named.count(n) > 1})
            raise InvalidInput(param, f"column {twice[0]!r} appears twice in the header")
        phone_at = _find_column(header, phone_column.strip())
        if phone_at is None:
            raise InvalidInput(param, f"has no {phone_column!r} column (columns: {', '.join(named)}); "
                               "name the phone column with phone_column")
        wanted = placeholders(template)
        absent = [n for n in wanted if n not in header]
        if absent:
            raise InvalidInput(param, f"has no column for the template's {{{{{absent[0]}}}}} "
                               f"(columns: {', '.join(named)})")
        fields_at = [(n, header.index(n)) for n in wanted]
        width = len(header)
        rows: list[Row] = []
        start = reader.line_num + 1
        for record in reader:
            line, start = start, reader.line_num + 1
            if not any(f.strip() for f in record):
                continue
            values = {n: record[i] for n, i in fields_at if i < len(record)}
            phone = record[phone_at] if phone_at < len(record) else ""
            extra = any(f.strip() for f in record[width:])
            problem = f"has {len(record)} fields; the header has {width}" if extra else None
            rows.append(Row(line, phone, values, problem))
    except csv.Error as exc:
        raise InvalidInput(param, f"line {start}: {exc}") from None
    return rows


def json_rows(recipients: Mapping[str, Mapping[str, Any]]) -> list[Row]:
    """The rows of a ``recipients`` JSON object (phone -> values), numbered by position from 1."""
    return [Row(i, phone, values) for i, (phone, values) in enumerate(recipients.items(), start=1)]


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def plan_job(template: str, rows: Iterable[Row], rules: AppRules, limits: BodyLimits) -> JobPlan:
    """Render and check every row: the ones that can be sent (in order) and the ones that cannot, with why."""
    names = placeholders(template)
    messages: list[Planned] = []
    skipped: list[Skipped] = []
    for row in rows:
        problems = [row.problem] if row.problem else []
        raw = row.phone.strip()
        e164 = to_e164(raw) if raw else None
        if not raw:
            problems.append("no phone number")
        elif e164 is None:
            problems.append(f"{raw[:40]!r} is not a valid phone number")
        missing = [n for n in names if _blank(row.values.get(n))]
        odd = [n for n in names if n not in missing and not isinstance(row.values[n], str | int | float)]
        if missing:
            problems.append("no value for " + ", ".join(f"{{{{{n}}}}}" for n in missing))
        if odd:
            problems.append(f"the value for {{{{{odd[0]}}}}} must be a string or a number")
        parts: tuple[str, ...] = ()
        segments = 0
        if not missing and not odd:
            body = render_template(template, row.values)
            problem = None
            if not body.strip():
                problem = "is empty"
            elif "\x00" in body:  # PostgreSQL text cannot hold NUL
                problem = "must not contain NUL characters"
            elif len(body) > limits.max_chars:
                problem = body_problem(body, None, limits)
            else:
                prepared = prepare(body, rules)
                problem = body_problem(body, prepared.info.segments, limits)
                parts = prepared.parts
                segments = prepared.info.segments
            if problem is not None:
                problems.append(f"the message {problem}")
        if problems or e164 is None:
            skipped.append(Skipped(row.line, raw, "; ".join(problems)))
        else:
            messages.append(Planned(row.line, e164, parts, segments))
    return JobPlan(messages, skipped)


def require_valid(plan: JobPlan, *, skip_invalid: bool, param: str, what: str = "line") -> None:
    """InvalidInput (naming *param*, every problem in its details) when rows are invalid and *skip_invalid* is
    not set, or when nothing at all can be sent."""
    details = [s.as_dict() for s in plan.skipped]
    if plan.skipped and not skip_invalid:
        shown = "; ".join(f"{what} {s.line}: {s.problem}" for s in plan.skipped[:SHOWN_PROBLEMS])
        more = len(plan.skipped) - SHOWN_PROBLEMS
        raise InvalidInput(
            param, f"{len(plan.skipped)} of {plan.rows} recipients cannot be sent, nothing was queued "
            f"(skip_invalid sends the others): {shown}" + (f"; and {more} more" if more > 0 else ""), details)
    if not plan.messages:
        raise InvalidInput(param, "has no recipient that can be sent" if plan.rows else "has no recipients", details)
