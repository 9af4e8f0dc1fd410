"""The fleet app through streamlit.testing.v1.AppTest: the login gate against the fleet database's own
accounts, the Sites table with the figures of tests/fleet_data.py, one site's page (read-only), and
``serve.py --app fleet`` preparing the first admin and handing the app its settings."""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from sqlalchemy import update
from sqlmodel import Session
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.media_file_storage import MediaFileStorageError
from streamlit.testing.v1 import app_test

from energizeos.access import accounts
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import FleetRecord, FleetReportFile
from energizeos.reports.build import figures_digest
from energizeos.ui import context, serve
from energizeos.ui.fleet_view import FLEET_DB_URL, FLEET_OFFLINE_S, FLEET_SITES, FLEET_TZ, age
from tests.fleet_data import (
    DAILY_FIGURES,
    KNOWN,
    MONTHLY_FIGURES,
    NO_DATA_FIGURES,
    NOW,
    build_fleet,
    report_file_bytes,
    report_files,
)
from tests.ui_app import FLEET_APP, log_in, open_app, password_of, texts

SITE_PAGE = "views/fleet_site.py"


@pytest.fixture(scope="module")
def fleet_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The test fleet with a viewer and an admin, and a site database with an account of its own: built
    once, copied for each test (the tests log in, which writes)."""
    folder = tmp_path_factory.mktemp("fleet-template")
    engine = make_engine(f"sqlite:///{folder / 'fleet.db'}")
    init_db(engine)
    build_fleet(engine)
    for role in ("viewer", "admin"):
        accounts.create_user(engine, None, role, role, password_of(role))
    engine.dispose()  # the last connection checkpoints the WAL: the .db file is whole
    site_db = make_engine(f"sqlite:///{folder / 'site.db'}")
    init_db(site_db)
    accounts.create_user(site_db, None, "siteonly", "admin", password_of("siteonly"))
    site_db.dispose()
    return folder


@pytest.fixture
def fleet_db(fleet_template: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The app pointed at a copy of the test fleet, its clock held at NOW; yields the fleet database URL."""
    for name in ("fleet.db", "site.db"):
        shutil.copy(fleet_template / name, tmp_path / name)
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    # the site's records database is another one: the fleet app must not take its accounts from it
    monkeypatch.setenv("ENERGIZEOS_DB_URL", f"sqlite:///{tmp_path / 'site.db'}")
    monkeypatch.setenv(FLEET_DB_URL, url)
    monkeypatch.setenv(FLEET_SITES, json.dumps(KNOWN))
    monkeypatch.setenv(FLEET_TZ, "America/Los_Angeles")
    monkeypatch.setenv(FLEET_OFFLINE_S, "10")
    monkeypatch.setattr(context, "now", lambda: NOW)
    st.cache_resource.clear()  # the app's engine and settings are per process: start from this database
    yield url
    st.cache_resource.clear()


def test_nothing_shows_before_login_and_only_fleet_accounts_get_in(fleet_db):
    at = open_app(app=FLEET_APP)
    assert not at.exception
    assert "Fleet · sign in to continue" in texts(at)
    assert not at.dataframe and "Alpha Plant" not in texts(at)
    at = log_in("viewer", password="not the password", app=FLEET_APP)
    assert "wrong user name or password" in texts(at) and not at.dataframe
    at = log_in("siteonly", app=FLEET_APP)  # an account of the site database, not of the fleet's
    assert "wrong user name or password" in texts(at) and not at.dataframe
    at = log_in("viewer", app=FLEET_APP)
    assert not at.exception
    assert "Fleet · signed in as **viewer** (viewer)" in texts(at)
    at.button(key="logout").click().run()
    assert "logged out" in texts(at) and not at.dataframe


