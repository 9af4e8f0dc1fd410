"""The HTML report: one self-contained file (inline CSS, charts as inline SVG, no scripts, fonts or links to
fetch), so it opens the same on an air-gapped operator PC. The template is inline and autoescaped: every
string from the report is escaped; only the charts' SVG, produced here by matplotlib, is inserted as markup.
A Content-Security-Policy forbids loading anything, as a second line of defence."""

from __future__ import annotations

from dataclasses import dataclass

from jinja2 import Environment, StrictUndefined
from markupsafe import Markup

from energizeos.reports.document import ReportDoc, Table
from energizeos.reports.render import charts
from energizeos.reports.render._format import (
    format_cell,
    generated_text,
    header_rows,
    kind_label,
    numeric_columns,
    padded_row,
)

_TEMPLATE = """\
<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="EnergizeOS">
<title>{{ doc.title }}</title>
<style>
  :root { --ink: #222; --muted: #666; --rule: #d5dae0; --head: #2f3e4e; --zebra: #f3f5f8; --alert: #b3261e; }
  * { box-sizing: border-box; }
  body { margin: 0; color: var(--ink); background: #fff;
         font: 14px/1.45 "DejaVu Sans", "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
  main { max-width: 60rem; margin: 0 auto; padding: 1.5rem 1.25rem 3rem; }
  header.site { border-bottom: 1px solid var(--rule); padding-bottom: .75rem; margin-bottom: 1rem; }
  h1 { font-size: 1.75rem; margin: 0; }
  .subtitle { color: var(--muted); font-size: 1.1rem; margin: .15rem 0 .75rem; }
  dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; margin: 0; font-size: .85rem; }
  dl.meta dt { color: var(--muted); font-weight: bold; }
  dl.meta dd { margin: 0; overflow-wrap: anywhere; }
  .hash { font-family: "DejaVu Sans Mono", Consolas, Menlo, monospace; font-size: .8rem; }
  h2 { font-size: 1.15rem; margin: 1.6rem 0 .5rem; }
  .no-data { border: 2px solid var(--alert); background: #fdecea; color: var(--alert);
             padding: .8rem 1rem; margin: 1rem 0; }
  .no-data strong { font-size: 1.3rem; display: block; }
  ul.notes { padding-left: 1.25rem; margin: .25rem 0; }
  table { border-collapse: collapse; width: 100%; font-size: .85rem; }
  caption { text-align: left; font-weight: bold; font-size: 1.15rem; padding: 0 0 .5rem; }
  th { background: var(--head); color: #fff; text-align: left; font-weight: bold; }
  th, td { padding: .3rem .5rem; border-bottom: 1px solid var(--rule); vertical-align: middle; }
  tbody tr:nth-child(even) { background: var(--zebra); }
  .num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
  .na { color: var(--muted); }
  section.table { margin-top: 1.6rem; }
  p.table-note { color: var(--muted); font-style: italic; font-size: .8rem; margin: .35rem 0 0; }
  figure.chart { margin: 1rem 0; }
  figure.chart svg { display: block; width: 100%; height: auto; }
  footer { margin-top: 2rem; border-top: 1px solid var(--rule); padding-top: .5rem;
           color: var(--muted); font-size: .75rem; }
  @media print {
    main { max-width: none; padding: 0; }
    table { page-break-inside: auto; } tr, figure.chart { page-break-inside: avoid; }
    thead { display: table-header-group; }
  }
</style>
</head>
<body>
<main>
<header class="site">
  <h1>{{ doc.site }}</h1>
  <p class="subtitle">{{ kind }} · {{ doc.period_label }}</p>
  <dl class="meta">
  {%- for key, value in meta %}
    <dt>{{ key }}</dt><dd{% if key in hash_keys %} class="hash"{% endif %}>{{ value }}</dd>
  {%- endfor %}
  </dl>
</header>
{%- if not doc.has_data %}
<div class="no-data" role="alert"><strong>No recorded data for this period</strong>
The records hold no measurements for this period: figures are n/a and no charts are drawn.</div>
{%- endif %}
{%- if doc.notes %}
<h2>Notes</h2>
<ul class="notes">
{%- for note in doc.notes %}
  <li>{{ note }}</li>
{%- endfor %}
</ul>
{%- endif %}
{%- for table in tables %}
<section class="table">
<table>
  <caption>{{ table.title }}</caption>
  <thead><tr>
  {%- for col in table.columns %}<th scope="col"{% if col.numeric %} class="num"{% endif %}>{{ col.name }}</th>
  {%- endfor %}</tr></thead>
  <tbody>
  {%- for row in table.rows %}
    <tr>{% for cell in row %}<td{% if cell.css %} class="{{ cell.css }}"{% endif %}>{{ cell.text }}</td>
    {%- endfor %}</tr>
  {%- endfor %}
  </tbody>
</table>
{%- if table.note %}
<p class="table-note">{{ table.note }}</p>
{%- endif %}
</section>
{%- endfor %}
{%- if charts %}
<h2>Charts</h2>
{%- for chart in charts %}
<figure class="chart" id="chart-{{ chart.key }}">
{{ chart.svg }}
</figure>
{%- endfor %}
{%- endif %}
<footer>{{ doc.site }} · {{ doc.period_label }} · generated {{ generated }} · audit {{ doc.audit_head }}</footer>
</main>
</body>
</html>
"""

# Environment and template are immutable once built, and Jinja2 renders them safely from several threads.
_ENV = Environment(autoescape=True, undefined=StrictUndefined, keep_trailing_newline=True)
_PAGE = _ENV.from_string(_TEMPLATE)


@dataclass(frozen=True)
class _Column:
    name: str
    numeric: bool


@dataclass(frozen=True)
class _Cell:
    text: str
    css: str


@dataclass(frozen=True)
class _TableView:
    title: str
    note: str
    columns: list[_Column]
    rows: list[list[_Cell]]


@dataclass(frozen=True)
class _ChartView:
    key: str
    svg: Markup


def render_html(doc: ReportDoc) -> str:
    """The report as one self-contained HTML page."""
    return _PAGE.render(
        doc=doc,
        kind=kind_label(doc),
        meta=header_rows(doc),
        hash_keys=("Audit head", doc.digest_label),
        generated=generated_text(doc),
        tables=[_table_view(t) for t in doc.tables],
        charts=[_chart_view(c) for c in charts.charts_for(doc)],
    )


def _table_view(table: Table) -> _TableView:
    numeric = numeric_columns(table)
    ncols = len(table.columns)
    rows = [
        [_Cell(format_cell(v), _css(numeric[j], v is None)) for j, v in enumerate(padded_row(row, ncols))]
        for row in table.rows
    ]
    columns = [_Column(name, numeric[j]) for j, name in enumerate(table.columns)]
    return _TableView(table.title, table.note, columns, rows)


def _css(numeric: bool, missing: bool) -> str:
    return " ".join(c for c in ("num" if numeric else "", "na" if missing else "") if c)


def _chart_view(chart: charts.Chart) -> _ChartView:
    # Markup: trusted SVG from matplotlib; any report text inside it was escaped by matplotlib's XML writer.
    return _ChartView(chart.key, Markup(charts.to_svg(chart.figure(), chart.key, chart.title)))
