"""The messages between an edge and the aggregator: compact JSON on ``fleet/<site>/<leaf>``.

- ``batch`` (edge → aggregator): consecutive records ``seq``..``seq+n-1`` of the edge outbox ``epoch``.
- ``status`` (edge → aggregator, every second): the outbox head and what the edge holds as acknowledged.
- ``ack`` (aggregator → edge): every record up to ``have`` is stored; ``gap`` says a batch was refused
  because records before it are missing, so the edge goes back and sends from ``have + 1``.

Decoding is strict: anything malformed raises ``ProtocolError`` naming the field, and the caller
counts and drops it — a bad message never stops the link or writes a partial record.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

VERSION = 1
MAX_TIME_NS = 253_402_300_799 * 10**9  # 9999-12-31T23:59:59Z: the last time a database timestamp holds
KINDS = frozenset({"telemetry", "alarm_events", "events", "decisions", "commands", "report_files"})


class ProtocolError(ValueError):
    """A message that is not what the protocol says; the text names the problem."""


def key(site: str, leaf: str) -> str:
    return f"fleet/{site}/{leaf}"


def site_of(key_expr: str) -> str:
    parts = str(key_expr).split("/")
    if len(parts) < 3 or parts[0] != "fleet" or not parts[1]:
        raise ProtocolError(f"key {key_expr!r} is not fleet/<site>/<leaf>")
    return parts[1]


@dataclass(frozen=True)
class Record:
    seq: int
    kind: str  # one of KINDS
    time_ns: int  # source time at the edge
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {"seq": self.seq, "kind": self.kind, "t": self.time_ns, "body": self.body}


@dataclass(frozen=True)
class BatchMsg:
    site: str
    epoch: str
    head: int
    records: tuple[Record, ...]
    floor: int = 1  # the oldest record the edge still holds (older ones were acknowledged and pruned)

    @property
    def first(self) -> int:
        return self.records[0].seq

    @property
    def last(self) -> int:
        return self.records[-1].seq


@dataclass(frozen=True)
class StatusMsg:
    site: str
    epoch: str
    head: int
    acked: int
    time_ns: int
    link_up_s: float  # how long the current link has been up (0 at the first status after a reconnect)


@dataclass(frozen=True)
class AckMsg:
    epoch: str
    have: int
    gap: bool = False


def dumps_message(data: dict[str, Any]) -> bytes:
    """Compact JSON with the protocol version (every message on ``fleet/...``, requests included)."""
    return json.dumps({"v": VERSION, **data}, separators=(",", ":"), allow_nan=False).encode()


def encode_batch(msg: BatchMsg) -> bytes:
    return dumps_message({"site": msg.site, "epoch": msg.epoch, "head": msg.head, "floor": msg.floor,
                   "records": [r.to_json() for r in msg.records]})


def encode_status(msg: StatusMsg) -> bytes:
    return dumps_message({"site": msg.site, "epoch": msg.epoch, "head": msg.head, "acked": msg.acked,
                   "t": msg.time_ns, "link_up_s": msg.link_up_s})


def encode_ack(msg: AckMsg) -> bytes:
    return dumps_message({"epoch": msg.epoch, "have": msg.have, "gap": msg.gap})


def load_message(payload: bytes, what: str) -> dict[str, Any]:
    """The JSON object of a message of this protocol version; ``ProtocolError`` naming ``what`` otherwise."""
    try:
        data = json.loads(bytes(payload))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"{what}: not JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise ProtocolError(f"{what}: expected an object, got {type(data).__name__}")
    if data.get("v") != VERSION:
        raise ProtocolError(f"{what}: protocol version {data.get('v')!r}, this end speaks {VERSION}")
    return data


def _field(data: dict[str, Any], name: str, kind: type | tuple[type, ...], what: str) -> Any:
    value = data.get(name)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise ProtocolError(f"{what}: field {name!r} missing or not {getattr(kind, '__name__', kind)}")
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        raise ProtocolError(f"{what}: field {name!r} is negative ({value})")
    return value


def decode_batch(payload: bytes) -> BatchMsg:
    data = load_message(payload, "batch")
    site, epoch, head = _field(data, "site", str, "batch"), _field(data, "epoch", str, "batch"), \
        _field(data, "head", int, "batch")
    floor = _field(data, "floor", int, "batch")
    raw = _field(data, "records", list, "batch")
    if not raw:
        raise ProtocolError("batch: no records")
    records = []
    for i, item in enumerate(raw):
        where = f"batch record {i}"
        if not isinstance(item, dict):
            raise ProtocolError(f"{where}: not an object")
        record = Record(_field(item, "seq", int, where), _field(item, "kind", str, where),
                        _field(item, "t", int, where), _field(item, "body", dict, where))
        if record.kind not in KINDS:
            raise ProtocolError(f"{where}: unknown kind {record.kind!r}")
        if record.time_ns > MAX_TIME_NS:
            raise ProtocolError(f"{where}: time {record.time_ns} ns is past the year 9999")
        if records and record.seq != records[-1].seq + 1:
            raise ProtocolError(f"{where}: seq {record.seq} does not follow {records[-1].seq}")
        records.append(record)
    if records[0].seq < max(1, floor) or records[-1].seq > head:
        raise ProtocolError(f"batch: records {records[0].seq}..{records[-1].seq} outside floor {floor}..head {head}")
    return BatchMsg(site, epoch, head, tuple(records), floor)


def decode_status(payload: bytes) -> StatusMsg:
    data = load_message(payload, "status")
    link_up = data.get("link_up_s", 0.0)
    if not isinstance(link_up, int | float) or isinstance(link_up, bool):
        raise ProtocolError("status: field 'link_up_s' not a number")
    return StatusMsg(_field(data, "site", str, "status"), _field(data, "epoch", str, "status"),
                     _field(data, "head", int, "status"), _field(data, "acked", int, "status"),
                     _field(data, "t", int, "status"), float(link_up))


def decode_ack(payload: bytes) -> AckMsg:
    data = load_message(payload, "ack")
    gap = data.get("gap", False)
    if not isinstance(gap, bool):
        raise ProtocolError("ack: field 'gap' not a boolean")
    return AckMsg(_field(data, "epoch", str, "ack"), _field(data, "have", int, "ack"), gap)