def test_the_sites_table_worst_first_with_todays_figures(fleet_db):
    at = log_in("viewer", app=FLEET_APP)
    assert not at.exception
    table = at.dataframe[0].value
    rows = {r["id"]: r for r in table.to_dict("records")}
    assert list(table["id"]) == ["bravo", "charlie", "alpha", "delta", "echo"]
    assert rows["bravo"] == {
        "site": "Bravo Warehouse", "id": "bravo", "status": "OFFLINE", "last heard": "2 h 00 min",
        "backlog (records)": 0, "data lag": "2 h 00 min", "critical": 1, "high": 0, "medium": 0, "low": 0,
        "import today kWh": "720.0", "export today kWh": "0.0", "peak import today kW": "250.0", "SOC %": "70.0",
        "battery kW": "0.0"}
    assert (rows["charlie"]["status"], rows["charlie"]["backlog (records)"], rows["charlie"]["data lag"]) == (
        "catching up", 263, "3 h 00 min")
    assert (rows["charlie"]["import today kWh"], rows["charlie"]["export today kWh"]) == ("165.0", "—")
    a = rows["alpha"]
    assert (a["status"], a["last heard"], a["data lag"], a["high"], a["low"]) == ("online", "1 s", "30 s", 1, 1)
    assert (a["import today kWh"], a["export today kWh"], a["peak import today kW"], a["SOC %"], a["battery kW"]) == (
        "420.0", "48.0", "812.5", "54.4", "-120.0")
    d = rows["delta"]  # nothing today: "—", not 0; its last SOC (yesterday evening) is still shown
    assert (d["import today kWh"], d["export today kWh"], d["peak import today kW"], d["SOC %"]) == (
        "—", "—", "—", "88.0")
    assert (rows["echo"]["status"], rows["echo"]["last heard"], rows["echo"]["site"]) == (
        "never heard", "never", "Echo Yard")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"online": "2", "catching up": "1", "OFFLINE": "1", "never heard": "1",
                       "sites with a critical alarm": "1"}
    assert "Today = 2026-11-26 (America/Los_Angeles), up to 14:00:30" in texts(at)


def test_a_site_page_shows_its_alarms_events_and_power_and_sends_nothing(fleet_db):
    at = log_in("viewer", app=FLEET_APP)
    at.query_params["site"] = "alpha"
    at.switch_page(SITE_PAGE).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["Alpha Plant"]
    assert "**online** · last heard 1 s ago (2026-11-26 14:00:29)" in texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics == {"Import today": "420.0 kWh", "Export today": "48.0 kWh", "Peak import today": "812.5 kW",
                       "State of charge": "54.4 %", "Battery": "-120.0 kW"}
    alarms, events = (d.value for d in at.dataframe)  # in page order
    assert list(alarms["code"]) == ["BMS_RACK_OVERTEMP", "PCS_NOT_FOLLOWING", "HVAC_FILTER"]
    assert list(alarms["state"]) == ["active, acknowledged", "cleared, unacknowledged", "shelved"]
    assert len(events) == 11 and events["what"].iloc[0] == "setting_change"
    assert events["time (site time)"].iloc[-1] == "2026-11-26 07:00:00" and events["user"].iloc[-1] == "alice"
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [trace["name"] for trace in chart["data"]] == ["POI (+ import)", "Battery (+ discharge)"]
    assert max(v for v in chart["data"][0]["y"] if v is not None) == 812.5  # the invalid 9999 is a gap
    # read-only: the only button is the sidebar's log-out
    assert [b.key for b in at.button] == ["logout"]

    at.query_params["site"] = "delta"  # nothing today: no chart, figures say so
    at.switch_page(SITE_PAGE).run()
    assert [t.value for t in at.title] == ["Delta Lab"]
    assert {m.label: m.value for m in at.metric}["Import today"] == "— kWh"
    assert "No POI or battery readings today." in texts(at) and not at.get("plotly_chart")

    at.query_params["site"] = "echo"
    at.switch_page(SITE_PAGE).run()
    assert "never heard from" in texts(at) and not at.metric

    at.selectbox(key="fleet_site_choice").select("bravo").run()  # the chooser rewrites the address
    assert [t.value for t in at.title] == ["Bravo Warehouse"] and at.query_params["site"] == "bravo"
    assert "**OFFLINE** · last heard 2 h 00 min ago" in texts(at)


