"""Report files a site forwards ("report_files" records), on SQLite and on a real PostgreSQL server:
stored through the aggregator's own write path (``fleet_store.store_batch`` / ``store_many``), listed
from ``fleet_report_files`` only when whole, and served only while their bytes still have their SHA-256."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import func, select, update
from sqlmodel import Session

from energizeos.records.models import FleetRecord, FleetReportFile
from energizeos.records.types import ns_from_utc
from energizeos.remote.fleet_queries import ReportFileRef, report_file_bytes, site_report_files
from energizeos.remote.fleet_store import BatchWrite, store_batch, store_many
from energizeos.remote.protocol import Record
from tests.fleet_data import TZ, report_file_body

T0 = datetime(2026, 11, 26, 1, 0, tzinfo=TZ)
PDF = b"%PDF-1.7\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"  # every byte value, as a real PDF holds
CSV = b"name,value\npoi_import_kwh,1234.5678\n"


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


def file_record(seq: int, minute: int, kind: str, label: str, fmt: str, data: bytes,
                changes: dict[str, object] | None = None) -> Record:
    """A "report_files" record as the edge sends it; ``changes`` replace fields of its body."""
    ns = ns_from_utc(at(minute))
    return Record(seq, "report_files", ns, {**report_file_body(kind, label, fmt, data, ns), **(changes or {})})


def counts(engine) -> tuple[int, int]:
    with Session(engine) as session:
        return (session.execute(select(func.count()).select_from(FleetRecord)).scalar_one(),
                session.execute(select(func.count()).select_from(FleetReportFile)).scalar_one())


def test_a_forwarded_file_is_listed_and_comes_back_byte_for_byte(migrated_engine):
    records = (file_record(1, 0, "daily", "2026-11-25", "pdf", PDF),
               file_record(2, 0, "daily", "2026-11-25", "csv", CSV),
               file_record(3, 1, "monthly", "2026-10", "pdf", b""),  # an empty file is a file
               Record(4, "telemetry", ns_from_utc(at(2)), {"rows": []}))
    store_batch(migrated_engine, "golf", "g1", 4, records, now=at(3))
    files = site_report_files(migrated_engine, "golf")
    assert list(files) == [("monthly", "2026-10"), ("daily", "2026-11-25")]  # newest announcement first
    assert files[("daily", "2026-11-25")] == {
        "pdf": ReportFileRef("daily-2026-11-25.pdf", hashlib.sha256(PDF).hexdigest(), len(PDF), "g1", 1, at(0)),
        "csv": ReportFileRef("daily-2026-11-25.csv", hashlib.sha256(CSV).hexdigest(), len(CSV), "g1", 2, at(0))}
    assert report_file_bytes(migrated_engine, "golf", "g1", 1) == ("daily-2026-11-25.pdf", PDF)
    assert report_file_bytes(migrated_engine, "golf", "g1", 2) == ("daily-2026-11-25.csv", CSV)
    assert report_file_bytes(migrated_engine, "golf", "g1", 3) == ("monthly-2026-10.pdf", b"")
    # the bytes are stored once, in the record as sent; the listing holds none of them
    with Session(migrated_engine) as session:
        body = session.get(FleetRecord, ("golf", "g1", 1)).body
    assert json.loads(body)["data_b64"] == base64.b64encode(PDF).decode()
    assert "data_b64" not in FleetReportFile.model_fields and counts(migrated_engine) == (4, 3)
    assert site_report_files(migrated_engine, "golf", since=at(1)) == {("monthly", "2026-10"): files[
        ("monthly", "2026-10")]}
    assert site_report_files(migrated_engine, "hotel") == {}
    with pytest.raises(LookupError, match="site golf: no forwarded report file at g1/4"):
        report_file_bytes(migrated_engine, "golf", "g1", 4)  # a record, but not a listed file


def test_a_file_sent_again_for_a_period_lists_the_newest_and_a_replay_adds_nothing(migrated_engine):
    remade = PDF + b"% remade\n"
    store_batch(migrated_engine, "golf", "g1", 2, (file_record(1, 0, "daily", "2026-11-25", "pdf", PDF),
                                                  file_record(2, 5, "daily", "2026-11-25", "pdf", remade)), now=at(6))
    store_batch(migrated_engine, "golf", "g1", 2, (file_record(2, 5, "daily", "2026-11-25", "pdf", remade),),
                now=at(7))  # sent again (an acknowledgement that was lost): ignored
    ref = site_report_files(migrated_engine, "golf")[("daily", "2026-11-25")]["pdf"]
    assert (ref.seq, ref.sha256) == (2, hashlib.sha256(remade).hexdigest())
    assert report_file_bytes(migrated_engine, "golf", "g1", ref.seq)[1] == remade
    assert counts(migrated_engine) == (2, 2)


def test_a_malformed_file_is_counted_kept_as_sent_and_not_listed(migrated_engine):
    good = report_file_body("daily", "2026-11-25", "pdf", PDF, 0)
    other = hashlib.sha256(b"another file").hexdigest()
    cut = base64.b64encode(PDF[:-1]).decode()
    bad = {"wrong hash": {"sha256": other},
           "hash in capitals": {"sha256": good["sha256"].upper()},
           "hash not hex": {"sha256": "z" * 64},
           "not base64": {"data_b64": good["data_b64"][:-4] + "!!!="},
           "base64 of a bad length": {"data_b64": good["data_b64"] + "A"},
           "bytes of another size": {"data_b64": cut},
           "size says more": {"size": len(PDF) + 1},
           "size negative": {"size": -1},
           "size not a number": {"size": str(len(PDF))},
           "size true": {"size": True},
           "no data": {"data_b64": None},
           "data not text": {"data_b64": 5},
           "data not ascii": {"data_b64": "é" + good["data_b64"]},
           "no name": {"name": None},
           "empty format": {"format": ""},
           "period not text": {"period": 202611}}
    records = tuple(file_record(i, i, "daily", "2026-11-25", "pdf", PDF, changes)
                    for i, changes in enumerate(bad.values(), 1))
    records += (file_record(len(records) + 1, 30, "daily", "2026-11-25", "csv", CSV),)
    assert store_many(migrated_engine, [BatchWrite("golf", "g1", len(records), records)], at(40)) == len(bad)
    assert counts(migrated_engine) == (len(bad) + 1, 1)  # every record kept as sent; one file listed
    assert list(site_report_files(migrated_engine, "golf")[("daily", "2026-11-25")]) == ["csv"]
    with Session(migrated_engine) as session:  # kept exactly as the edge sent it
        kept = session.get(FleetRecord, ("golf", "g1", 1))
    assert json.loads(kept.body)["sha256"] == other and kept.kind == "report_files"
    with pytest.raises(LookupError):
        report_file_bytes(migrated_engine, "golf", "g1", 1)
    # and the site's next records are stored as usual
    store_batch(migrated_engine, "golf", "g1", len(records) + 1,
                (file_record(len(records) + 1, 50, "monthly", "2026-10", "pdf", PDF),), now=at(51))
    assert ("monthly", "2026-10") in site_report_files(migrated_engine, "golf")


def _set_body(engine, seq: int, change) -> None:
    with Session(engine) as session:
        record = session.get(FleetRecord, ("golf", "g1", seq))
        body = change(record.body)
        session.execute(update(FleetRecord).where(FleetRecord.site_id == "golf", FleetRecord.epoch == "g1",
                                                  FleetRecord.seq == seq).values(body=body))
        session.commit()


def test_a_file_changed_in_the_database_after_it_was_stored_is_never_served(migrated_engine):
    store_batch(migrated_engine, "golf", "g1", 3, (file_record(1, 0, "daily", "2026-11-25", "pdf", PDF),
                                                  file_record(2, 0, "daily", "2026-11-25", "csv", CSV),
                                                  file_record(3, 1, "monthly", "2026-10", "pdf", PDF)), now=at(2))
    genuine = hashlib.sha256(PDF).hexdigest()
    forged = PDF.replace(b"%%EOF", b"%%EOX")
    forged_hash = hashlib.sha256(forged).hexdigest()

    def swap_bytes(body: str) -> str:  # other bytes, the body's own hash left as it was
        data = json.loads(body)
        return json.dumps({**data, "data_b64": base64.b64encode(forged).decode()}, separators=(",", ":"))

    _set_body(migrated_engine, 1, swap_bytes)
    with pytest.raises(ValueError) as err:
        report_file_bytes(migrated_engine, "golf", "g1", 1)
    message = str(err.value)
    assert "site golf" in message and "daily-2026-11-25.pdf" in message
    assert forged_hash in message and genuine in message and "not served" in message

    def swap_all(body: str) -> str:  # bytes and the body's hash changed together: the listing still knows
        data = json.loads(body)
        return json.dumps({**data, "data_b64": base64.b64encode(CSV + b"x").decode(),
                           "sha256": hashlib.sha256(CSV + b"x").hexdigest(), "size": len(CSV) + 1})

    _set_body(migrated_engine, 2, swap_all)
    with pytest.raises(ValueError, match=r"site golf: report file daily-2026-11-25\.csv .*"
                                         + hashlib.sha256(CSV).hexdigest()):
        report_file_bytes(migrated_engine, "golf", "g1", 2)

    _set_body(migrated_engine, 3, lambda body: body[: len(body) // 2])  # cut short: not JSON any more
    with pytest.raises(ValueError, match=r"site golf: report file monthly-2026-10\.pdf .*no longer holds the file.*"
                                         + genuine):
        report_file_bytes(migrated_engine, "golf", "g1", 3)
