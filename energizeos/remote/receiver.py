"""The aggregator half of store-and-forward: accept a site's records strictly in order.

Per site it knows the outbox ``epoch`` and ``have`` (every record up to it is stored). A batch is
trimmed of what is already held; if what is left does not start at ``have + 1`` it is refused
with a ``gap`` acknowledgement and the edge sends again from there. So the stored records of a
site are always exactly 1..have of its epoch: nothing lost, nothing twice, in order. ``have``
moves only after the caller has committed the records (``committed``).
"""

from __future__ import annotations

from dataclasses import dataclass

from energizeos.remote.protocol import AckMsg, BatchMsg, Record


@dataclass
class Verdict:
    store: tuple[Record, ...]  # new records to write, in order (may be empty)
    ack: AckMsg  # what to tell the edge once they are written
    new_epoch: bool = False  # the site started a new outbox: the caller records the change


@dataclass
class SiteStream:
    epoch: str = ""
    have: int = 0
    refused: int = 0  # batches refused for a gap
    duplicates: int = 0  # records received again and skipped

    def accept(self, batch: BatchMsg) -> Verdict:
        new_epoch = batch.epoch != self.epoch
        have = 0 if new_epoch else self.have
        fresh = tuple(r for r in batch.records if r.seq > have)
        skipped = len(batch.records) - len(fresh)
        if fresh and fresh[0].seq != have + 1:
            self.refused += 1
            return Verdict((), AckMsg(batch.epoch, have, gap=True), new_epoch)
        self.duplicates += skipped
        return Verdict(fresh, AckMsg(batch.epoch, fresh[-1].seq if fresh else have), new_epoch)

    def committed(self, verdict: Verdict) -> None:
        self.epoch = verdict.ack.epoch
        self.have = verdict.ack.have