def test_a_site_page_lists_the_reports_it_announced_with_their_hashes(fleet_db):
    at = log_in("viewer", app=FLEET_APP)
    at.query_params["site"] = "delta"
    at.switch_page(SITE_PAGE).run()
    assert not at.exception
    tables = {tuple(d.value.columns): d.value for d in at.dataframe}
    reports = tables[("announced (site time)", "report", "period", "import kWh", "export kWh", "peak demand kW",
                      "savings $", "figures SHA-256", "files here", "note")]
    assert list(reports["period"]) == ["2026-10", "2026-11-24", "2026-11-23", "—"]  # newest first
    assert list(reports["announced (site time)"]) == [f"2026-11-25 18:0{m}:00" for m in (7, 6, 5, 4)]
    monthly, daily, no_data, lost = reports.to_dict("records")
    assert (monthly["report"], monthly["import kWh"], monthly["export kWh"], monthly["peak demand kW"],
            monthly["savings $"]) == ("monthly", "30,512.4", "12.5", "88.0", "1,480.75")
    assert (daily["import kWh"], daily["export kWh"], daily["peak demand kW"], daily["savings $"], daily["note"]) == (
        "1,234.6", "0.3", "61.5", "12.38", "")
    assert daily["figures SHA-256"] == figures_digest(DAILY_FIGURES)[:12] + "…"
    assert monthly["figures SHA-256"] == figures_digest(MONTHLY_FIGURES)[:12] + "…"
    assert (no_data["import kWh"], no_data["savings $"], no_data["note"]) == (
        "—", "—", "no data recorded at the site for this period")
    assert lost["note"] == 'unreadable: details missing (announced as "daily report 2026-11-22 ready")'
    assert lost["figures SHA-256"] == "—"
    # the full values, the files' too, under the table
    full = {r["period"]: r for r in tables[("report", "period", "figures SHA-256", "csv file SHA-256",
                                            "html file SHA-256", "pdf file SHA-256")].to_dict("records")}
    assert full["2026-11-23"]["figures SHA-256"] == figures_digest(NO_DATA_FIGURES)
    assert {fmt: full["2026-11-24"][f"{fmt} file SHA-256"] for fmt in ("pdf", "html", "csv")} == report_files(
        "delta", "daily", "2026-11-24")
    # the files the site forwarded are here (tests/fleet_data.py DELTA_FILES), the others stay at the site
    assert list(reports["files here"]) == ["html", "pdf, csv", "—", "—"]
    assert "The other files stay at the site; anyone holding a copy can check it with `sha256sum`" in texts(at)
    assert "checked against its SHA-256 when it arrived and is checked again on download" in texts(at)
    assert [b.key for b in at.button] == ["logout"]  # read-only: nothing here reaches the site

    at.query_params["site"] = "alpha"
    at.switch_page(SITE_PAGE).run()
    assert "No report announced in the last 40 days." in texts(at)


