"""Reports: the daily or monthly report of the site, computed from the records by the same library the
reporter node and ``energizeos report`` use (``energizeos.reports``), so the figures here are the figures
in the PDF. Shows the key figures, the charts, the bill line items, the notes and gaps, downloads of the
PDF and CSV rendered from the report shown, and the reports already kept on the audit chain.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st
from plotly.subplots import make_subplots
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from energizeos.records.db import error_line, redacted
from energizeos.records.models import ReportRecord
from energizeos.reports.build import ReportError, build_report
from energizeos.reports.document import DayProfile, MonthlyPeaks, ReportDoc, Table, Waterfall
from energizeos.reports.render import render_bytes
from energizeos.reports.render._format import format_cell, period_text
from energizeos.site_config import report_settings
from energizeos.tariffs import TariffError
from energizeos.ui import context

CACHE_TTL_S = 60  # a report of today changes as records arrive: recompute at most once a minute
MONTHS_OFFERED = 24
STORED_LISTED = 100
BILL_TABLE = "Savings against the tariff"
GAPS_TABLE = "Data gaps"
PLOTLY_CONFIG = {"displaylogo": False}

# (label, figure name, unit): the key figures, in the order shown; the tests read the same names
ENERGY = (("Imported at the POI", "poi_import_kwh", "kWh"), ("Exported at the POI", "poi_export_kwh", "kWh"),
          ("Battery discharged", "bess_discharged_kwh", "kWh"), ("Battery charged", "bess_charged_kwh", "kWh"))
PEAKS = (("Peak demand without battery", "peak_kw_without", "kW"), ("Peak demand with battery", "peak_kw_with", "kW"),
         ("On-peak demand without battery", "peak_on_peak_kw_without", "kW"),
         ("On-peak demand with battery", "peak_on_peak_kw_with", "kW"))
BILL = (("Bill without battery", "bill_without_bess", "$"), ("Bill with battery", "bill_with_bess", "$"),
        ("Savings", "savings", "$"))
OPERATION = (("Availability", "availability_pct", "%"), ("Export-limit events", "export_events", ""),
             ("Alarms raised", "alarms_raised", ""), ("POI data coverage", "poi_coverage_pct", "%"))


# --- computing (cached) -----------------------------------------------------------------------------
@st.cache_data(ttl=CACHE_TTL_S, max_entries=32, show_spinner="computing the report from the records...")
def cached_report(kind: str, label: str, db_url: str) -> ReportDoc:
    """The report of one period. ``db_url`` is the records' URL: it is only part of the cache key, so two
    databases (a test's, a site's) never share a cached report."""
    return build_report(context.records(), kind, label, report_settings(context.site_config()))


def figure_text(value: object, unit: str) -> str:
    """A figure as the PDF prints it ("n/a" when there is no data), with its unit."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "n/a"
    if unit == "$":
        amount = float(value)  # type: ignore[arg-type]
        return ("-$" if amount < 0 else "$") + format_cell(abs(amount))
    return f"{format_cell(value)} {unit}".rstrip()  # type: ignore[arg-type]


def plain_md(text: str) -> str:
    """Report text shown as written: Streamlit markdown would read a pair of "$" as mathematics."""
    return text.replace("$", "\\$")


# --- the period picker --------------------------------------------------------------------------------
def month_labels(today: date, count: int = MONTHS_OFFERED) -> list[str]:
    """This month first, then the ones before it."""
    labels, year, month = [], today.year, today.month
    for _ in range(count):
        labels.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return labels


def pick_period() -> tuple[str, str]:
    today = datetime.now(context.zone()).date()
    kind = st.radio("Report", ["daily", "monthly"], horizontal=True, key="report_kind")
    if kind == "daily":
        day = st.date_input("Day (site time)", value=today - timedelta(days=1), max_value=today, key="report_day")
        return kind, day.isoformat()  # type: ignore[union-attr]
    return kind, st.selectbox("Month (site time)", month_labels(today), key="report_month")


# --- key figures --------------------------------------------------------------------------------------
def metric_row(doc: ReportDoc, items: Sequence[tuple[str, str, str]], notes: dict[str, str] | None = None) -> None:
    cols = st.columns(len(items))
    for col, (label, name, unit) in zip(cols, items, strict=True):
        col.metric(label, figure_text(doc.figures.get(name), unit))
        if notes and notes.get(name):
            col.caption(notes[name])


