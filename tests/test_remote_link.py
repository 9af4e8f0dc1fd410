"""The remote link over real Zenoh on loopback: mutual TLS, user/password, the access-control list,
and store-and-forward across an aggregator restart. The aggregator writes to a real SQLite file here;
the namespace test (test_remote_netns.py) uses PostgreSQL."""

from __future__ import annotations

import time

import pytest
import zenoh
from sqlalchemy import func
from sqlmodel import Session, select

from energizeos.records.db import init_db, make_engine
from energizeos.records.models import FleetRecord, FleetSite, FleetTelemetry
from energizeos.remote import certs, protocol
from energizeos.remote.aggregator import Aggregator
from energizeos.remote.edge_link import EdgeLink
from energizeos.remote.zenoh_link import link_up, party_config
from tests.conftest import free_port
from tests.remote_fixtures import Fleet, make_fleet, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def fleet(tmp_path) -> Fleet:
    return make_fleet(tmp_path / "pki", "127.0.0.1", free_port())


@pytest.fixture
def engine(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'fleet.db'}")
    init_db(engine)
    return engine


def stored(engine, site: str) -> list[int]:
    with Session(engine) as session:
        return list(session.exec(select(FleetRecord.seq).where(FleetRecord.site_id == site)
                                 .order_by(FleetRecord.seq)))


def add_telemetry(link: EdgeLink, count: int, start: int = 0) -> None:
    base = time.time_ns()
    for i in range(start, start + count):
        t = base + i * 1_000_000  # 1 ms apart: the telemetry key is (site, point, time to the microsecond)
        link.add("telemetry", t, {"topic": "/site/poi/meter", "rows": [
            {"point": "/site/poi/meter/p_kw", "time_ns": t, "value": float(i), "quality": 0}]})


def pump_until(link: EdgeLink, condition, timeout_s: float, what: str) -> float:
    def step() -> bool:
        link.pump(time.time_ns())
        return condition()
    return wait_until(step, timeout_s, what, step_s=0.1)


def test_records_cross_over_mutual_tls_once_each_and_survive_an_aggregator_restart(fleet, engine, tmp_path):
    settings = fleet.server_settings(db_url=str(engine.url))
    aggregator = Aggregator(settings, engine).start()
    link = EdgeLink(fleet.uplink_settings("edge-a", "site-a"), tmp_path / "outbox-a.db")
    try:
        add_telemetry(link, 1200)
        pump_until(link, lambda: link.outbox.acked == 1200, 20, "first 1200 records acknowledged")
        assert stored(engine, "site-a") == list(range(1, 1201))

        aggregator.stop()  # the aggregator goes away; the edge keeps recording
        add_telemetry(link, 800, start=1200)
        pump_until(link, lambda: not link.forwarder.link_up, 15, "edge notices the router is gone")
        assert link.outbox.pending == 800

        aggregator = Aggregator(settings, engine).start()  # same database: resumes from what it holds
        pump_until(link, lambda: link.outbox.acked == 2000, 30, "catch-up after the restart")
        assert stored(engine, "site-a") == list(range(1, 2001))  # nothing lost, nothing twice, in order
        with Session(engine) as session:
            assert session.exec(select(func.count()).select_from(FleetTelemetry)).one() == 2000
            site = session.get(FleetSite, "site-a")
            assert (site.name, site.have_seq, site.epoch) == ("Plant A", 2000, link.outbox.epoch)
    finally:
        link.close()
        aggregator.stop()


