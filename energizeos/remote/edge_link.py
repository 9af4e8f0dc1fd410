"""One edge's end of the remote link: the outbox, the forwarder and the Zenoh client session.

The ``uplink`` node drives it from its timers; the fleet benchmark drives ten of them directly.
Nothing here blocks: puts use congestion control DROP (a batch lost to a full or dead link is
sent again by the forwarder), and acknowledgements arrive on Zenoh's thread into a queue that
``pump`` drains, so the outbox is only touched by the caller's thread.
"""

from __future__ import annotations

import queue
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import zenoh

from energizeos.remote import protocol, requests
from energizeos.remote.config import UplinkSettings
from energizeos.remote.forwarder import Forwarder
from energizeos.remote.outbox import Outbox
from energizeos.remote.zenoh_link import edge_config, link_up

NS_PER_S = 1_000_000_000


@dataclass
class LinkChange:
    up: bool
    pending: int  # records held for the aggregator at that moment


class EdgeLink:
    def __init__(self, settings: UplinkSettings, outbox_path: Path, session: zenoh.Session | None = None) -> None:
        self.settings = settings
        self.site = settings.site_id
        self.outbox = Outbox(outbox_path)
        self.session = session or zenoh.open(edge_config(settings, settings.password()))
        self._batch_pub = self.session.declare_publisher(
            protocol.key(self.site, "batch"), congestion_control=zenoh.CongestionControl.DROP,
            reliability=zenoh.Reliability.RELIABLE)
        self._status_pub = self.session.declare_publisher(
            protocol.key(self.site, "status"), congestion_control=zenoh.CongestionControl.DROP)
        self._acks: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self._ack_sub = self.session.declare_subscriber(protocol.key(self.site, "ack"),
                                                        lambda s: self._acks.put(s.payload.to_bytes()))
        # Every party's requests (the router lets each put only under its own name); the uplink decides.
        self._requests: queue.SimpleQueue[tuple[str, bytes]] = queue.SimpleQueue()
        self._request_sub = self.session.declare_subscriber(
            requests.request_key(self.site, "*"),
            lambda s: self._requests.put((str(s.key_expr), s.payload.to_bytes())))
        self.forwarder = Forwarder(self.outbox, self.site, self._batch_pub.put, max_batch=settings.max_batch_records,
                                   window=settings.window_records, resend_after_s=settings.resend_after_s)
        self._pending: list[tuple[str, int, dict[str, Any]]] = []
        self._up_since_ns: int | None = None
        self.bad_acks = 0

    def add(self, kind: str, time_ns: int, body: dict[str, Any]) -> None:
        """Queue a record; it is on disk after the next ``pump``."""
        self._pending.append((kind, time_ns, body))

    def pump(self, now_ns: int) -> LinkChange | None:
        """Store queued records, take acknowledgements, follow the link and send. Returns a change of link state."""
        if self._pending:
            self.outbox.append(self._pending)
            self._pending = []
        now = now_ns / NS_PER_S
        while True:
            try:
                payload = self._acks.get_nowait()
            except queue.Empty:
                break
            try:
                self.forwarder.on_ack(protocol.decode_ack(payload), now)
            except protocol.ProtocolError:
                self.bad_acks += 1
        up = link_up(self.session)
        change = None
        if up != self.forwarder.link_up:
            self._up_since_ns = now_ns if up else None
            change = LinkChange(up, self.outbox.pending)
        self.forwarder.on_link(up, now)
        self.forwarder.tick(now)
        return change

    def take_requests(self) -> list[tuple[str, bytes]]:
        """The requests that arrived since the last call: (key they came on, payload), oldest first."""
        out = []
        while True:
            try:
                out.append(self._requests.get_nowait())
            except queue.Empty:
                return out

    def reply(self, party: str, reply: requests.ReplyMsg) -> None:
        self.session.put(requests.reply_key(self.site, party), requests.encode_reply(reply),
                         congestion_control=zenoh.CongestionControl.DROP)

    def publish_status(self, now_ns: int) -> None:
        up_s = (now_ns - self._up_since_ns) / NS_PER_S if self._up_since_ns is not None else 0.0
        self._status_pub.put(protocol.encode_status(protocol.StatusMsg(
            self.site, self.outbox.epoch, self.outbox.head, self.outbox.acked, now_ns, up_s)))

    def prune(self, now_ns: int) -> int:
        return self.outbox.prune(now_ns - int(self.settings.retention_days * 86400 * NS_PER_S))

    def close(self) -> None:
        if self._pending:
            self.outbox.append(self._pending)
            self._pending = []
        self.outbox.close()
        self.session.close()
