"""The aggregator half of store-and-forward: accept a site's records strictly in order.

Per site it knows the outbox ``epoch`` and ``have`` (every record up to it is stored). A batch is
trimmed of what is already held; if what is left does not start at ``have + 1`` it is refused
with a ``gap`` acknowledgement and the edge sends again from there. So the stored records of a
site are always exactly 1..have of its epoch: nothing lost, nothing twice, in order. ``have``
moves only after the caller has committed the records (``committed``).

One exception, counted in ``lost``: records the edge no longer holds (below the batch's ``floor``:
acknowledged once, then pruned at the edge) cannot come again — say the aggregator's database was
restored from an old backup. The stream then resumes at the floor instead of waiting for ever.
"""

from __future__ import annotations

from dataclasses import dataclass

from energizeos.remote.protocol import AckMsg, BatchMsg, Record


@dataclass
class Verdict:
    store: tuple[Record, ...]  # new records to write, in order (may be empty)
    ack: AckMsg  # what to tell the edge once they are written
    new_epoch: bool = False  # the site started a new outbox: the caller records the change
    lost: int = 0  # records skipped because the edge no longer holds them (see the module note)


@dataclass
class SiteStream:
    epoch: str = ""
    have: int = 0
    refused: int = 0  # batches refused for a gap
    duplicates: int = 0  # records received again and skipped
    lost: int = 0  # records the edge had pruned before they were stored here

    def accept(self, batch: BatchMsg) -> Verdict:
        new_epoch = batch.epoch != self.epoch
        have = 0 if new_epoch else self.have
        lost = max(0, batch.floor - 1 - have)
        have += lost
        fresh = tuple(r for r in batch.records if r.seq > have)
        skipped = len(batch.records) - len(fresh)
        if fresh and fresh[0].seq != have + 1:
            self.refused += 1
            return Verdict((), AckMsg(batch.epoch, have, gap=True), new_epoch)
        self.duplicates += skipped
        return Verdict(fresh, AckMsg(batch.epoch, fresh[-1].seq if fresh else have), new_epoch, lost)

    def committed(self, verdict: Verdict) -> None:
        self.epoch = verdict.ack.epoch
        self.have = verdict.ack.have
        self.lost += verdict.lost