def test_wrong_credentials_and_a_stranger_certificate_are_refused(fleet, engine, tmp_path):
    aggregator = Aggregator(fleet.server_settings(db_url=str(engine.url)), engine).start()
    stranger_ca = certs.make_ca(tmp_path / "stranger")
    stranger = certs.issue_client(stranger_ca, tmp_path / "stranger", "edge-a")
    links = []
    try:
        wrong_password = EdgeLink(fleet.uplink_settings("edge-a", "site-a", password="guess"), tmp_path / "o1.db")
        forged = fleet.uplink_settings("edge-a", "site-a")
        forged.tls.cert, forged.tls.key = stranger.cert, stranger.key
        wrong_cert = EdgeLink(forged, tmp_path / "o2.db")
        links = [wrong_password, wrong_cert]
        for link in links:
            add_telemetry(link, 10)
        end = time.monotonic() + 4.0  # several connection attempts (retry period 0.5 to 2 s)
        while time.monotonic() < end:
            for link in links:
                link.pump(time.time_ns())
            time.sleep(0.1)
        # zenoh.open() returned for both (the edge must keep trying), but neither ever got a link
        assert [link_up(link.session) for link in links] == [False, False]
        assert [link.outbox.acked for link in links] == [0, 0]
        assert stored(engine, "site-a") == []
        with pytest.raises(zenoh.ZError):  # a party told to give up gets the refusal as an error
            zenoh.open(party_config(fleet.endpoint, "owner", "guess", fleet.tls("owner")))
    finally:
        for link in links:
            link.close()
        aggregator.stop()


def test_the_acl_keeps_each_party_to_its_own_keys(fleet, engine, tmp_path):
    aggregator = Aggregator(fleet.server_settings(db_url=str(engine.url)), engine).start()
    sessions: list[zenoh.Session] = []

    def party(user: str) -> zenoh.Session:
        session = zenoh.open(party_config(fleet.endpoint, user, fleet.password(user), fleet.tls(user)))
        sessions.append(session)
        return session

    def collect(session: zenoh.Session, key: str) -> list[str]:
        got: list[str] = []
        session.declare_subscriber(key, lambda s: got.append(str(s.key_expr)))
        return got

    link = EdgeLink(fleet.uplink_settings("edge-a", "site-a"), tmp_path / "outbox-a.db")
    try:
        owner, noc, edge_b = party("owner"), party("noc"), party("edge-b")
        owner_a = collect(owner, "fleet/site-a/batch")  # allowed: site-a is the owner's
        owner_b = collect(owner, "fleet/site-b/batch")  # not the owner's site
        site_a_requests = collect(link.session, "fleet/site-a/request/**")  # wider than the edge's own
        time.sleep(1.0)  # the declarations reach the router

        add_telemetry(link, 50)
        pump_until(link, lambda: link.outbox.acked == 50, 15, "site-a's records acknowledged")
        wait_until(lambda: len(owner_a) > 0, 5, "the owner hears site-a")

        # edge-b speaks for site-a: the router drops it (and the aggregator would refuse it anyway)
        forged = protocol.BatchMsg("site-a", "forged", 999, (protocol.Record(51, "events", 1, {"x": 1}),))
        edge_b.put("fleet/site-a/batch", protocol.encode_batch(forged))
        edge_b.put("fleet/site-b/batch", protocol.encode_batch(
            protocol.BatchMsg("site-b", "eb", 1, (protocol.Record(1, "events", 1, {"x": 1}),))))
        # a viewer may not send anything; an operator may put a request, only under request/<its own name>
        owner.put("fleet/site-a/request/owner", b"{}")
        noc.put("fleet/site-a/request/ack-alarm", b"{}")
        noc.put("fleet/site-a/request/noc/deeper", b"{}")
        noc.put("fleet/site-a/request/noc", b"{}")
        for who in (owner, noc, edge_b):
            who.put("fleet/site-a/ack", protocol.encode_ack(protocol.AckMsg(link.outbox.epoch, 0)))
            who.put("bess/pcs/command", b"p_kw=500")  # not even a fleet key
        wait_until(lambda: stored(engine, "site-b") == [1], 5, "edge-b's own record stored")
        time.sleep(1.0)

        assert stored(engine, "site-a") == list(range(1, 51))  # the forged record did not get in
        assert owner_b == []  # the owner's subscription outside its sites was never granted
        assert site_a_requests == ["fleet/site-a/request/noc"]  # the operator's own, once; not the viewer's
        link.pump(time.time_ns())
        assert link.outbox.acked == 50  # nobody but the aggregator can move the edge's acknowledged point
        assert aggregator.stats.rejected == 0  # refused by the router, before the aggregator saw anything
    finally:
        link.close()
        for session in sessions:
            session.close()
        aggregator.stop()
