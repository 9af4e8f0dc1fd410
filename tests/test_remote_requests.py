"""Remote alarm requests: a party asks an edge to acknowledge or shelve an alarm over the real fleet
router (Zenoh, mutual TLS, passwords, the ACL on loopback). The edge's uplink and alarm manager run
in the simulated-time executor against a real records database; the pure gate has its own cases and
a hypothesis property."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

import pytest
import zenoh
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import Session, select
from typer.testing import CliRunner

from energizeos.access.accounts import create_user
from energizeos.cli.remote import app as remote_cli
from energizeos.nodes.alarm_manager import AlarmManager
from energizeos.nodes.conditions import DEVICE_ALARMS_TOPIC
from energizeos.nodes.events import EVENTS_TOPIC
from energizeos.nodes.uplink import Uplink
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import FleetRecord
from energizeos.remote import requests
from energizeos.remote.aggregator import Aggregator
from energizeos.remote.config import RemoteConfigError, UplinkSettings, load_party_settings
from energizeos.remote.party import ask, new_request
from energizeos.remote.protocol import ProtocolError
from energizeos.remote.requests import Grant, RequestGate, RequestMsg
from energizeos.remote.zenoh_link import party_config
from energizeos.runtime import Node, SimExecutor
from energizeos.site_config import uplink_parameters
from energizeos_msgs.msg import Alarm, EmsEvent
from tests.conftest import free_port
from tests.remote_fixtures import Fleet, make_fleet, wait_until

S = 1_000_000_000
NOW = 1_800_000_000 * S
GRANTS = [Grant(party="noc", as_user="remote-noc", actions=["acknowledge", "shelve"]),
          Grant(party="ops2", as_user="remote-ops2", actions=["acknowledge"])]


def req(action: str = "acknowledge", t: int = NOW, request_id: str = "req-00000001", alarm_id: int = 7,
        shelve_s: float = 0.0) -> RequestMsg:
    return RequestMsg(request_id, t, action, alarm_id, "jane", "seen on the fleet view", shelve_s)


# --- the message and the gate (pure) ---------------------------------------------------------------

def test_a_request_crosses_the_wire_unchanged_and_a_bad_one_is_named():
    msg = req("shelve", shelve_s=1800.0)
    assert requests.decode_request(requests.encode_request(msg)) == msg
    assert requests.party_of("fleet/site-a/request/noc") == "noc"
    bad = {b"{": "not JSON", b'{"v":1,"id":"x","t":1,"action":"acknowledge","alarm_id":1}': "'id'",
           b'{"v":1,"id":"abcdefgh","t":1,"action":"set_power","alarm_id":1}': "set_power",
           b'{"v":1,"id":"abcdefgh","t":1,"action":"acknowledge","alarm_id":-1}': "'alarm_id'",
           b'{"v":1,"id":"abcdefgh","t":1,"action":"shelve","alarm_id":1}': "shelve_s > 0",
           b'{"v":2,"id":"abcdefgh","t":1,"action":"acknowledge","alarm_id":1}': "version"}
    for payload, named in bad.items():
        with pytest.raises(ProtocolError, match=named):
            requests.decode_request(payload)
    with pytest.raises(ProtocolError):
        requests.party_of("fleet/site-a/request/noc/extra")


def test_the_gate_acts_only_on_a_granted_fresh_first_request():
    gate = RequestGate(GRANTS, max_age_s=30.0)
    assert gate.decide("noc", req(), NOW + 2 * S).as_user == "remote-noc"
    assert "already handled" in gate.decide("noc", req(), NOW + 3 * S).refusal
    assert "no grant" in gate.decide("owner", req(request_id="req-00000002"), NOW).refusal
    assert "may not unshelve" in gate.decide("noc", req("unshelve", request_id="req-00000003"), NOW).refusal
    assert "may not shelve" in gate.decide("ops2", req("shelve", request_id="req-00000004", shelve_s=60), NOW).refusal
    assert "31.0 s old" in gate.decide("noc", req(request_id="req-00000005"), NOW + 31 * S).refusal
    assert "in the future" in gate.decide("noc", req(request_id="req-00000006"), NOW - 31 * S).refusal
    # a refused request does not use up its id: sent again in time, it is acted on
    assert gate.decide("noc", req(request_id="req-00000005"), NOW + 1 * S).accepted


def test_a_party_flooding_the_site_is_refused_for_a_minute():
    gate = RequestGate(GRANTS, max_age_s=30.0, per_minute=5)
    verdicts = [gate.decide("noc", req(request_id=f"req-{i:08d}", t=NOW + i * S), NOW + i * S) for i in range(7)]
    assert [v.accepted for v in verdicts] == [True] * 5 + [False] * 2
    assert verdicts[5].flood and "more than 5 requests from 'noc' within a minute" in verdicts[5].refusal
    assert gate.decide("ops2", req(request_id="req-10000000"), NOW + 6 * S).accepted  # another party is not held
    late = NOW + 60 * S  # the first request is a minute old: room for one more
    assert gate.decide("noc", req(request_id="req-20000000", t=late), late).accepted
    assert gate.decide("noc", req(request_id="req-20000001", t=late), late).flood


@given(party=st.sampled_from(["noc", "ops2", "owner", "edge-a"]), action=st.sampled_from(requests.ACTIONS),
       age_s=st.floats(-100, 100, allow_nan=False), repeat=st.booleans())
def test_the_gate_accepts_exactly_what_the_grants_and_the_clock_allow(party, action, age_s, repeat):
    gate = RequestGate(GRANTS, max_age_s=30.0)
    msg = req(action, shelve_s=60.0 if action == "shelve" else 0.0)
    now = NOW + int(age_s * S)
    if repeat:
        gate.decide(party, msg, now)
    grant = {g.party: g for g in GRANTS}.get(party)
    expected = grant is not None and action in grant.actions and abs(age_s) <= 30.0 and not repeat
    verdict = gate.decide(party, msg, now)
    assert verdict.accepted == expected
    assert verdict.as_user == (grant.as_user if expected else "")


def test_grants_are_checked_when_the_config_is_read(tmp_path):
    base = {"site_id": "site-a", "endpoint": "tcp/127.0.0.1:7450", "user": "edge-a",
            "password_file": str(tmp_path / "pw")}
    twice = [{"party": "noc", "as_user": "remote-noc", "actions": ["acknowledge"]}] * 2
    with pytest.raises(ValueError, match="noc listed twice"):
        UplinkSettings(**base, grants=twice)
    with pytest.raises(ValueError, match="actions"):
        UplinkSettings(**base, grants=[{"party": "noc", "as_user": "remote-noc", "actions": ["set_power"]}])
    with pytest.raises(ValueError, match="edge itself"):
        UplinkSettings(**base, grants=[{"party": "edge-a", "as_user": "remote-noc", "actions": ["acknowledge"]}])
    grant = Grant(party="noc", as_user="remote-noc", actions=["acknowledge", "shelve"])
    assert Grant.from_parameter(grant.as_parameter()) == grant
    with pytest.raises(ValueError, match="is not 'party=as_user"):
        Grant.from_parameter("noc:acknowledge")
    (tmp_path / "party.yaml").write_text("endpoint: tls/fleet:7450\nuser: noc\npassword_file: pw\n"
                                         "tls: {ca: missing-ca.pem}\n")
    with pytest.raises(RemoteConfigError, match=r"missing-ca\.pem"):
        load_party_settings(tmp_path / "party.yaml")


# --- over the real router ----------------------------------------------------------------------------

@pytest.fixture
def site(tmp_path):
    """The fleet router, and site-a's alarm manager and uplink (granting noc and ops2) on one records DB."""
    fleet = make_fleet(tmp_path / "pki", "127.0.0.1", free_port())
    fleet_db = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(fleet_db)
    aggregator = Aggregator(fleet.server_settings(db_url=str(fleet_db.url)), fleet_db).start()
    url = f"sqlite:///{tmp_path / 'records.db'}"
    records = make_engine(url)
    init_db(records)
    create_user(records, None, "remote-noc", "operator", "a-long-enough-password-1")
    create_user(records, None, "remote-ops2", "viewer", "a-long-enough-password-2")
    ex = SimExecutor(start=datetime.now(UTC))
    AlarmManager(executor=ex, parameter_overrides={"db_url": url})
    settings = fleet.uplink_settings("edge-a", "site-a", outbox=tmp_path / "outbox.db", grants=GRANTS)
    uplink = Uplink(executor=ex, parameter_overrides=uplink_parameters(settings))
    probe = Node("probe", executor=ex)
    alarms: list[Alarm] = []
    events: list[EmsEvent] = []
    probe.create_subscription(Alarm, "/ems/alarms", alarms.append, 100)
    probe.create_subscription(EmsEvent, EVENTS_TOPIC, events.append, 100)
    raise_pub = probe.create_publisher(Alarm, DEVICE_ALARMS_TOPIC, 10)
    ex.spin_for(0.5)
    raise_pub.publish(Alarm(code="PCS_FAULT", source="pcs_node", priority=1, event=Alarm.EVENT_RAISE,
                            message="PCS fault word 0x0004"))
    raise_pub.publish(Alarm(code="METER_VALUES_FROZEN", source="meter_node", priority=2, event=Alarm.EVENT_RAISE,
                            message="POI values unchanged for 60 s"))
    ex.spin_for(0.5)
    yield fleet, fleet_db, ex, uplink, alarms, events
    ex.shutdown()
    aggregator.stop()


