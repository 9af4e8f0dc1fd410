"""Store-and-forward without a network: the protocol, the outbox, the forwarder and the receiver,
the access-control list and the settings. The property test runs the two halves over a channel that
loses, doubles, delays and reorders batches and acknowledgements, and checks that the aggregator
ends with exactly records 1..N, in order, each once."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.remote import protocol
from energizeos.remote.acl import access_control
from energizeos.remote.config import Party, RemoteConfigError, ServerSettings, UplinkSettings, load_server_settings
from energizeos.remote.forwarder import Forwarder
from energizeos.remote.outbox import Outbox
from energizeos.remote.receiver import SiteStream


def telemetry(i: int) -> tuple[str, int, dict]:
    return ("telemetry", 1_000 + i, {"rows": [{"point": "/site/poi/meter/p_kw", "time_ns": 1_000 + i,
                                               "value": float(i), "quality": 0}]})


# --- protocol ------------------------------------------------------------------------------------
def test_a_batch_round_trips_and_malformed_ones_are_named():
    batch = protocol.BatchMsg("site-a", "e1", 3, (protocol.Record(2, "events", 5, {"k": 1}),
                                                  protocol.Record(3, "telemetry", 6, {"rows": []})))
    assert protocol.decode_batch(protocol.encode_batch(batch)) == batch
    good = json.loads(protocol.encode_batch(batch))
    cases = {
        b"\xff\x00": "not JSON",
        b"[1]": "expected an object",
        json.dumps({**good, "v": 2}).encode(): "protocol version 2",
        json.dumps({**good, "records": []}).encode(): "no records",
        json.dumps({**good, "head": 2}).encode(): "outside floor 1..head 2",
        json.dumps({**good, "records": [good["records"][1], good["records"][0]]}).encode(): "does not follow",
        json.dumps({**good, "records": [{**good["records"][0], "kind": "pcs_command"}]}).encode(): "unknown kind",
        json.dumps({**good, "records": [{**good["records"][0], "seq": -1}]}).encode(): "negative",
        json.dumps({**good, "site": 7}).encode(): "'site' missing or not str",
        json.dumps({**good, "records": [{**good["records"][0], "t": 10**22}]}).encode(): "past the year 9999",
    }
    for payload, words in cases.items():
        with pytest.raises(protocol.ProtocolError, match=words):
            protocol.decode_batch(payload)
    with pytest.raises(protocol.ProtocolError, match="not fleet/<site>/<leaf>"):
        protocol.site_of("ems/pcs/command")


# --- outbox --------------------------------------------------------------------------------------
def test_the_outbox_keeps_records_acks_and_its_epoch_across_a_restart(tmp_path):
    box = Outbox(tmp_path / "o.db")
    epoch = box.epoch
    assert box.append([telemetry(i) for i in range(10)]) == 10
    box.set_acked(4)
    box.close()
    box = Outbox(tmp_path / "o.db")
    assert (box.epoch, box.head, box.acked, box.pending) == (epoch, 10, 4, 6)
    assert [r.seq for r in box.read(4, 3)] == [5, 6, 7]
    assert box.prune(older_than_ns=1_003) == 3  # only acknowledged records, and only old ones: 1, 2, 3
    assert box.first_seq() == 4
    box.set_acked(1)  # an aggregator restored from a backup: back, but not below what is still held
    assert box.acked == 3
    assert box.append([telemetry(10)]) == 11  # numbers are never reused after a prune
    with pytest.raises(ValueError, match="unknown record kind"):
        box.append([("pcs_command", 1, {})])
    assert Outbox(tmp_path / "other.db").epoch != epoch


# --- forwarder and receiver ------------------------------------------------------------------------
class Channel:
    """Batches and acks in flight, delivered in a random order with random loss and duplication."""

    def __init__(self, rng: random.Random, loss: float, dup: float) -> None:
        self.rng, self.loss, self.dup = rng, loss, dup
        self.to_aggregator: list[bytes] = []
        self.to_edge: list[protocol.AckMsg] = []

    def send(self, payload: bytes) -> None:
        if self.rng.random() >= self.loss:
            self.to_aggregator.append(payload)
            if self.rng.random() < self.dup:
                self.to_aggregator.append(payload)

    def take(self, queue: list):
        return queue.pop(self.rng.randrange(len(queue))) if queue else None


def run_link(seed: int, n: int, loss: float, dup: float, outage: tuple[int, int]) -> list[int]:
    rng = random.Random(seed)
    box = Outbox(Path(":memory:"))  # a fresh outbox per example (the file-backed one is tested above)
    channel = Channel(rng, loss, dup)
    fwd = Forwarder(box, "site-a", channel.send, max_batch=7, window=30, resend_after_s=2.0)
    stream, stored = SiteStream(), []
    added, now = 0, 0.0
    for step in range(5000):
        now += 0.1
        if added < n:
            take = min(n - added, rng.randrange(0, 5))
            box.append([telemetry(added + i) for i in range(take)])
            added += take
        down = outage[0] <= step < outage[1]
        if down:  # the link is cut: everything in flight is lost
            channel.to_aggregator.clear()
            channel.to_edge.clear()
        fwd.on_link(not down, now)
        fwd.tick(now)
        for _ in range(rng.randrange(0, 4)):
            payload = channel.take(channel.to_aggregator)
            if payload is None:
                break
            verdict = stream.accept(protocol.decode_batch(payload))
            stored.extend(r.seq for r in verdict.store)
            stream.committed(verdict) if not verdict.ack.gap else None
            if rng.random() >= loss:
                channel.to_edge.append(verdict.ack)
        while (ack := channel.take(channel.to_edge)) is not None:
            fwd.on_ack(ack, now)
        if added == n and stream.have == n and box.acked == n:
            break
    return stored


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(1, 300), loss=st.floats(0, 0.4), dup=st.floats(0, 0.3),
       cut=st.tuples(st.integers(0, 400), st.integers(0, 200)))
def test_every_record_arrives_once_and_in_order_over_a_bad_channel(seed, n, loss, dup, cut):
    stored = run_link(seed, n, loss, dup, (cut[0], cut[0] + cut[1]))
    assert stored == list(range(1, n + 1))


def test_a_gap_is_refused_and_the_edge_goes_back():
    stream = SiteStream()
    rec = [protocol.Record(i, "events", i, {}) for i in range(1, 7)]
    first = stream.accept(protocol.BatchMsg("s", "e", 6, tuple(rec[:2])))
    stream.committed(first)
    late = stream.accept(protocol.BatchMsg("s", "e", 6, tuple(rec[4:])))  # 3 and 4 were lost
    assert late.store == () and late.ack == protocol.AckMsg("e", 2, gap=True)
    again = stream.accept(protocol.BatchMsg("s", "e", 6, tuple(rec[1:4])))  # 2 again, then 3, 4
    assert [r.seq for r in again.store] == [3, 4] and again.ack.have == 4
    stream.committed(again)
    reinstalled = stream.accept(protocol.BatchMsg("s", "e2", 1, (protocol.Record(1, "events", 9, {}),)))
    assert reinstalled.new_epoch and [r.seq for r in reinstalled.store] == [1]


# --- access control and settings ---------------------------------------------------------------------
def test_the_acl_gives_each_party_only_its_own_keys():
    acl = access_control([Party(user="edge-a", role="site", sites=["site-a"]),
                          Party(user="owner", role="viewer", sites=["site-a", "site-b"]),
                          Party(user="noc", role="operator", sites=["*"])])
    assert acl["default_permission"] == "deny"
    keys = {r["id"]: (r["messages"], r["flows"], r["key_exprs"]) for r in acl["rules"]}
    assert keys["edge-a-sends"] == (["put"], ["ingress"], ["fleet/site-a/batch", "fleet/site-a/status",
                                                          "fleet/site-a/reply/*"])
    assert keys["edge-a-hears"] == (["put"], ["egress"], ["fleet/site-a/ack", "fleet/site-a/request/*"])
    assert keys["owner-hears"][2] == ["fleet/site-a/batch", "fleet/site-a/status", "fleet/site-b/batch",
                                      "fleet/site-b/status"]
    # an operator requests under its own name only, and hears only the answers to it
    assert "owner-requests" not in keys and keys["noc-requests"] == (["put"], ["ingress"], ["fleet/*/request/noc"])
    assert keys["noc-answered"] == (["put"], ["egress"], ["fleet/*/reply/noc"])
    assert not any(k.startswith("owner-") and "request" in str(v) + str(k) for k, v in keys.items())
    every_key = [k for r in acl["rules"] for k in r["key_exprs"]]
    assert all(k.startswith("fleet/") for k in every_key)  # nothing about the edge's own bus, ever


def test_settings_name_what_is_wrong(tmp_path):
    with pytest.raises(ValueError, match="needs a tls: section"):
        UplinkSettings(site_id="site-a", endpoint="tls/h:7450", user="u", password_file=tmp_path / "p")
    with pytest.raises(ValueError, match="is not an endpoint"):
        UplinkSettings(site_id="site-a", endpoint="tls://h:7450", user="u", password_file=tmp_path / "p")
    with pytest.raises(ValueError, match="String should match pattern"):
        UplinkSettings(site_id="Site/A", endpoint="tcp/h:7450", user="u", password_file=tmp_path / "p")
    with pytest.raises(ValueError, match="a site party names exactly its own site"):
        Party(user="x", role="site", sites=["*"])
    with pytest.raises(ValueError, match="listed twice"):
        ServerSettings(listen=["tcp/127.0.0.1:1"], credentials_file=tmp_path / "c",
                       parties=[Party(user="a", role="viewer", sites=["*"])] * 2)
    (tmp_path / "creds").write_text("edge-a:pw\n")
    (tmp_path / "fleet.yaml").write_text("listen: [tcp/127.0.0.1:7450]\ncredentials_file: creds\nparties:\n"
                                         "  - {user: edge-a, role: site, sites: [site-a]}\n"
                                         "  - {user: owner, role: viewer, sites: ['*']}\n")
    with pytest.raises(RemoteConfigError, match=r"no password in .* for party owner"):
        load_server_settings(tmp_path / "fleet.yaml")
    (tmp_path / "fleet.yaml").write_text("listen: [tls/127.0.0.1:7450]\ncredentials_file: creds\nparties: []\n")
    with pytest.raises(RemoteConfigError, match="parties: List should have at least 1 item"):
        load_server_settings(tmp_path / "fleet.yaml")


def test_an_aggregator_behind_what_the_edge_still_holds_resumes_at_the_floor_and_counts_the_loss():
    box = Outbox(Path(":memory:"))
    box.append([telemetry(i) for i in range(10)])
    box.set_acked(6)  # acknowledged by a database that was later restored from an older backup
    assert box.prune(older_than_ns=10**12) == 6  # the edge pruned 1..6
    sent: list[bytes] = []
    fwd = Forwarder(box, "site-a", sent.append, resend_after_s=1.0)
    stream = SiteStream(epoch=box.epoch, have=2)  # the restored database holds only 1..2
    fwd.on_link(True, 0.0)
    fwd.tick(0.0)
    batch = protocol.decode_batch(sent[-1])
    assert (batch.floor, batch.first, batch.last) == (7, 7, 10)
    verdict = stream.accept(batch)
    assert [r.seq for r in verdict.store] == [7, 8, 9, 10] and verdict.lost == 4  # 3..6 are gone for good
    stream.committed(verdict)
    fwd.on_ack(verdict.ack, 0.1)
    assert (stream.have, stream.lost, box.acked) == (10, 4, 10)
    with pytest.raises(protocol.ProtocolError, match=r"outside floor 8\.\.head 10"):
        protocol.decode_batch(protocol.encode_batch(protocol.BatchMsg("s", "e", 10, batch.records, floor=8)))
