"""The Reports and Plan pages of the app (streamlit AppTest): the figures shown are the report library's,
the downloads are real PDF and CSV files, a plan is shown with its gate findings, and a decision on it
goes through the server-side action, which refuses a viewer and says so when the planner is away."""

from __future__ import annotations

import json
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import insert
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.testing.v1 import AppTest

from energizeos.access import accounts
from energizeos.planning import approval, day_ahead
from energizeos.planning.day_ahead import PlannerSettings, local_day, plan_day
from energizeos.records.audit import AuditEntry
from energizeos.records.models import AlarmEvent, Approval, Event, PlanRecord, Telemetry
from energizeos.reports import store
from energizeos.reports.build import build_report
from energizeos.reports.render._format import format_cell
from energizeos.site_config import load_site_config, report_settings
from energizeos.tariffs import load_tariff
from energizeos.ui.actions import SiteActions
from energizeos_msgs.msg import Alarm, DispatchPlan
from tests.ui_app import log_in, password_of, texts

REPO = Path(__file__).resolve().parents[1]
CONFIG = load_site_config(REPO / "config" / "sim_site.yaml")  # the app's default site config
ZONE = ZoneInfo(CONFIG.timezone)
REPORTS, PLAN = "views/reports.py", "views/plan.py"
POI, BESS, SOC = "/site/poi/meter/p_kw", "/bess/pcs/status/p_kw", "/bess/bms/status/soc_pct"
STEP_S = 2  # a sample every 2 s: within the site's 5 s hold, so the hour has no gap
EXPORT_AT_S, EXPORT_S = 1800, 60  # 10:30:00-10:31:00: the POI exports 20 kW


# --- seeding ---------------------------------------------------------------------------------------------
def seeded_day() -> date:
    """A recent past day: the page offers it, and its month (the last 24 months are offered)."""
    today = datetime.now(ZONE).date()
    return today - timedelta(days=3)


