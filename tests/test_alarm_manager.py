"""Alarm manager node on the real plant model: a BMS over-temperature flood shows its root, every
transition is stored by the historian and sealed on the audit chain; actions are role-checked."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlmodel import Session

from energizeos.nodes.alarm_manager import AlarmManager
from energizeos.nodes.bms_node import BmsNode
from energizeos.nodes.historian import Historian
from energizeos.records import audit
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import AlarmEvent, AlarmRecord, User
from energizeos.records.writer import verify_sealed_rows
from energizeos.runtime import Node, SimExecutor
from energizeos.scenarios import _ramp_in, build_site
from energizeos_msgs.msg import Alarm
from energizeos_msgs.srv import AlarmAction


def add_users(url: str, **roles: str) -> None:
    engine = make_engine(url)
    init_db(engine)
    with Session(engine) as session:
        for name, role in roles.items():
            session.add(User(username=name, role=role, password_hash="(set by the login issue)",
                             created_at=datetime(2026, 11, 1, tzinfo=UTC)))
        session.commit()


@pytest.fixture(scope="module")
def overtemp(tmp_path_factory):
    """Peak shaving at 400 kW until rack 4 overheats; alarm manager and historian in the graph."""
    tmp = tmp_path_factory.mktemp("overtemp")
    url = f"sqlite:///{tmp / 'records.db'}"
    add_users(url, olga="operator", vic="viewer")
    site = build_site({"mode": "peak_shaving", "peak_threshold_kw": 300.0, "peak_alarm_delay_s": 30.0},
                      load_kw=700.0)
    AlarmManager(executor=site.ex, parameter_overrides={"db_url": url})
    historian = Historian(executor=site.ex, parameter_overrides={"db_url": url, "spool_dir": str(tmp / "spool")})
    log: list[Alarm] = []
    site.probe.create_subscription(Alarm, "/ems/alarms", log.append, 1000)
    _ramp_in(site, 400.0)
    site.plant.site.inject("rack_overtemp", rack=3, delta_c=45.0)
    bms = next(n for n in site.ex.nodes if isinstance(n, BmsNode))
    site.run_until(lambda: "BMS_RACK_OVERTEMP" in bms.conditions.active, 1800.0)
    site.run(60.0)
    historian.flush()
    return site, url, log


def raised(log: list[Alarm], code: str) -> Alarm:
    return next(a for a in log if a.code == code and a.event == Alarm.EVENT_RAISE)


def test_the_overtemperature_flood_points_at_its_root(overtemp):
    _site, _url, log = overtemp
    root = raised(log, "BMS_RACK_OVERTEMP")
    assert root.cause_alarm_id == 0 and root.priority == 1 and "rack 4" in root.message
    refused = raised(log, "EMS_DISPATCH_REFUSED")
    assert refused.cause_alarm_id == root.alarm_id and "BMS permissive is off" in refused.message
    assert refused.header.stamp.sec >= root.header.stamp.sec  # the root came first
    early = raised(log, "BMS_RACK_TEMP_HIGH")  # the early warning, a root of its own
    limited = raised(log, "EMS_DISCHARGE_LIMITED")  # BMS derating before the trip points at the warning
    assert limited.cause_alarm_id == early.alarm_id
    # The peak went unshaved twice: while waiting out the IEEE 1547 enter-service delay, then when the
    # BMS derated the hot rack. Each is linked through its consequence to the root of that moment.
    waiting = raised(log, "GRID_ENTER_SERVICE_WAIT")
    not_shaved = [a for a in log if a.code == "EMS_PEAK_NOT_SHAVED" and a.event == Alarm.EVENT_RAISE]
    assert [a.cause_alarm_id for a in not_shaved] == [waiting.alarm_id, early.alarm_id]
    roots = {a.code for a in log if a.event == Alarm.EVENT_RAISE and a.cause_alarm_id == 0}
    assert "EMS_DISPATCH_REFUSED" not in roots and "EMS_PEAK_NOT_SHAVED" not in roots


def test_every_transition_is_stored_and_sealed(overtemp):
    _site, url, log = overtemp
    engine = make_engine(url)
    with Session(engine) as session:
        stored = session.execute(select(AlarmEvent).order_by(AlarmEvent.id)).scalars().all()
        assert [(e.alarm_id, e.event) for e in stored] == [(a.alarm_id, a.event) for a in log]
        root = raised(log, "BMS_RACK_OVERTEMP")
        record = session.get(AlarmRecord, raised(log, "EMS_DISPATCH_REFUSED").alarm_id)
        assert record is not None and record.cause_alarm_id == root.alarm_id
        assert record.raised_at.tzinfo is not None
        assert audit.verify(session).ok and verify_sealed_rows(session) is None


def test_a_viewer_cannot_acknowledge_an_operator_can(overtemp):
    site, _url, log = overtemp
    root = raised(log, "BMS_RACK_OVERTEMP")
    client = site.probe.create_client(AlarmAction, "/ems/alarms/action")
    refused = client.call(AlarmAction.Request(alarm_id=root.alarm_id, action=AlarmAction.Request.ACTION_ACKNOWLEDGE,
                                              user="vic", comment="seen"))
    assert not refused.success and "role 'viewer' may not acknowledge" in refused.message
    nobody = client.call(AlarmAction.Request(alarm_id=root.alarm_id, action=AlarmAction.Request.ACTION_ACKNOWLEDGE,
                                             user="mallory"))
    assert not nobody.success and "unknown user" in nobody.message
    before = len(log)
    ok = client.call(AlarmAction.Request(alarm_id=root.alarm_id, action=AlarmAction.Request.ACTION_ACKNOWLEDGE,
                                         user="olga", comment="crew dispatched to container 2"))
    site.run(0.1)
    assert ok.success
    acks = [a for a in log[before:] if a.event == Alarm.EVENT_ACKNOWLEDGE]
    assert len(acks) == 1 and acks[0].user == "olga" and acks[0].state == Alarm.STATE_ACTIVE_ACKED
    assert "crew dispatched" in acks[0].evidence_json


def test_stale_topics_raise_when_nothing_arrives_and_clear_when_data_flows(tmp_path):
    ex = SimExecutor(datetime(2026, 11, 25, 20, tzinfo=UTC))
    AlarmManager(executor=ex, parameter_overrides={"db_url": f"sqlite:///{tmp_path / 'r.db'}"})
    log: list[Alarm] = []
    Node("watch", executor=ex).create_subscription(Alarm, "/ems/alarms", log.append, 1000)
    ex.spin_for(30.0)
    stale = {a.code for a in log if a.event == Alarm.EVENT_RAISE}
    assert {"EMS_METER_STALE", "EMS_BMS_STALE", "EMS_RELAY_STALE", "EMS_PCS_STALE"} <= stale


def test_a_restarted_alarm_manager_continues_the_open_occurrence(tmp_path):
    """Respawned (new process, same records): the alarm still active keeps its id and clears normally."""
    from energizeos_msgs.msg import BmsStatus, Header

    url = f"sqlite:///{tmp_path / 'r.db'}"
    start = datetime(2026, 11, 25, 20, tzinfo=UTC)

    def graph(ex: SimExecutor):
        AlarmManager(executor=ex, parameter_overrides={"db_url": url})
        hist = Historian(executor=ex, parameter_overrides={"db_url": url, "spool_dir": str(tmp_path / "spool")})
        probe = Node("probe", executor=ex)
        pub = probe.create_publisher(BmsStatus, "/bess/bms/status", 10)
        log: list[Alarm] = []
        probe.create_subscription(Alarm, "/ems/alarms", log.append, 1000)
        return hist, probe, pub, log

    ground_fault = 1 << 22  # SunSpec 802 Evt1 GROUND_FAULT
    ex = SimExecutor(start)
    hist, probe, pub, log = graph(ex)
    pub.publish(BmsStatus(header=Header(stamp=probe.get_clock().now().to_msg()), alarm_bits=ground_fault,
                          rack_temp_max_c=[25.0]))
    ex.spin_for(2.0)
    hist.flush()
    first = [a for a in log if a.event == Alarm.EVENT_RAISE and a.code.startswith("BMS_GROUND")]
    assert len(first) == 1
    ex.shutdown()

    ex2 = SimExecutor(datetime(2026, 11, 25, 20, 5, tzinfo=UTC))
    _hist2, probe2, pub2, log2 = graph(ex2)
    for bits in (ground_fault, ground_fault, 0):
        pub2.publish(BmsStatus(header=Header(stamp=probe2.get_clock().now().to_msg()), alarm_bits=bits,
                               rack_temp_max_c=[25.0]))
        ex2.spin_for(2.0)
    ex2.spin_for(10.0)  # the catalogue's 10 s off-delay
    mine = [a for a in log2 if a.code == first[0].code]
    assert [(a.alarm_id, a.event) for a in mine] == [(first[0].alarm_id, Alarm.EVENT_CLEAR)]
    ex2.shutdown()
    with Session(make_engine(url)) as session:
        record = session.get(AlarmRecord, first[0].alarm_id)
        assert record is not None and record.state == Alarm.STATE_CLEARED_UNACKED and record.cleared_at is not None