def sessions_for(fleet: Fleet):
    opened: list[zenoh.Session] = []

    def party(user: str) -> zenoh.Session:
        opened.append(zenoh.open(party_config(fleet.endpoint, user, fleet.password(user), fleet.tls(user))))
        return opened[-1]
    return party, opened


def while_running(ex: SimExecutor, work):
    """Run ``work`` (which blocks on the network) on a thread while the site's time runs with the wall clock."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(work()), daemon=True)
    thread.start()
    while thread.is_alive():
        ex.spin_for(0.05)
        time.sleep(0.05)
    return out[0]


def test_a_granted_operator_acknowledges_and_everyone_else_is_refused(site):
    fleet, fleet_db, ex, uplink, alarms, events = site
    fault = next(a for a in alarms if a.code == "PCS_FAULT")
    party, opened = sessions_for(fleet)
    noc, ops2, owner = party("noc"), party("ops2"), party("owner")
    heard_by_edge: list[str] = []
    uplink.link.session.declare_subscriber("fleet/site-a/request/*", lambda s: heard_by_edge.append(str(s.key_expr)))
    wait_until(lambda: uplink.link.forwarder.link_up or bool(ex.spin_for(0.1)), 10, "the edge's link up")
    try:
        ack = new_request("acknowledge", fault.alarm_id, "jane", "seen on the fleet view")
        done = while_running(ex, lambda: ask(noc, "site-a", "noc", ack))
        assert done is not None and done.ok, done
        acked = [a for a in alarms if a.alarm_id == fault.alarm_id and a.event == Alarm.EVENT_ACKNOWLEDGE]
        assert [a.user for a in acked] == ["remote-noc"]
        assert '"comment": "remote noc/jane: seen on the fleet view"' in acked[0].evidence_json

        replies = {
            "again": while_running(ex, lambda: ask(noc, "site-a", "noc", ack)),
            "not granted": while_running(ex, lambda: ask(noc, "site-a", "noc",
                                                         new_request("unshelve", fault.alarm_id))),
            "stale": while_running(ex, lambda: ask(noc, "site-a", "noc", new_request(
                "acknowledge", fault.alarm_id, now_ns=time.time_ns() - 120 * S))),
            "viewer account": while_running(ex, lambda: ask(ops2, "site-a", "ops2",
                                                            new_request("acknowledge", fault.alarm_id))),
        }
        assert all(r is not None and not r.ok for r in replies.values()), replies
        assert "already handled" in replies["again"].message
        assert "may not unshelve" in replies["not granted"].message
        assert "s old" in replies["stale"].message
        assert "role 'viewer'" in replies["viewer account"].message  # the alarm manager's own check

        # The router's ACL: a viewer cannot send, an operator cannot speak under another's name.
        before = len(heard_by_edge)
        owner.put("fleet/site-a/request/owner", requests.encode_request(new_request("acknowledge", 1)))
        ops2.put("fleet/site-a/request/noc", requests.encode_request(new_request("acknowledge", 1)))
        noc.put("fleet/site-b/request/noc", requests.encode_request(new_request("acknowledge", 1)))  # not site-a
        time.sleep(1.0)
        ex.spin_for(0.5)
        assert len(heard_by_edge) == before
        # A party that may not hear another's answers does not.
        spied: list[bytes] = []
        owner.declare_subscriber("fleet/site-a/reply/noc", lambda s: spied.append(s.payload.to_bytes()))
        bad = while_running(ex, lambda: ask(noc, "site-a", "noc", new_request("shelve", fault.alarm_id, shelve_s=0.0)))
        assert bad is not None and not bad.ok and "shelve_s > 0" in bad.message  # refused, and named
        assert spied == []

        # Each request is answered once and recorded once, at the site and at the aggregator.
        recorded = [e for e in events if e.kind == "remote-request"]
        assert len(recorded) == 6
        assert [e.user for e in recorded][:1] == ["remote-noc"]

        def forwarded() -> int:
            with Session(fleet_db) as session:
                bodies = session.exec(select(FleetRecord.body).where(FleetRecord.kind == "events")).all()
            return sum('"remote-request"' in b for b in bodies)
        wait_until(lambda: forwarded() == 6 or bool(ex.spin_for(0.2)), 15, "the six requests at the aggregator")
        # A runaway script (malformed, too): past 30 messages a minute from one party, nothing more is recorded.
        for i in range(40):
            noc.put("fleet/site-a/request/noc", b'{"v":1,"id":"flood-%04d"}' % i)
        def requests_recorded() -> int:
            return sum(e.kind == "remote-request" for e in events)
        wait_until(lambda: requests_recorded() >= 30 or bool(ex.spin_for(0.2)), 10, "the flood heard")
        time.sleep(1.0)  # the rest of the flood arrives, and is answered without a record
        ex.spin_for(1.0)
        assert requests_recorded() == 6 + 25  # noc sent 5 of the 6 above: 25 more fit its 30 a minute
        # Nothing from outside reaches the site's bus but this node's own records of what it did.
        assert {p.topic_name for p in uplink.publishers} <= {EVENTS_TOPIC, "/rosout"}
    finally:
        for session in opened:
            session.close()


def test_the_request_command_asks_and_prints_the_answer(site, tmp_path):
    fleet, _db, ex, uplink, alarms, _events = site
    frozen = next(a for a in alarms if a.code == "METER_VALUES_FROZEN")
    (tmp_path / "noc.pw").write_text(fleet.password("noc") + "\n")
    tls = fleet.tls("noc")
    (tmp_path / "noc.yaml").write_text(f"endpoint: {fleet.endpoint}\nuser: noc\npassword_file: noc.pw\n"
                                       f"tls: {{ca: {tls.ca}, cert: {tls.cert}, key: {tls.key}}}\n")
    wait_until(lambda: uplink.link.forwarder.link_up or bool(ex.spin_for(0.1)), 10, "the edge's link up")
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(remote_cli, ["request", "--config", str(tmp_path / "noc.yaml"), "--site", "site-a",
                                          *args])
    shelved = while_running(ex, lambda: run("shelve", str(frozen.alarm_id), "--minutes", "30", "--person", "jane"))
    assert shelved.exit_code == 0, shelved.output
    assert '"ok": true' in shelved.output
    shelves = [a for a in alarms if a.event == Alarm.EVENT_SHELVE]
    assert [(a.alarm_id, a.user) for a in shelves] == [(frozen.alarm_id, "remote-noc")]
    assert "for 1800 s" in shelves[0].message
    refused = while_running(ex, lambda: run("unshelve", str(frozen.alarm_id)))
    assert refused.exit_code == 1 and "may not unshelve" in refused.output
    silent = runner.invoke(remote_cli, ["request", "--config", str(tmp_path / "noc.yaml"), "--site", "site-z",
                                        "acknowledge", "1", "--timeout", "1.5"])
    assert silent.exit_code == 1 and "no answer from site-z" in silent.output
    usage = runner.invoke(remote_cli, ["request", "--config", str(tmp_path / "noc.yaml"), "--site", "site-a",
                                       "shelve", "1"])
    assert usage.exit_code == 2 and "--minutes" in usage.output
