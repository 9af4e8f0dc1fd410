"""Text shared by the PDF and HTML renderers, so both show a figure, a period or a hash the same way.
The CSV renderer deliberately does not use this: it keeps numbers as plain numbers."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from numbers import Integral, Real

from energizeos.reports.document import Cell, ReportDoc, Table

NA = "n/a"
_HASH = re.compile(r"\b[0-9a-fA-F]{16,}\b")


def format_cell(value: Cell) -> str:
    """A table cell for people: thousands separators, two decimals, "n/a" for no data."""
    if value is None:
        return NA
    if isinstance(value, bool):  # before Integral: bool is an int
        return "yes" if value else "no"
    if isinstance(value, Integral):
        return f"{int(value):,d}"
    if isinstance(value, Real):
        return _format_float(float(value))
    return str(value)


def _format_float(x: float) -> str:
    if math.isnan(x):
        return NA
    if math.isinf(x):
        return "∞" if x > 0 else "-∞"
    if 0 < abs(x) < 0.005:  # would print as 0.00 and hide that something is there
        return f"{x:.2g}"
    text = f"{x:,.2f}"
    return "0.00" if text == "-0.00" else text


def is_number(value: Cell) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def numeric_columns(table: Table) -> list[bool]:
    """Columns whose values are all numbers or missing: these are right-aligned. The first column holds row
    labels, so it counts as numeric only if it actually has numbers."""
    flags = []
    for j in range(len(table.columns)):
        cells = [row[j] for row in table.rows if j < len(row) and row[j] is not None]
        flags.append((bool(cells) or j > 0) and all(is_number(c) for c in cells))
    return flags


def padded_row(row: list[Cell], width: int) -> list[Cell]:
    """A row with exactly ``width`` cells: short rows are filled with missing values."""
    return [*row[:width], *([None] * (width - len(row)))]


def kind_label(doc: ReportDoc) -> str:
    return f"{doc.kind.capitalize()} report"


def period_text(doc: ReportDoc) -> str:
    """Start and (exclusive) end in site-local time with the zone and its UTC offset(s): the reader's clock."""
    start, end = doc.period_start, doc.period_end
    offsets = list(dict.fromkeys(_offset(t) for t in (start, end) if _offset(t)))  # two on a DST change
    zone = ", ".join([doc.timezone, " / ".join(offsets)]) if offsets else doc.timezone
    return f"{start:%Y-%m-%d %H:%M} \u2013 {end:%Y-%m-%d %H:%M} ({zone})"


def _offset(t: datetime) -> str:
    text = t.strftime("%z")
    return f"UTC{text[:3]}:{text[3:]}" if text else ""


def generated_text(doc: ReportDoc) -> str:
    at = doc.generated_at.astimezone(UTC) if doc.generated_at.tzinfo else doc.generated_at
    return f"{at:%Y-%m-%d %H:%M:%S} UTC"


def short_hashes(text: str, keep: int = 12) -> str:
    """Long hex digests cut to their first ``keep`` digits, for footers where the full hash does not fit."""
    return _HASH.sub(lambda m: m.group(0)[:keep] + "…", text)


def header_rows(doc: ReportDoc) -> list[tuple[str, str]]:
    """The title block under the heading, identical in the PDF and the HTML."""
    return [
        ("Period", period_text(doc)),
        ("Generated", generated_text(doc)),
        ("Audit head", doc.audit_head),
        (doc.digest_label, doc.figures_sha256),
    ]
