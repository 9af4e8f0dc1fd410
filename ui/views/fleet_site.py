"""One site of the fleet: its status and today's figures, its open alarms, its recent events,
today's POI and battery power, and the reports it announced, with downloads of the files it forwarded.
The site comes from the URL (``?site=<id>``, as the Sites page links it) or the chooser. Read-only:
nothing here reaches the site.
"""

from __future__ import annotations

from datetime import timedelta
from functools import partial

import plotly.graph_objects as go
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from energizeos.records.db import error_line
from energizeos.remote.fleet_queries import (
    NEVER_HEARD,
    ReportFileRef,
    Series,
    fleet_overview,
    fleet_sites,
    local_day,
    report_file_bytes,
    site_alarms,
    site_events,
    site_power_series,
    site_report_files,
    site_reports,
)
from energizeos.ui import context
from energizeos.ui.alarm_view import PRIORITY, STATE
from energizeos.ui.fleet_view import (
    HASH_SHOWN,
    MIME,
    download_label,
    file_formats,
    local,
    number,
    report_hashes,
    report_row,
    status_line,
)

EVENT_DAYS = 7  # how far back the event list looks (it scans the site's records by time)
EVENT_ROWS = 50
REPORT_DAYS = 40  # how far back the report list looks: last month's monthly report is always inside
REPORT_ROWS = 60
CHOICE = "fleet_site_choice"
PLOTLY_CONFIG = {"displaylogo": False}

settings = context.fleet_settings()
engine = context.fleet_db()
zone = settings.zone


def session_still_valid() -> None:
    """A timer refresh is not a user action: it checks the session without keeping it alive."""
    if context.principal(touch=False, via=context.fleet_actions()) is None:
        st.rerun(scope="app")


def choose_site() -> str | None:
    try:
        names = fleet_sites(engine, settings.sites)
    except SQLAlchemyError as exc:
        st.warning(f"Fleet database not readable: {error_line(exc)}")
        return None
    if not names:
        st.info("No site has sent anything yet, and none is configured.")
        return None
    # The address names the site shown (it can be shared): a link with ?site= wins over the chooser's last
    # value, and a choice in the chooser rewrites the address before the page runs again.
    wanted = st.query_params.get("site", "")
    if wanted and wanted not in names:
        st.warning(f"No site {context.code_span(wanted)} in the fleet database.")  # the address is anyone's
    if wanted not in names:
        wanted = st.session_state.get(CHOICE) if st.session_state.get(CHOICE) in names else next(iter(names))
    st.session_state[CHOICE] = wanted
    site = st.selectbox("Site", list(names), format_func=lambda i: f"{names[i]} ({i})", key=CHOICE,
                        on_change=lambda: st.query_params.update(site=st.session_state[CHOICE]))
    st.query_params["site"] = site
    return site


@st.fragment(run_every=settings.refresh_s)
def site_now(site: str) -> None:
    session_still_valid()
    now = context.now()
    try:
        found = fleet_overview(engine, now, settings.offline_after_s, zone, settings.sites, only=site)
        alarms = site_alarms(engine, site)
    except SQLAlchemyError as exc:
        st.warning(f"Fleet database not readable: {error_line(exc)}")
        return
    if not found:
        st.warning(f"No site {site!r} in the fleet database.")
        return
    s = found[0]
    st.title(s.name)
    st.markdown(status_line(s, zone))
    if s.status == NEVER_HEARD:
        return
    cols = st.columns(5)
    cols[0].metric("Import today", f"{number(s.import_kwh)} kWh", help="import register: last - first reading today")
    cols[1].metric("Export today", f"{number(s.export_kwh)} kWh", help="export register: last - first reading today")
    cols[2].metric("Peak import today", f"{number(s.peak_import_kw)} kW", help="highest POI import reading today")
    cols[3].metric("State of charge", f"{number(s.soc_pct)} %")
    cols[3].caption(f"reading of {local(s.soc_at, zone)}")
    cols[4].metric("Battery", f"{number(s.battery_kw)} kW", help="PCS AC power: discharge +, charge -")
    cols[4].caption(f"reading of {local(s.battery_at, zone)}")
    st.subheader("Open alarms")
    if not alarms:
        st.success("No open alarms")
    else:
        st.dataframe([{"priority": PRIORITY.get(a.priority, str(a.priority)), "code": a.code, "device": a.device,
                       "state": STATE.get(a.state, str(a.state)), "raised (site time)": local(a.raised, zone),
                       "changed": local(a.changed, zone), "message": a.message, "alarm id": str(a.alarm_id)}
                      for a in alarms], hide_index=True, width="stretch", key="fleet_site_alarms")
        st.caption("Acknowledging and shelving are done at the site: this view only reads.")


def events(site: str) -> None:
    st.subheader("Recent events")
    try:
        rows = site_events(engine, site, EVENT_ROWS, since=context.now() - timedelta(days=EVENT_DAYS))
    except SQLAlchemyError as exc:
        st.warning(f"Fleet database not readable: {error_line(exc)}")
        return
    if not rows:
        st.caption(f"No events in the last {EVENT_DAYS} days.")
        return
    st.dataframe([{"time (site time)": local(e.time, zone), "what": e.what, "source": e.source,
                   "message": e.message, "user": e.user} for e in rows], hide_index=True, width="stretch",
                 key="fleet_site_events")


