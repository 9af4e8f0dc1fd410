"""Historian: batched writes, spool to disk through a database outage, replay in order, exact counts."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select
from sqlmodel import Session

from energizeos.nodes.historian import Historian
from energizeos.records import audit
from energizeos.records.db import make_engine
from energizeos.records.models import AlarmRecord, CommandRecord, DecisionRecord, Event, Telemetry
from energizeos.records.writer import verify_sealed_rows
from energizeos.runtime import Node, SimExecutor, qos_profile_latched
from energizeos_msgs.msg import Alarm, ArbiterDecision, Header, InterlockState, MeterReading, PcsCommand, Permissive
from tests.conftest import Proc

S = 1_000_000_000
METER_POINTS = 22  # 4 three-phase arrays + 10 scalars per MeterReading
START = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


class Plant:
    """A probe that publishes what the device nodes and the arbiter would, at known rates."""

    def __init__(self, ex: SimExecutor) -> None:
        self.ex = ex
        probe = Node("probe", executor=ex)
        self.meter = probe.create_publisher(MeterReading, "/site/poi/meter", 10)
        self.decision = probe.create_publisher(ArbiterDecision, "/ems/arbiter/decision", 10)
        self.command = probe.create_publisher(PcsCommand, "/bess/pcs/command", 10)
        self.alarms = probe.create_publisher(Alarm, "/ems/alarms", 10)
        self.interlocks = probe.create_publisher(InterlockState, "/ems/arbiter/interlocks", qos_profile_latched)
        self.sent = {"meter": 0, "decisions": 0}
        self.clock = probe.get_clock()
        probe.create_timer(0.2, self.tick)  # 5 Hz, as the POI meter

    def header(self) -> Header:
        return Header(stamp=self.clock.now().to_msg(), frame_id="poi")

    def tick(self) -> None:
        self.sent["meter"] += 1
        n = self.sent["meter"]
        self.meter.publish(MeterReading(header=self.header(), source="meter_poi", p_kw=400.0 + n % 50,
                                        frequency_hz=60.0))
        self.sent["decisions"] += 1
        d = self.sent["decisions"]
        self.decision.publish(ArbiterDecision(header=self.header(), decision_id=d, requested_kw=100.0,
                                              outcome=ArbiterDecision.OUTCOME_GRANTED, granted_kw=100.0))
        self.command.publish(PcsCommand(header=self.header(), source="safety_arbiter", decision_id=d, enable=True,
                                        p_kw=100.0, reversion_timeout_s=5.0))

    def raise_alarm(self, alarm_id: int) -> None:
        self.alarms.publish(Alarm(header=self.header(), alarm_id=alarm_id, code="BMS_RACK_OVERTEMP", source="bms_node",
                                  priority=1, event=Alarm.EVENT_RAISE, state=Alarm.STATE_ACTIVE_UNACKED,
                                  message="rack 3 at 58 C"))

    def interlock(self, bms_ok: bool) -> None:
        self.interlocks.publish(InterlockState(header=self.header(), dispatch_permitted=bms_ok, close_permitted=True,
                                               permissives=[Permissive(name="bms.permissive", ok=bms_ok),
                                                            Permissive(name="meter.fresh", ok=True)]))


def counts(engine) -> dict[str, int]:
    with Session(engine) as session:
        return {m.__tablename__: session.execute(select(func.count()).select_from(m)).scalar_one()
                for m in (Telemetry, DecisionRecord, CommandRecord, AlarmRecord, Event)}


def expected(plant: Plant, alarms: int, events: int) -> dict[str, int]:
    return {"telemetry": plant.sent["meter"] * METER_POINTS, "decisions": plant.sent["decisions"],
            "commands": plant.sent["decisions"], "alarms": alarms, "events": events}


def test_historian_records_every_topic_in_batches_sealed_on_the_audit_chain(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ex = SimExecutor(START)
    hist = Historian(executor=ex, parameter_overrides={"db_url": url, "spool_dir": str(tmp_path / "spool")})
    plant = Plant(ex)
    plant.interlock(True)
    ex.spin_until(ex.clock.nanoseconds + 3 * S)
    plant.raise_alarm(7)
    plant.interlock(False)  # BMS permissive drops: one interlock event
    plant.interlock(False)  # no change: no event
    ex.spin_until(ex.clock.nanoseconds + 5 * S + S // 2)
    hist.flush()  # the rows since the last periodic flush
    engine = make_engine(url)
    assert counts(engine) == expected(plant, alarms=1, events=2)
    with Session(engine) as session:
        dropped = session.execute(select(Event).order_by(Event.time)).scalars().all()[-1]
        assert json.loads(dropped.data_json)["dropped"] == ["bms.permissive"]
        assert audit.verify(session).ok and verify_sealed_rows(session) is None
        seals = session.execute(select(audit.AuditEntry).where(audit.AuditEntry.kind == "records")).scalars().all()
    assert 7 <= len(seals) <= 9  # one per 1-s batch
    assert hist.batches_spooled == 0
    ex.shutdown()


def test_historian_spools_while_sqlite_is_locked_and_replays_in_order_without_loss_or_duplicates(tmp_path):
    url, path = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "r.db"
    ex = SimExecutor(START)
    hist = Historian(executor=ex, parameter_overrides={"db_url": url, "spool_dir": str(tmp_path / "spool"),
                                                       "retry_period_s": 2.0})
    plant = Plant(ex)
    spooling: list[Alarm] = []
    Node("watch", executor=ex).create_subscription(Alarm, "/ems/device_alarms", spooling.append, 10)
    ex.spin_until(ex.clock.nanoseconds + 4 * S + S // 2)
    hist.flush()
    engine = make_engine(url)
    before = counts(engine)
    assert before == expected(plant, alarms=0, events=0)

    locker = sqlite3.connect(path, timeout=0.1)  # another process holds the write lock: "database is locked"
    locker.execute("BEGIN EXCLUSIVE")
    sent_before = dict(plant.sent)
    ex.spin_until(ex.clock.nanoseconds + 6 * S)
    plant.raise_alarm(9)
    ex.spin_until(ex.clock.nanoseconds + 4 * S)
    locker.rollback()
    locker.close()
    assert counts(engine) == before  # nothing reached the database...
    assert plant.sent["meter"] - sent_before["meter"] == 50
    on_disk, in_memory = hist.spool.rows_pending(), hist.batch.count  # ...all on disk, but the batch filling now
    assert len(hist.spool) >= 9 and on_disk + in_memory == 50 * (METER_POINTS + 2) + 1 and in_memory < 5 * 24
    assert [a.code for a in spooling] == ["EMS_HISTORIAN_SPOOLING"] and spooling[0].event == Alarm.EVENT_RAISE

    ex.spin_until(ex.clock.nanoseconds + 5 * S)  # the retry timer finds the database back
    hist.flush()
    assert len(hist.spool) == 0
    after = counts(engine)
    assert after == expected(plant, alarms=1, events=0)  # exact: nothing lost, nothing doubled
    with Session(engine) as session:
        ids = session.execute(select(DecisionRecord.decision_id).order_by(DecisionRecord.id)).scalars().all()
        assert ids == sorted(ids) == list(range(1, plant.sent["decisions"] + 1))  # replayed in order
        assert audit.verify(session).ok and verify_sealed_rows(session) is None
    assert [a.event for a in spooling] == [Alarm.EVENT_RAISE, Alarm.EVENT_CLEAR]
    ex.shutdown()


def test_a_spool_left_by_a_stopped_historian_is_replayed_by_the_next_one(tmp_path):
    url, path = f"sqlite:///{tmp_path / 'r.db'}", tmp_path / "r.db"
    params = {"db_url": url, "spool_dir": str(tmp_path / "spool")}
    ex = SimExecutor(START)
    Historian(executor=ex, parameter_overrides=params)
    plant = Plant(ex)
    ex.spin_until(ex.clock.nanoseconds + 2 * S)
    locker = sqlite3.connect(path, timeout=0.1)
    locker.execute("BEGIN EXCLUSIVE")
    ex.spin_until(ex.clock.nanoseconds + 3 * S + S // 10)
    ex.shutdown()  # the last partial batch goes to the spool too
    locker.rollback()
    locker.close()
    sent = dict(plant.sent)

    ex2 = SimExecutor(START)
    second = Historian(executor=ex2, parameter_overrides=params)
    ex2.spin_until(ex2.clock.nanoseconds + 3 * S)
    assert len(second.spool) == 0
    assert counts(make_engine(url)) == {"telemetry": sent["meter"] * METER_POINTS, "decisions": sent["decisions"],
                                        "commands": sent["decisions"], "alarms": 0, "events": 0}
    ex2.shutdown()


def test_a_batch_the_database_refuses_is_kept_aside_not_dropped(tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    ex = SimExecutor(START)
    hist = Historian(executor=ex, parameter_overrides={"db_url": url, "spool_dir": str(tmp_path / "spool")})
    hist._add("decisions", {"key": "bad", "time_ns": 1, "decision_id": 1})  # missing NOT NULL columns
    ex.spin_until(ex.clock.nanoseconds + 2 * S)
    kept = hist.rejected.files()
    assert len(kept) == 1 and '"key":"bad"' in kept[0].read_text()
    assert len(hist.spool) == 0  # the spool is not blocked by it
    ex.shutdown()


@pytest.mark.integration
def test_historian_process_rides_through_a_postgresql_outage(postgres, router, procs, tmp_path):
    """A real historian process, a real PostgreSQL server stopped and started again under it."""
    url = postgres.create_database("historian_outage")
    hist = Proc([sys.executable, "-m", "energizeos.launch.node_process", "energizeos.nodes.historian", "--ros-args",
                 "-p", f"db_url:={url}", "-p", f"spool_dir:={tmp_path / 'spool'}", "-p", "retry_period_s:=0.5"])
    procs.append(hist)
    hist.wait_for_line("historian", timeout=20)
    from energizeos.runtime.zenoh_executor import ZenohExecutor

    ex = ZenohExecutor()
    probe = Node("outage_probe", executor=ex)
    pub = probe.create_publisher(ArbiterDecision, "/ems/arbiter/decision", 100)
    import time

    deadline = time.monotonic() + 10
    while pub.get_subscription_count() < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    sent = 0

    def publish(n: int) -> None:
        nonlocal sent
        for _ in range(n):
            sent += 1
            pub.publish(ArbiterDecision(header=Header(stamp=probe.get_clock().now().to_msg()), decision_id=sent,
                                        outcome=ArbiterDecision.OUTCOME_REFUSED, reason_codes=["STALE_METER"],
                                        reason_texts=["meter stale"]))
            time.sleep(0.01)

    publish(100)
    time.sleep(1.5)
    engine = make_engine(url)
    assert counts(engine)["decisions"] == 100
    engine.dispose()
    postgres.pause()  # the database server goes away (stopped by PID)
    try:
        publish(200)
        hist.wait_for_line("EMS_HISTORIAN_SPOOLING", timeout=10)
        spooled = len(list((tmp_path / "spool").glob("*.batch.json")))
        assert spooled >= 1
    finally:
        postgres.resume()  # the server is shared by the session's other tests
    publish(100)
    hist.wait_for_line("replayed", timeout=20)
    time.sleep(1.5)
    engine = make_engine(url)
    with Session(engine) as session:
        ids = session.execute(select(DecisionRecord.decision_id).order_by(DecisionRecord.id)).scalars().all()
    assert ids == list(range(1, 401))  # 400 sent, 400 stored, in order, none twice
    assert not list((tmp_path / "spool").glob("*.batch.json"))
    engine.dispose()
    ex.shutdown()


def test_a_mode_change_is_stored_with_its_user_and_sealed(tmp_path):
    from energizeos.nodes.dispatcher import Dispatcher
    from energizeos_msgs.srv import SetDispatchMode

    url = f"sqlite:///{tmp_path / 'r.db'}"
    ex = SimExecutor(START)
    hist = Historian(executor=ex, parameter_overrides={"db_url": url, "spool_dir": str(tmp_path / "spool")})
    Dispatcher(executor=ex, parameter_overrides={"mode": "standby"})
    client = Node("ops", executor=ex).create_client(SetDispatchMode, "/ems/dispatch/mode")
    assert client.call(SetDispatchMode.Request(mode=4, p_kw=120.0, user="alice")).accepted
    ex.spin_for(2.0)
    hist.flush()
    with Session(make_engine(url)) as session:
        event = session.execute(select(Event).where(Event.kind == "mode_change")).scalars().one()
        assert event.message == "dispatch mode standby -> manual at 120.0 kW"
        assert json.loads(event.data_json)["user"] == "alice"
        seal = session.execute(select(audit.AuditEntry).where(audit.AuditEntry.payload_json.contains(event.key))
                               ).scalars().one()
        assert seal.kind == "records"
    with make_engine(url).begin() as conn:  # a quiet edit of who did it is caught
        from sqlalchemy import text

        conn.execute(text("UPDATE events SET data_json = replace(data_json, 'alice', 'bob')"))
    with Session(make_engine(url)) as session:
        problem = verify_sealed_rows(session)
    assert problem is not None and f"events row {event.key}" in problem.reason and "edited" in problem.reason
    ex.shutdown()
