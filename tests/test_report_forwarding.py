"""Report files cross the remote link with their announcement: the uplink forwards each file in its
``report_formats`` only if it still has the SHA-256 the reporter announced, and the aggregator holds
it byte for byte. Real Zenoh router (mutual TLS, ACL) on loopback, real aggregator on SQLite; the
uplink in the simulated-time executor, fed the reporter's announcement by a probe."""

from __future__ import annotations

import base64
import hashlib
import json
import os
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import Session, select

from energizeos.nodes.events import EVENTS_TOPIC
from energizeos.nodes.uplink import Uplink
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import FleetRecord
from energizeos.remote.aggregator import Aggregator
from energizeos.remote.fleet_queries import report_file_bytes, site_report_files
from energizeos.runtime import Node, SimExecutor
from energizeos.site_config import uplink_parameters
from energizeos_msgs.msg import EmsEvent
from tests.conftest import free_port
from tests.remote_fixtures import make_fleet, wait_until

pytestmark = pytest.mark.integration


def write(path: Path, size: int) -> str:
    """A file of ``size`` random bytes (a PDF does not compress either); returns its SHA-256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    data = os.urandom(size)
    path.write_bytes(data)
    return hashlib.sha256(data).hexdigest()


def announcement(period: str, files: dict[str, tuple[Path, str]]) -> EmsEvent:
    data = {"report": "daily", "period": period, "figures_sha256": "f" * 64, "figures": {"poi_import_kwh": 1.0},
            "files": {fmt: sha for fmt, (_, sha) in files.items()},
            "paths": {fmt: str(path) for fmt, (path, _) in files.items()}}
    return EmsEvent(source="reporter", kind="report", message=f"daily report {period} ready",
                    data_json=json.dumps(data))


def test_report_files_cross_the_link_only_as_announced(tmp_path):
    fleet = make_fleet(tmp_path / "pki", "127.0.0.1", free_port())
    fleet_db = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(fleet_db)
    aggregator = Aggregator(fleet.server_settings(db_url=str(fleet_db.url)), fleet_db).start()
    ex = SimExecutor(start=datetime.now(UTC))
    settings = fleet.uplink_settings("edge-a", "site-a", outbox=tmp_path / "outbox.db", max_report_file_mb=0.5)
    uplink = Uplink(executor=ex, parameter_overrides=uplink_parameters(settings))
    probe = Node("probe", executor=ex)
    events: list[EmsEvent] = []
    probe.create_subscription(EmsEvent, EVENTS_TOPIC, events.append, 100)
    announce = probe.create_publisher(EmsEvent, EVENTS_TOPIC, 10)
    reports = tmp_path / "home" / "reports" / "daily"
    try:
        good = {"pdf": (reports / "2026-11-25" / "a.pdf", write(reports / "2026-11-25" / "a.pdf", 300_000)),
                "csv": (reports / "2026-11-25" / "a.csv", write(reports / "2026-11-25" / "a.csv", 2_000))}
        changed_pdf = reports / "2026-11-24" / "b.pdf"
        changed = {"pdf": (changed_pdf, write(changed_pdf, 1_000))}
        changed_pdf.write_bytes(b"%PDF- edited after the reporter made it")
        large = {"pdf": (reports / "2026-11-23" / "c.pdf", write(reports / "2026-11-23" / "c.pdf", 600_000))}
        gone = {"pdf": (reports / "2026-11-22" / "missing.pdf", "0" * 64)}
        for period, files in (("2026-11-25", good), ("2026-11-24", changed), ("2026-11-23", large),
                              ("2026-11-22", gone)):
            announce.publish(announcement(period, files))
        # announcements a reporter never makes: without locations, or with them garbled; nothing is sent
        for data in ({"report": "daily", "period": "2026-11-21", "files": {"pdf": "0" * 64}},
                     {"report": "daily", "period": "2026-11-20", "files": {"pdf": "0" * 64}, "paths": ["a.pdf"]},
                     {"report": "daily", "period": "2026-11-19", "files": {"pdf": 7}, "paths": {"pdf": 7}}):
            announce.publish(EmsEvent(source="probe", kind="report", message="odd", data_json=json.dumps(data)))
        ex.spin_for(0.5)

        def delivered() -> bool:
            ex.spin_for(0.2)
            return uplink.link.outbox.pending == 0 and uplink.link.outbox.head > 0
        wait_until(delivered, 20, "every record acknowledged by the aggregator")
        with Session(fleet_db) as session:
            files = session.exec(select(FleetRecord).where(FleetRecord.kind == "report_files")).all()
            forwarded_events = [json.loads(b) for b in session.exec(
                select(FleetRecord.body).where(FleetRecord.kind == "events")).all()]

        # only the unchanged PDF of a size within the limit crossed (csv is not in report_formats)
        assert [(json.loads(f.body)["period"], json.loads(f.body)["format"]) for f in files] == [("2026-11-25", "pdf")]
        body = json.loads(files[0].body)
        assert base64.b64decode(body["data_b64"]) == good["pdf"][0].read_bytes()
        assert body["sha256"] == good["pdf"][1] and body["size"] == 300_000 and body["name"] == "a.pdf"
        # the fleet view's list and download: the same bytes, checked again
        listed = site_report_files(fleet_db, "site-a")
        assert list(listed) == [("daily", "2026-11-25")] and list(listed["daily", "2026-11-25"]) == ["pdf"]
        ref = listed["daily", "2026-11-25"]["pdf"]
        assert report_file_bytes(fleet_db, "site-a", ref.epoch, ref.seq) == ("a.pdf", good["pdf"][0].read_bytes())

        refused = {json.loads(e.data_json)["period"]: e.message for e in events if e.kind == "report-not-forwarded"}
        assert "changed after it was made" in refused["2026-11-24"]
        assert "over max_report_file_mb 0.5" in refused["2026-11-23"]
        assert "cannot be read" in refused["2026-11-22"]
        assert len(refused) == 3
        # the announcements and the refusals reached the aggregator too
        kinds = sorted(e["kind"] for e in forwarded_events if e["kind"].startswith("report"))
        assert kinds == ["report"] * 7 + ["report-not-forwarded"] * 3
    finally:
        ex.shutdown()
        aggregator.stop()
