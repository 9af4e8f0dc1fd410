"""The edge half of store-and-forward: what to send next, from the outbox, and when to go back.

Go-back-N. Records go out in order, at most ``window`` unacknowledged at a time. The aggregator
stores only in order and acknowledges what it holds; a refused batch (``gap``) or a silence longer
than ``resend_after_s`` sends the edge back to the first unacknowledged record, and so does a link
that comes back up. The aggregator skips what it already holds, so sending twice is harmless.
Pure apart from the outbox: the clock comes in as ``now`` (seconds), the link as ``send``.
"""

from __future__ import annotations

from collections.abc import Callable

from energizeos.remote import protocol
from energizeos.remote.outbox import Outbox


class Forwarder:
    def __init__(self, outbox: Outbox, site: str, send: Callable[[bytes], None], *, max_batch: int = 500,
                 window: int = 5000, resend_after_s: float = 3.0) -> None:
        self.outbox, self.site, self.send = outbox, site, send
        self.max_batch, self.window, self.resend_after_s = max_batch, window, resend_after_s
        self.next_seq = outbox.acked + 1
        self.link_up = False
        self._last_progress = 0.0  # when the acknowledged point last moved (or sending started)
        self._last_rewind: tuple[int, float] = (-1, 0.0)
        self.sent_records = 0
        self.rewinds = 0
        self.stale_acks = 0

    def _rewind(self, now: float) -> None:
        self.next_seq = self.outbox.acked + 1
        self._last_progress = now
        self._last_rewind = (self.outbox.acked, now)
        self.rewinds += 1

    def on_link(self, up: bool, now: float) -> None:
        if up and not self.link_up:
            self._rewind(now)  # what was in flight when the link broke may be lost
        self.link_up = up

    def on_ack(self, ack: protocol.AckMsg, now: float) -> None:
        if ack.epoch != self.outbox.epoch:
            self.stale_acks += 1  # about an older outbox of this site: nothing to do with ours
            return
        before = self.outbox.acked
        self.outbox.set_acked(ack.have)
        if self.outbox.acked != before:
            self._last_progress = now
        if self.outbox.acked < before or self.next_seq <= self.outbox.acked:
            self.next_seq = self.outbox.acked + 1  # the aggregator went back (restored), or we were behind
        if ack.gap and self.next_seq > self.outbox.acked + 1:
            # one rewind per gap point: the batches in flight behind the refused one are refused too
            at, when = self._last_rewind
            if at != self.outbox.acked or now - when >= self.resend_after_s:
                self._rewind(now)

    def tick(self, now: float) -> int:
        """Send what the window allows; returns the number of records sent."""
        if not self.link_up:
            return 0
        outstanding = self.next_seq - 1 - self.outbox.acked
        if outstanding > 0 and now - self._last_progress >= self.resend_after_s:
            self._rewind(now)  # acknowledgements stopped: assume the batches were lost
            outstanding = 0
        sent = 0
        while outstanding < self.window and self.next_seq <= self.outbox.head:
            if outstanding == 0:
                self._last_progress = now  # the resend clock starts with the first record in flight
            limit = min(self.max_batch, self.window - outstanding)
            records = self.outbox.read(self.next_seq - 1, limit)
            if not records:
                self.next_seq = self.outbox.first_seq()  # pruned under us (cannot happen unacknowledged)
                break
            self.send(protocol.encode_batch(protocol.BatchMsg(self.site, self.outbox.epoch, self.outbox.head,
                                                              tuple(records), self.outbox.first_seq())))
            self.next_seq = records[-1].seq + 1
            outstanding += len(records)
            sent += len(records)
        self.sent_records += sent
        return sent