def key_figures(doc: ReportDoc) -> None:
    f = doc.figures
    st.subheader("Key figures")
    metric_row(doc, ENERGY)
    at = {name: f"15-min interval from {f[name + '_at']}" for _l, name, _u in PEAKS if f.get(name + "_at")}
    metric_row(doc, PEAKS, at)
    metric_row(doc, BILL)
    losses = ", ".join(f"{k.removeprefix('availability_loss_s[').rstrip(']')} {v / 60:,.1f} min"
                       for k, v in f.items() if k.startswith("availability_loss_s[") and v)
    metric_row(doc, OPERATION, {"availability_pct": f"lost: {losses}" if losses else "no losses"})


# --- charts (plotly) ----------------------------------------------------------------------------------
def local_naive(times: Sequence[datetime]) -> list[datetime]:
    """Site-local wall-clock times without their zone: plotly.js cannot read a UTC offset."""
    return [t.replace(tzinfo=None) for t in times]


def profile_figure(profile: DayProfile, tz: str) -> go.Figure:
    x = local_naive(profile.times)
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    for name, values, color, dash in (("Site load", profile.load_kw, "#3d3d3d", None),
                                      ("POI (+ import)", profile.poi_kw, "#0072B2", None),
                                      ("BESS (+ discharge)", profile.bess_kw, "#CC79A7", None),
                                      ("Peak threshold", profile.threshold_kw, "#D55E00", "dash")):
        if name == "Peak threshold" and not np.isfinite(values).any():
            continue  # no threshold in force: no line, no legend entry
        fig.add_trace(go.Scatter(x=x, y=values, name=name, mode="lines", line={"color": color, "dash": dash},
                                 connectgaps=False), secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=profile.soc_pct, name="SOC (right)", mode="lines",
                             line={"color": "#009E73", "dash": "dot"}, connectgaps=False), secondary_y=True)
    fig.update_yaxes(title_text="kW", secondary_y=False)
    fig.update_yaxes(title_text="SOC %", range=[0, 100], secondary_y=True)
    fig.update_layout(title="Day profile (1-minute means; a gap in the record is a gap in the line)",
                      xaxis_title=f"site time ({tz})", legend={"orientation": "h"}, hovermode="x unified")
    return fig


def peaks_figure(peaks: MonthlyPeaks) -> go.Figure:
    x = [d.isoformat() for d in peaks.days]
    fig = go.Figure([go.Bar(x=x, y=peaks.peak_without_kw, name="Without battery", marker_color="#a6a6a6"),
                     go.Bar(x=x, y=peaks.peak_with_kw, name="With battery", marker_color="#0072B2")])
    fig.update_layout(title="Daily peak demand (15-minute POI average)", barmode="group", yaxis_title="kW",
                      xaxis={"type": "category"}, legend={"orientation": "h"})
    return fig


def waterfall_figure(waterfall: Waterfall) -> go.Figure:
    steps = waterfall.steps
    last = len(steps) - 1
    measure = ["absolute" if i in (0, last) else "relative" for i in range(len(steps))]
    fig = go.Figure(go.Waterfall(x=[label for label, _ in steps], y=[amount for _, amount in steps],
                                 measure=measure, text=[figure_text(a, "$") for _, a in steps],
                                 textposition="outside", decreasing={"marker": {"color": "#2e8b57"}},
                                 increasing={"marker": {"color": "#c0392b"}},
                                 totals={"marker": {"color": "#51657a"}}))
    fig.update_layout(title="Bill without battery to bill with battery", yaxis_title="$", showlegend=False)
    return fig


def charts(doc: ReportDoc) -> None:
    shown = False
    if doc.profile is not None and doc.profile.times:
        st.plotly_chart(profile_figure(doc.profile, doc.timezone), config=PLOTLY_CONFIG, key="report_profile")
        shown = True
    if doc.monthly_peaks is not None and doc.monthly_peaks.days:
        st.plotly_chart(peaks_figure(doc.monthly_peaks), config=PLOTLY_CONFIG, key="report_peaks")
        shown = True
    if doc.waterfall is not None and doc.waterfall.steps:
        st.plotly_chart(waterfall_figure(doc.waterfall), config=PLOTLY_CONFIG, key="report_waterfall")
        shown = True
    if not shown:
        st.caption("No chart for this period.")


# --- tables, notes ------------------------------------------------------------------------------------
def table_frame(table: Table) -> pd.DataFrame:
    """The table as the PDF prints it; repeated column names ("at", "at") get the one before them added."""
    columns: list[str] = []
    for i, name in enumerate(table.columns):
        columns.append(f"{name} ({table.columns[i - 1]})" if name in columns and i else name)
    width = len(columns)
    rows = [[format_cell(c) for c in [*row[:width], *[None] * (width - len(row))]] for row in table.rows]
    return pd.DataFrame(rows, columns=columns)


