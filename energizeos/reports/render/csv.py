"""The CSV report, in long form for spreadsheets: one ``section,name,value,unit`` row per fact, so a user can
filter by section (the report header, each table's title, ``figures``, ``notes``) or by name.

Rows, in order:
  * ``report,<field>,<value>,`` — site, kind, period, period_start, period_end, timezone, generated_at,
    audit_head, figures_sha256, has_data;
  * ``<table title>,<row label> / <column>,<value>,<unit>`` — one per table cell beyond the row label (a
    one-column table uses the column name). The unit comes from a "Unit" column if the table has one (that
    column is then not repeated as cells), else from a trailing "(unit)" in the column or row label;
  * ``figures,<name>,<value>,`` — the flat figures the digest covers;
  * ``notes,note,<text>,``;
  * if the report has a day profile: a blank line, then a second block with its own header
    ``time,load_kw,poi_kw,bess_kw,soc_pct,threshold_kw`` and one row per minute (site-local ISO time).

Numbers stay plain numbers at full precision (no separators); missing values (None, NaN) are empty cells.
Text that a spreadsheet would run as a formula (=, +, -, @ at the start) is prefixed with a quote."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from numbers import Integral, Real

import numpy as np

from energizeos.reports.document import Cell, DayProfile, ReportDoc, Table

HEADER = ("section", "name", "value", "unit")
PROFILE_HEADER = ("time", "load_kw", "poi_kw", "bess_kw", "soc_pct", "threshold_kw")

_UNIT = re.compile(r"\(([^()]+)\)\s*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def render_csv(doc: ReportDoc) -> str:
    """The report as CSV text (the caller picks the encoding; ``render`` writes UTF-8 with a BOM for Excel)."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")  # RFC 4180 line ends, as spreadsheets expect
    writer.writerow(HEADER)
    writer.writerows(_report_rows(doc))
    for table in doc.tables:
        writer.writerows(table_rows(table))
    writer.writerows(("figures", name, _value(value), "") for name, value in doc.figures.items())
    writer.writerows(("notes", "note", _text(note), "") for note in doc.notes)
    if doc.profile is not None:
        writer.writerow(())
        writer.writerow(PROFILE_HEADER)
        writer.writerows(profile_rows(doc.profile))
    return buf.getvalue()


def _report_rows(doc: ReportDoc) -> list[tuple[str, str, str, str]]:
    fields = {
        "site": doc.site,
        "kind": doc.kind,
        "period": doc.period_label,
        "period_start": doc.period_start.isoformat(),
        "period_end": doc.period_end.isoformat(),
        "timezone": doc.timezone,
        "generated_at": doc.generated_at.isoformat(),
        "audit_head": doc.audit_head,
        "figures_sha256": doc.figures_sha256,
        "has_data": doc.has_data,
    }
    return [("report", name, _value(value), "") for name, value in fields.items()]


def table_rows(table: Table) -> list[tuple[str, str, str, str]]:
    """One row per cell of ``table``, named "<row label> / <column>"."""
    unit_col = next((j for j, c in enumerate(table.columns) if c.strip().lower() in ("unit", "units")), None)
    value_cols = [j for j in range(len(table.columns)) if j != unit_col and (j > 0 or len(table.columns) == 1)]
    out = []
    for row in table.rows:
        cells = [*row, *([None] * (len(table.columns) - len(row)))]
        label = "" if cells[0] is None else str(cells[0])
        row_unit = str(cells[unit_col]) if unit_col is not None and cells[unit_col] is not None else ""
        for j in value_cols:
            column = table.columns[j]
            name = column if len(table.columns) == 1 else f"{label} / {column}"
            unit = row_unit or _unit_in(column) or _unit_in(label)
            out.append((_text(table.title), _text(name), _value(cells[j]), unit))
    return out


def profile_rows(profile: DayProfile) -> list[list[str]]:
    series = [profile.load_kw, profile.poi_kw, profile.bess_kw, profile.soc_pct, profile.threshold_kw]
    columns = [np.asarray(s, dtype=float) for s in series]
    return [
        [t.isoformat(timespec="seconds"), *(_value(float(col[i])) for col in columns)]
        for i, t in enumerate(profile.times)
    ]


def _unit_in(label: str) -> str:
    match = _UNIT.search(label)
    return match.group(1).strip() if match else ""


def _value(value: Cell | bool | dict | list) -> str:
    """A cell as a spreadsheet reads it back: numbers at full precision, empty for missing."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        x = float(value)
        return "" if math.isnan(x) else repr(x + 0.0)  # shortest text that reads back as this float; no "-0.0"
    if isinstance(value, dict | list | tuple):
        return _text(json.dumps(value, sort_keys=True, default=str))
    return _text(str(value))


def _text(text: str) -> str:
    """Text as-is, unless a spreadsheet would evaluate it as a formula (CSV injection)."""
    if text.startswith(_FORMULA_START) and not _NUMBER.match(text):
        return "'" + text
    return text