@pytest.fixture
def media(monkeypatch: pytest.MonkeyPatch) -> list[MediaFileManager]:
    """The media file managers of the app's runs (AppTest makes one per run and drops it), so a test can
    do what a click on a download button does: run the button's deferred callable."""
    managers: list[MediaFileManager] = []

    class Kept(MediaFileManager):
        def __init__(self, *args, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            managers.append(self)

    monkeypatch.setattr(app_test, "MediaFileManager", Kept)
    return managers


def click(media: list[MediaFileManager], button) -> tuple[str, bytes]:
    """(file name, bytes) the browser gets for a click on ``button`` in the latest run."""
    manager = media[-1]
    url = manager.execute_deferred(button.proto.deferred_file_id)
    file = manager._storage.get_file(url.rsplit("/", 1)[-1].split(".")[0])  # type: ignore[attr-defined]
    return file.filename, file.content


def test_a_site_page_offers_the_report_files_the_site_forwarded(fleet_db, media):
    at = log_in("viewer", app=FLEET_APP)
    at.query_params["site"] = "delta"
    at.switch_page(SITE_PAGE).run()
    assert not at.exception
    pick = at.selectbox(key="fleet_site_report_pick_delta")
    assert pick.options == ["monthly 2026-10", "daily 2026-11-24"] and pick.value == "monthly 2026-10"  # newest
    (html,) = at.get("download_button")
    assert html.proto.label == "HTML · monthly-2026-10.html (26 B)"
    announced = report_files("delta", "monthly", "2026-10")["html"]
    assert html.proto.help == f"SHA-256 {announced}, checked again on download"
    assert html.proto.deferred_file_id and not html.proto.url  # no bytes read until the click
    assert click(media, html) == ("monthly-2026-10.html", report_file_bytes("delta", "monthly", "2026-10", "html"))

    at.selectbox(key="fleet_site_report_pick_delta").select("daily 2026-11-24").run()
    pdf, csv = at.get("download_button")
    assert [b.proto.label.split(" · ")[0] for b in (pdf, csv)] == ["PDF", "CSV"]
    assert click(media, pdf) == ("daily-2026-11-24.pdf", report_file_bytes("delta", "daily", "2026-11-24", "pdf"))
    assert click(media, csv)[1] == report_file_bytes("delta", "daily", "2026-11-24", "csv")
    assert [b.key for b in at.button] == ["logout"]  # downloads only: nothing here reaches the site

    # the database changed after the file was stored: the click serves nothing, and the error names the file
    engine = make_engine(fleet_db)
    with Session(engine) as session:
        ref = session.execute(FleetReportFile.__table__.select().where(  # type: ignore[attr-defined]
            FleetReportFile.name == "daily-2026-11-24.pdf")).one()
        body = json.loads(session.get(FleetRecord, ("delta", ref.epoch, ref.seq)).body)
        body["data_b64"] = base64.b64encode(b"not what the site sent").decode()
        session.execute(update(FleetRecord).where(FleetRecord.site_id == "delta", FleetRecord.epoch == ref.epoch,
                                                  FleetRecord.seq == ref.seq).values(body=json.dumps(body)))
        session.commit()
    engine.dispose()
    with pytest.raises(MediaFileStorageError) as err:
        click(media, pdf)
    assert isinstance(err.value.__cause__, ValueError)
    assert "site delta: report file daily-2026-11-24.pdf" in str(err.value.__cause__)
    assert report_files("delta", "daily", "2026-11-24")["pdf"] in str(err.value.__cause__)
    assert click(media, csv)[1] == report_file_bytes("delta", "daily", "2026-11-24", "csv")  # the others still serve

    at.query_params["site"] = "alpha"  # no report, no file: no download
    at.switch_page(SITE_PAGE).run()
    assert not at.get("download_button") and not at.exception


def test_the_overview_links_to_the_chosen_site(fleet_db):
    at = log_in("viewer", app=FLEET_APP)
    at.selectbox(key="fleet_open").select("charlie").run()
    link = at.get("page_link")[0].proto
    assert link.label == "Open Charlie Depot (charlie)" and link.query_string == "site=charlie"


def test_ages_read_as_people_say_them():
    assert [age(s) for s in (None, 0.4, 89, 90, 5399, 5400, 7225, 48 * 3600)] == [
        "—", "0 s", "89 s", "2 min", "90 min", "1 h 30 min", "2 h 00 min", "2.0 d"]


def test_serve_prepares_the_fleet_admin_and_hands_over_the_settings(tmp_path, monkeypatch, capsys):
    url = f"sqlite:///{tmp_path / 'fleet.db'}"
    (tmp_path / "credentials").write_text("alpha-edge:secret-1\nhotel-edge:secret-2\nowner:secret-3\n")
    (tmp_path / "fleet.yaml").write_text(
        "listen: [tcp/127.0.0.1:7450]\ncredentials_file: credentials\noffline_after_s: 30\n"
        f"db_url: sqlite:///{tmp_path / 'not-this.db'}\n"
        "site_names: {alpha: Alpha Plant}\n"
        "parties:\n  - {user: alpha-edge, role: site, sites: [alpha]}\n"
        "  - {user: hotel-edge, role: site, sites: [hotel]}\n  - {user: owner, role: viewer, sites: ['*']}\n")
    for name in (FLEET_DB_URL, FLEET_SITES, FLEET_TZ, FLEET_OFFLINE_S):
        monkeypatch.setenv(name, "")  # restored after the test: main() sets them
    started: list[list[str]] = []
    monkeypatch.setattr(os, "execv", lambda exe, cmd: started.append(cmd))
    argv = ["--app", "fleet", "--db-url", url, "--fleet-config", str(tmp_path / "fleet.yaml"), "--port", "8610"]
    serve.main(argv)
    banner = capsys.readouterr().out
    assert "created the fleet app's administrator account" in banner and "--db <the fleet database URL>" in banner
    password = banner.split("password:")[1].split()[0]
    engine = make_engine(url)
    assert accounts.login(engine, "admin", password).ok  # in the fleet database named by --db-url
    engine.dispose()
    assert not (tmp_path / "not-this.db").exists()  # --db-url wins over the file's db_url
    assert started[0][3:5] == ["run", serve.FLEET_APP.as_posix()]
    assert started[0][started[0].index("--server.port") + 1] == "8610"
    assert os.environ[FLEET_DB_URL] == url
    assert json.loads(os.environ[FLEET_SITES]) == {"alpha": "Alpha Plant", "hotel": "hotel"}
    assert float(os.environ[FLEET_OFFLINE_S]) == 30.0
    assert os.environ[FLEET_TZ] == "America/Los_Angeles"
    serve.main(argv)  # the admin exists now: no second banner
    assert "password" not in capsys.readouterr().out and len(started) == 2
    with pytest.raises(SystemExit, match="unknown time zone"):
        serve.main([*argv, "--timezone", "Mars/Olympus"])


def test_an_id_from_the_address_is_shown_as_one_code_span():
    from energizeos.ui.context import code_span

    assert code_span("charlie") == "`charlie`"
    assert code_span("a`b") == "``a`b``"  # the fence is longer than any run of backticks inside
    assert code_span("`x`") == "`` `x` ``"
    # a blank line would end the span and let the rest render
    assert code_span("a\n\n**b** [c](https://example.invalid)") == "`a **b** [c](https://example.invalid)`"