def show_table(table: Table, title: str | None = None) -> None:
    st.markdown(f"**{title or table.title}**")
    if table.rows:
        st.dataframe(table_frame(table), hide_index=True)
    if table.note:
        st.caption(plain_md(table.note))


def tables_by_title(doc: ReportDoc) -> dict[str, Table]:
    return {t.title: t for t in doc.tables}


def bill_and_notes(doc: ReportDoc) -> None:
    tables = tables_by_title(doc)
    st.subheader("Bill line items")
    if BILL_TABLE in tables:
        show_table(tables[BILL_TABLE], "With and without the battery, by line item")
    st.subheader("Notes and data gaps")
    if doc.notes:
        st.warning("\n".join(f"- {plain_md(note)}" for note in doc.notes))
    else:
        st.success("No notes: the record is complete for this period.")
    if GAPS_TABLE in tables:
        show_table(tables[GAPS_TABLE])


def other_tables(doc: ReportDoc) -> None:
    with st.expander("Every table of the report"):
        for table in doc.tables:
            if table.title not in (BILL_TABLE, GAPS_TABLE):
                show_table(table)
    with st.expander("All figures (as in the CSV; the SHA-256 below covers these)"):
        names = list(doc.figures)
        st.dataframe(pd.DataFrame({"figure name": names, "value": [_plain(doc.figures[n]) for n in names]}),
                     hide_index=True, key="report_figures")


def _plain(value: object) -> str:
    """Full precision, one type per column (the dataframe needs one)."""
    return "" if value is None else repr(value) if isinstance(value, float) else str(value)


# --- downloads and kept reports -------------------------------------------------------------------------
def downloads(doc: ReportDoc) -> None:
    name = f"{doc.site}_{doc.kind}_{doc.period_label}"

    def later(fmt: str) -> Callable[[], bytes]:
        return lambda: render_bytes(doc, fmt)  # on click: the report shown, not a recomputed one

    cols = st.columns(3)
    cols[0].download_button("Download PDF", later("pdf"), f"{name}.pdf", "application/pdf", key="report_pdf",
                            on_click="ignore")
    cols[1].download_button("Download CSV", later("csv"), f"{name}.csv", "text/csv", key="report_csv",
                            on_click="ignore")
    cols[2].caption("Rendered from the figures on this page. A download is not kept; the reporter node and "
                    "`energizeos report` keep reports on the audit chain (listed below).")


def stored_reports(kind: str, period_start: datetime) -> None:
    st.subheader("Reports kept on the audit chain")
    zone = context.zone()
    try:
        with Session(context.records()) as session:
            rows = session.exec(select(ReportRecord).order_by(
                ReportRecord.generated_at.desc()).limit(STORED_LISTED)).all()  # type: ignore[union-attr]
    except SQLAlchemyError as exc:
        st.warning(f"Kept reports not readable: {error_line(exc)}")
        return
    if not rows:
        st.caption("No report has been kept yet.")
        return
    table = [{"this period": r.kind == kind and r.period_start == period_start, "kind": r.kind,
              "period": r.period_start.astimezone(zone).strftime("%Y-%m-%d" if r.kind == "daily" else "%Y-%m"),
              "generated (site time)": r.generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z"),
              "format": r.format, "file": r.path.rsplit("/", 1)[-1], "sha256": r.sha256 or "not recorded"}
             for r in rows]
    st.dataframe(table, hide_index=True, key="report_stored")
    st.caption(f"Newest first, at most {STORED_LISTED}. Check a file with `sha256sum`: it must match.")


# --- the page ---------------------------------------------------------------------------------------------
def page() -> None:
    who = context.current()
    st.title("Reports")
    if not context.can(who, "view"):
        st.error(f"{who.username} (role {who.role}) may not view reports.")
        return
    kind, label = pick_period()
    try:
        doc = cached_report(kind, label, redacted(context.records()))
    except (ReportError, TariffError, ValueError) as exc:
        st.error(f"The report cannot be made: {exc}")
        return
    except SQLAlchemyError as exc:
        st.error(f"Records not readable: {error_line(exc)}")
        return
    st.caption(f"{doc.title} · {period_text(doc)} · computed against audit {doc.audit_head} · figures SHA-256 "
               f"{doc.figures_sha256}")
    if not doc.has_data:
        st.info(plain_md(doc.notes[0]) if doc.notes else "No recorded data for this period.")
    else:
        key_figures(doc)
        charts(doc)
        bill_and_notes(doc)
        other_tables(doc)
    downloads(doc)
    stored_reports(kind, doc.period_start)


page()