def seed_hour(engine: Engine, day: date) -> None:
    """One hour (10:00-11:00 site time) of a 400 kW import shaved by a 100 kW discharge, with a 60 s export
    of 20 kW at 10:30, an interlock chain that permits dispatch, and one high-priority alarm."""
    begin = datetime(day.year, day.month, day.day, 10, tzinfo=ZONE).astimezone(UTC)
    rows = []
    for k in range(3600 // STEP_S):
        t, s = begin + timedelta(seconds=k * STEP_S), k * STEP_S
        poi = -20.0 if EXPORT_AT_S <= s < EXPORT_AT_S + EXPORT_S else 400.0
        rows += [{"point": POI, "time": t, "value": poi, "quality": 0},
                 {"point": BESS, "time": t, "value": 100.0, "quality": 0},
                 {"point": SOC, "time": t, "value": 80.0 - 10.0 * s / 3600.0, "quality": 0}]
    with engine.begin() as conn:
        conn.execute(insert(Telemetry.__table__), rows)
    permissives = {"bms.fresh": {"ok": True, "value": "", "age_s": 0.1}}
    with Session(engine) as session:
        session.add(Event(key="interlock@seed", time=begin - timedelta(hours=1), source="safety_arbiter",
                          kind="interlock", message="dispatch permitted",
                          data_json=json.dumps({"dispatch_permitted": True, "permissives": permissives})))
        session.add(AlarmEvent(key="alarm@seed", alarm_id=7, time=begin + timedelta(minutes=15),
                               code="PCS_COMMS_LOSS", source="pcs_node", priority=Alarm.PRIORITY_HIGH,
                               event=Alarm.EVENT_RAISE, state=Alarm.STATE_ACTIVE_UNACKED, message="no answer"))
        session.commit()


class RecordingMediaFiles(MediaFileManager):
    """AppTest makes a media file manager per run; keep them, to run a download button's callable."""

    made: list[MediaFileManager] = []

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        RecordingMediaFiles.made.append(self)


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> list[MediaFileManager]:
    RecordingMediaFiles.made = []
    monkeypatch.setattr("streamlit.testing.v1.app_test.MediaFileManager", RecordingMediaFiles)
    return RecordingMediaFiles.made


def download(at: AppTest, media: list[MediaFileManager], key: str) -> bytes:
    """What the browser gets when the download button is clicked (its deferred callable, run)."""
    button = at.download_button(key=key)
    url = media[-1].execute_deferred(button.proto.deferred_file_id)
    found = media[-1].read_file(url.rsplit("/", 1)[-1].split(".")[0])
    assert found is not None, url
    return found.content


def metric_values(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def table_with(at: AppTest, column: str):
    """The first table on the page with this column."""
    return next(df.value for df in at.dataframe if column in df.value.columns)


def figures_table(at: AppTest) -> dict[str, str]:
    frame = table_with(at, "figure name")
    return dict(zip(frame["figure name"], frame["value"], strict=True))


def charts(at: AppTest) -> list[dict]:
    """The plotly figures on the page, as the browser gets them."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


# label on the page -> (figure, unit): what a reader sees first
KEY_FIGURES = {"Imported at the POI": ("poi_import_kwh", "kWh"), "Exported at the POI": ("poi_export_kwh", "kWh"),
               "Battery discharged": ("bess_discharged_kwh", "kWh"), "Battery charged": ("bess_charged_kwh", "kWh"),
               "Peak demand without battery": ("peak_kw_without", "kW"),
               "Peak demand with battery": ("peak_kw_with", "kW"),
               "On-peak demand without battery": ("peak_on_peak_kw_without", "kW"),
               "On-peak demand with battery": ("peak_on_peak_kw_with", "kW"),
               "Bill without battery": ("bill_without_bess", "$"), "Bill with battery": ("bill_with_bess", "$"),
               "Savings": ("savings", "$"), "Availability": ("availability_pct", "%"),
               "Export-limit events": ("export_events", ""), "Alarms raised": ("alarms_raised", "")}


def expected_text(value: object, unit: str) -> str:
    if value is None:
        return "n/a"
    if unit == "$":
        return ("-$" if value < 0 else "$") + format_cell(abs(value))
    return f"{format_cell(value)} {unit}".rstrip()


def assert_page_shows(at: AppTest, doc) -> None:
    """Every key figure on the page is the library's, printed as the PDF prints it, and the full figure
    table holds exactly the library's figures (whose digest the page shows)."""
    shown = metric_values(at)
    for label, (name, unit) in KEY_FIGURES.items():
        assert shown[label] == expected_text(doc.figures[name], unit), label
    table = figures_table(at)
    assert set(table) == set(doc.figures)
    for name, value in doc.figures.items():
        if isinstance(value, float) and math.isfinite(value):
            assert float(table[name]) == value, name
        else:
            assert table[name] == ("" if value is None else str(value)), name
    assert doc.figures_sha256 in texts(at)


def settings():
    return report_settings(CONFIG)


# --- reports -----------------------------------------------------------------------------------------------
def test_daily_report_shows_the_library_figures_and_downloads_pdf_and_csv(app_db, media):
    day = seeded_day()
    seed_hour(app_db, day)
    at = log_in("viewer", page=REPORTS)  # reading reports is every role's
    at.date_input(key="report_day").set_value(day).run()
    assert not at.exception, at.exception
    doc = build_report(app_db, "daily", day.isoformat(), settings())
    assert_page_shows(at, doc)
    shown = metric_values(at)  # and the figures are the hour that was recorded
    hold = 3600 - STEP_S + 5  # the last sample (at 10:59:58) holds for the site's 5 s
    assert shown["Imported at the POI"] == f"{400 * (hold - EXPORT_S) / 3600:,.2f} kWh"
    assert shown["Exported at the POI"] == f"{20 * EXPORT_S / 3600:,.2f} kWh"
    assert shown["Battery discharged"] == f"{100 * hold / 3600:,.2f} kWh"
    assert (shown["Peak demand without battery"], shown["Peak demand with battery"]) == ("500.00 kW", "400.00 kW")
    assert (shown["Export-limit events"], shown["Alarms raised"]) == ("1", "1")
    bill = table_with(at, "line item")
    assert list(bill["line item"])[-1] == "total"
    assert [c["layout"]["title"]["text"][:11] for c in charts(at)] == ["Day profile", "Bill withou"]

    pdf = download(at, media, "report_pdf")
    assert pdf.startswith(b"%PDF-") and len(pdf) > 10_000
    csv_text = download(at, media, "report_csv").decode("utf-8-sig")
    assert f"report,figures_sha256,{doc.figures_sha256}," in csv_text
    assert f"figures,peak_kw_with,{doc.figures['peak_kw_with']!r}," in csv_text


def test_monthly_report_lists_the_kept_reports_and_an_empty_period_says_so(app_db, tmp_path):
    day = seeded_day()
    seed_hour(app_db, day)
    month = f"{day:%Y-%m}"
    doc = build_report(app_db, "monthly", month, settings())
    kept = store.save(app_db, doc, "csv", "test", tmp_path / "kept.csv")
    at = log_in("owner", page=REPORTS)
    at.date_input(key="report_day").set_value(day - timedelta(days=400)).run()  # no records then
    assert not at.exception, at.exception
    assert "No recorded data for this period" in texts(at) and not at.metric
    at.radio(key="report_kind").set_value("monthly").run()
    at.selectbox(key="report_month").set_value(month).run()
    assert not at.exception, at.exception
    assert_page_shows(at, doc)
    assert [c["layout"]["title"]["text"][:10] for c in charts(at)] == ["Daily peak", "Bill witho"]
    stored = table_with(at, "sha256")
    row = stored[stored["sha256"] == kept.sha256]
    assert len(row) == 1 and bool(row["this period"].iloc[0]) and row["file"].iloc[0] == "kept.csv"


# --- plans -------------------------------------------------------------------------------------------------
def save_day_plan(engine: Engine, day: date, plan_id: int) -> list[str]:
    """The planner's own way: forecast -> LP -> safety gate -> stored as proposed. Returns the gate's lines."""
    settings = PlannerSettings(site=CONFIG.site, tz=CONFIG.timezone)
    _start, n = local_day(day, CONFIG.timezone)
    load = 400.0 + 200.0 * np.sin(np.arange(n) / n * 2 * np.pi)
    plan = plan_day(load_tariff(CONFIG.ems.planning.tariff), settings, day, load, 50.0, plan_id=plan_id)
    assert plan.gate.passed
    approval.save_plan(engine, plan.plan_id, CONFIG.site, plan.start, plan.interval_s, plan.body(), plan.gate.findings)
    return plan.gate.findings


def decisions(engine: Engine, plan_id: int) -> tuple[int, list[Approval]]:
    with Session(engine) as session:
        status = session.get(PlanRecord, plan_id).status
        return status, list(session.exec(select(Approval).where(Approval.subject == f"plan:{plan_id}")).all())


def ui_actions_on(engine: Engine, plan_id: int) -> list[dict]:
    with Session(engine) as session:
        rows = session.exec(select(AuditEntry).where(AuditEntry.kind == "ui-action",
                                                     AuditEntry.subject == f"plan:{plan_id}")).all()
    return [{"actor": r.actor, **json.loads(r.payload_json)} for r in rows]


TOMORROW_ID, TODAY_ID, WEEK_ID = 4_200_000_001, 4_200_000_002, 4_200_000_003


def test_plan_page_shows_tomorrows_proposal_with_its_gate_and_todays_plan_against_the_records(app_db):
    today = datetime.now(ZONE).date()
    findings = save_day_plan(app_db, today + timedelta(days=1), TOMORROW_ID)
    save_day_plan(app_db, today, TODAY_ID)
    approval.record_decision(app_db, TODAY_ID, True, "policy:auto", "policy", "passed the safety gate")
    start = datetime(today.year, today.month, today.day, tzinfo=ZONE).astimezone(UTC)
    with app_db.begin() as conn:  # the battery discharged 123 kW through the day's first interval
        conn.execute(insert(Telemetry.__table__), [{"point": BESS, "time": start + timedelta(seconds=s),
                                                    "value": 123.0, "quality": 0} for s in range(0, 900, 60)])

    at = log_in("viewer", page=PLAN)
    assert not at.exception, at.exception
    shown = texts(at)
    assert f"Plan {TODAY_ID} is in force" in shown and f"Plan {TOMORROW_ID}: proposed" in shown
    assert f"Passed all {len(findings)} checks." in shown
    gate = table_with(at, "finding")
    assert list(gate["result"]) == ["pass"] * len(findings)
    assert [f"PASS {c}: {f}" for c, f in zip(gate["check"], gate["finding"], strict=True)] == findings
    assert at.button(key="plan_approve").disabled and at.button(key="plan_reject").disabled
    assert "approving or rejecting a plan needs one of the roles" in shown

    at.selectbox(key="plan_pick").set_value(TODAY_ID).run()
    assert not at.exception, at.exception
    assert list(table_with(at, "decision")["by"]) == ["policy:auto"]
    power = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Planned and measured power")
    measured = next(t for t in power["data"] if t["name"] == "Measured BESS (interval mean)")
    if datetime.now(UTC) >= start + timedelta(seconds=900):  # the first interval has ended
        assert measured["y"][0] == 123.0 and measured["y"][1] is None  # nothing recorded after it: a gap
    planned = next(t for t in power["data"] if t["name"] == "Planned BESS (+ discharge)")
    with Session(app_db) as session:
        p_kw = json.loads(session.get(PlanRecord, TODAY_ID).body_json)["p_kw"]
    assert planned["y"] == [*p_kw, p_kw[-1]]  # the last planned step held to the plan's end


def test_an_operator_approval_without_the_planner_says_the_site_did_not_answer(app_db):
    save_day_plan(app_db, datetime.now(ZONE).date() + timedelta(days=1), TOMORROW_ID)
    at = log_in("operator", page=PLAN)
    assert not at.button(key="plan_approve").disabled
    at.button(key="plan_approve").click().run()
    assert not at.exception, at.exception
    errors = " ".join(e.value for e in at.error)
    assert "the site did not answer" in errors and "no /ems/plan/approve service" in errors
    assert "nothing was changed" in errors
    assert decisions(app_db, TOMORROW_ID) == (DispatchPlan.STATUS_PROPOSED, [])
    [attempt] = ui_actions_on(app_db, TOMORROW_ID)
    assert (attempt["actor"], attempt["action"], attempt["result"]) == ("operator", "decide_plan", "refused")


def test_a_viewer_is_refused_by_the_server_even_when_the_button_was_enabled(app_db):
    save_day_plan(app_db, datetime.now(ZONE).date() + timedelta(days=1), TOMORROW_ID)
    viewer = accounts.login(app_db, "viewer", password_of("viewer"))
    direct = SiteActions(app_db, None).decide_plan(viewer.token, TOMORROW_ID, True, "looks fine")
    assert not direct.ok and "may not decide plan" in direct.message

    at = log_in("operator", page=PLAN)
    assert not at.button(key="plan_approve").disabled  # drawn for an operator ...
    accounts.set_role(app_db, None, "operator", "viewer")  # ... who is a viewer by the time of the click
    at.button(key="plan_approve").click().run()
    assert not at.exception, at.exception
    refusal = " ".join(e.value for e in at.error)
    assert "refused" in refusal and "operator (role viewer) may not decide plan" in refusal
    assert decisions(app_db, TOMORROW_ID) == (DispatchPlan.STATUS_PROPOSED, [])
    assert at.button(key="plan_approve").disabled  # the page now shows the role as stored
    assert [a["result"] for a in ui_actions_on(app_db, TOMORROW_ID)] == ["refused", "refused"]


def test_a_week_plan_is_listed_as_such_not_gated_and_has_nothing_to_decide(app_db):
    today = datetime.now(ZONE).date()
    start, n = local_day(today, CONFIG.timezone)
    load = np.tile(400.0 + 200.0 * np.sin(np.arange(n) / n * 2 * np.pi), 3)
    settings = PlannerSettings(site=CONFIG.site, tz=CONFIG.timezone)
    guide = day_ahead.plan_week(load_tariff(CONFIG.ems.planning.tariff), settings, start, load, 50.0, {}, {},
                                plan_id=WEEK_ID)
    approval.save_week_plan(app_db, WEEK_ID, CONFIG.site, guide.start, guide.interval_s, guide.body())

    at = log_in("operator", page=PLAN)
    at.selectbox(key="plan_pick").set_value(WEEK_ID).run()
    assert not at.exception, at.exception
    shown = texts(at)
    rows = table_with(at, "safety gate")
    assert list(rows.loc[rows["plan"] == str(WEEK_ID), ["status", "safety gate"]].iloc[0]) == ["week plan", "not gated"]
    assert f"Plan {WEEK_ID}: week plan" in shown and "A week plan is never followed, so it is not gated" in shown
    assert "This plan is week plan: there is nothing to decide." in shown
    assert [b.key for b in at.button] == ["logout"]  # no approve or reject button
    soc = next(c for c in charts(at) if c["layout"]["title"]["text"] == "Planned and measured state of charge")
    assert soc["data"][0]["y"] == [50.0, *guide.body()["soc_pct"]]  # its SOC from the start it was made at