def power_figure(series: dict[str, Series]) -> go.Figure:
    fig = go.Figure()
    for name, key, color in (("POI (+ import)", "poi", "#0072B2"), ("Battery (+ discharge)", "battery", "#CC79A7")):
        data = series[key]
        # site wall-clock times without the zone: plotly.js cannot read a UTC offset
        fig.add_trace(go.Scatter(x=[t.astimezone(zone).replace(tzinfo=None) for t in data.times], y=data.values,
                                 name=name, mode="lines", line={"color": color}, connectgaps=False))
    fig.update_layout(title="Today's power (a gap is a reading that was not good)", yaxis_title="kW",
                      xaxis_title=f"site time ({settings.timezone})", legend={"orientation": "h"},
                      hovermode="x unified")
    return fig


@st.fragment(run_every=max(30.0, settings.refresh_s))
def power_chart(site: str) -> None:
    now = context.now()
    start = local_day(now, zone)[0]
    try:
        series = site_power_series(engine, site, start, now)
    except SQLAlchemyError as exc:
        st.warning(f"Fleet database not readable: {error_line(exc)}")
        return
    if not series["poi"].times and not series["battery"].times:
        st.caption("No POI or battery readings today.")
        return
    st.plotly_chart(power_figure(series), config=PLOTLY_CONFIG, key="fleet_site_power")


def reports(site: str) -> None:
    """Read as the page opens, not on the timer: a site announces a report or two a day, and the scan
    walks back through its records. The forwarded files are listed from their small table; no file's
    bytes are read until its download button is clicked."""
    st.subheader("Reports")
    since = context.now() - timedelta(days=REPORT_DAYS)
    try:
        rows = site_reports(engine, site, REPORT_ROWS, since=since)
        files = site_report_files(engine, site, since=since)
    except SQLAlchemyError as exc:
        st.warning(f"Fleet database not readable: {error_line(exc)}")
        return
    if not rows:
        st.caption(f"No report announced in the last {REPORT_DAYS} days.")
    else:
        hash_help = (f"SHA-256 of the report's figures as the site computed them; the first {HASH_SHOWN} hex "
                     "digits. The full values, and those of the files, are under the table.")
        table = [report_row(r, zone, file_formats(files.get((r.report, r.period), {}))) for r in rows]
        st.dataframe(table, hide_index=True, width="stretch", key="fleet_site_reports",
                     column_config={"figures SHA-256": st.column_config.TextColumn(help=hash_help),
                                    "peak demand kW": st.column_config.TextColumn(
                                        help="highest 15-minute average import, with the battery"),
                                    "savings $": st.column_config.TextColumn(
                                        help="the bill without the battery minus the bill with it, on the site's "
                                             "tariff (a daily report: energy and fixed charges; demand is billed "
                                             "monthly)"),
                                    "files here": st.column_config.TextColumn(
                                        help="the formats the site forwarded: downloadable below")})
        st.caption("Files the site forwarded (\"files here\") can be downloaded below: each was checked against "
                   "its SHA-256 when it arrived and is checked again on download, and one that no longer matches "
                   "is not served. The other files stay at the site; anyone holding a copy can check it with "
                   "`sha256sum`: it must match the value here.")
        with st.expander("SHA-256 in full"):
            st.dataframe(report_hashes(rows), hide_index=True, width="stretch", key="fleet_site_report_hashes")
    if files:
        downloads(site, files)


def _file(site: str, ref: ReportFileRef) -> bytes:
    """Called by Streamlit on a download click, outside the page run: the bytes, their SHA-256 checked
    again. A mismatch raises, Streamlit serves nothing (the browser says the download failed) and logs
    the error, which names the file and both hashes."""
    return report_file_bytes(engine, site, ref.epoch, ref.seq)[1]


def downloads(site: str, files: dict[tuple[str, str], dict[str, ReportFileRef]]) -> None:
    """One report at a time (picked, newest first), a button per forwarded format. ``data`` is a
    callable, so only a click reads a file out of the database."""
    labels = {f"{report} {period}": (report, period) for report, period in files}
    picked = st.selectbox("Download a forwarded report", list(labels), key=f"fleet_site_report_pick_{site}")
    chosen_files = files[labels[picked]]
    formats = file_formats(chosen_files)
    for col, fmt in zip(st.columns(len(formats)), formats, strict=True):
        ref = chosen_files[fmt]
        col.download_button(download_label(fmt, ref), data=partial(_file, site, ref), file_name=ref.name,
                            mime=MIME.get(fmt, "application/octet-stream"), key=f"fleet_site_report_{fmt}",
                            on_click="ignore", help=f"SHA-256 {ref.sha256}, checked again on download")


chosen = choose_site()
if chosen:
    site_now(chosen)
    events(chosen)
    power_chart(chosen)
    reports(chosen)
