"""Messages to record rows (pure): status messages become telemetry points, commands, decisions and
alarm transitions become their own rows, interlock and graph-health changes become events.

Every row carries its time as integer nanoseconds (``time_ns``) from the message header, and a
natural key that makes a second write of the same message a no-op."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Callable
from functools import cache
from typing import Any

import numpy as np

from energizeos_msgs.msg import (
    Alarm,
    ArbiterDecision,
    BmsStatus,
    BreakerCommand,
    DispatchRequest,
    EmsEvent,
    GraphHealth,
    InterlockState,
    MeterReading,
    PcsCommand,
    PcsStatus,
    RelayStatus,
)

BREAKER_ACTIONS = {BreakerCommand.ACTION_OPEN: "open", BreakerCommand.ACTION_CLOSE: "close",
                   BreakerCommand.ACTION_RESET_LOCKOUT: "reset"}
SKIP_FIELDS = {"header", "source", "quality"}


def stamp_ns(msg: Any) -> int:
    stamp = msg.header.stamp
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


@cache
def _numeric_fields(cls: type) -> tuple[tuple[str, bool], ...]:
    """(field, is_array) for every number, bool or numeric array of a status message."""
    out = []
    sample = cls()
    for f in dataclasses.fields(cls):
        if f.name in SKIP_FIELDS:
            continue
        value = getattr(sample, f.name)
        if isinstance(value, np.ndarray) and value.dtype.kind in "fiub":
            out.append((f.name, True))
        elif isinstance(value, bool | int | float):
            out.append((f.name, False))
    return tuple(out)


def _number(value: Any) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None  # NaN means "no value": stored as a gap


def telemetry_rows(topic: str, msg: Any) -> list[dict[str, Any]]:
    """One row per numeric field; array elements get their index: ``/bess/bms/status/rack_temp_max_c[2]``."""
    t = stamp_ns(msg)
    quality = int(getattr(msg, "quality", 0))
    rows = []
    for name, is_array in _numeric_fields(type(msg)):
        value = getattr(msg, name)
        if is_array:
            for i, element in enumerate(value):
                rows.append({"point": f"{topic}/{name}[{i}]", "time_ns": t, "value": _number(element),
                             "quality": quality})
        else:
            rows.append({"point": f"{topic}/{name}", "time_ns": t, "value": _number(value), "quality": quality})
    return rows


def pcs_command_row(msg: PcsCommand) -> dict[str, Any]:
    t = stamp_ns(msg)
    return {"key": f"pcs:{msg.decision_id}@{t}", "time_ns": t, "target": "pcs", "source": msg.source,
            "decision_id": int(msg.decision_id), "enable": bool(msg.enable), "p_kw": float(msg.p_kw),
            "q_kvar": float(msg.q_kvar), "action": "", "requested_by": ""}


def breaker_command_row(msg: BreakerCommand) -> dict[str, Any]:
    t = stamp_ns(msg)
    return {"key": f"breaker:{msg.decision_id}@{t}", "time_ns": t, "target": "breaker", "source": msg.source,
            "decision_id": int(msg.decision_id), "enable": False, "p_kw": 0.0, "q_kvar": 0.0,
            "action": BREAKER_ACTIONS.get(msg.action, f"unknown({msg.action})"), "requested_by": msg.requested_by}


def decision_row(msg: ArbiterDecision) -> dict[str, Any]:
    t = stamp_ns(msg)
    return {"key": f"{msg.decision_id}@{t}", "time_ns": t, "decision_id": int(msg.decision_id),
            "request_id": int(msg.request_id), "request_source": msg.request_source, "kind": int(msg.kind),
            "outcome": int(msg.outcome), "requested_kw": _finite_or_zero(msg.requested_kw),
            "granted_kw": float(msg.granted_kw), "reason_codes": ",".join(msg.reason_codes),
            "reason_texts_json": json.dumps(list(msg.reason_texts), ensure_ascii=False)}


def _finite_or_zero(value: float) -> float:
    return float(value) if math.isfinite(value) else 0.0  # an invalid request is kept in its reason text


def alarm_event_row(msg: Alarm) -> dict[str, Any]:
    t = stamp_ns(msg)
    return {"key": f"{msg.alarm_id}:{msg.event}@{t}", "time_ns": t, "alarm_id": int(msg.alarm_id), "code": msg.code,
            "source": msg.source, "priority": int(msg.priority), "event": int(msg.event), "state": int(msg.state),
            "message": msg.message, "evidence_json": msg.evidence_json or "{}",
            "cause_alarm_id": int(msg.cause_alarm_id) or None, "user": msg.user}


def interlock_event_row(msg: InterlockState, previous: InterlockState | None) -> dict[str, Any] | None:
    """An event when any permissive (or the overall result) changes; None when nothing did."""
    now = {p.name: p.ok for p in msg.permissives}
    before = {p.name: p.ok for p in previous.permissives} if previous else {}
    changed = sorted(n for n in now if before.get(n) != now[n])
    if previous is not None and not changed and previous.dispatch_permitted == msg.dispatch_permitted \
            and previous.close_permitted == msg.close_permitted:
        return None
    t = stamp_ns(msg)
    dropped = [n for n in changed if not now[n]]
    restored = [n for n in changed if now[n]]
    text = (f"dispatch {'permitted' if msg.dispatch_permitted else 'blocked'}, close "
            f"{'permitted' if msg.close_permitted else 'blocked'}; dropped: {', '.join(dropped) or '-'}; "
            f"restored: {', '.join(restored) or '-'}")
    data = {"dispatch_permitted": msg.dispatch_permitted, "close_permitted": msg.close_permitted,
            "dropped": dropped, "restored": restored,
            "permissives": {p.name: {"ok": p.ok, "value": p.value, "age_s": p.age_s} for p in msg.permissives}}
    return {"key": f"interlock@{t}", "time_ns": t, "source": "safety_arbiter", "kind": "interlock", "message": text,
            "data_json": json.dumps(data, sort_keys=True)}


def graph_event_row(msg: GraphHealth, previous: GraphHealth | None) -> dict[str, Any] | None:
    if previous is not None and list(previous.missing_nodes) == list(msg.missing_nodes):
        return None
    t = stamp_ns(msg)
    text = "all expected nodes alive" if msg.healthy else f"nodes missing: {', '.join(msg.missing_nodes)}"
    return {"key": f"graph@{t}", "time_ns": t, "source": "site_monitor", "kind": "graph_health", "message": text,
            "data_json": json.dumps({"missing": list(msg.missing_nodes), "alive": list(msg.alive_nodes)})}


def ems_event_row(msg: EmsEvent) -> dict[str, Any]:
    t = stamp_ns(msg)
    data = json.loads(msg.data_json) if msg.data_json.strip() else {}
    if msg.user:
        data["user"] = msg.user
    return {"key": f"{msg.source}:{msg.kind}@{t}", "time_ns": t, "source": msg.source, "kind": msg.kind,
            "message": msg.message, "data_json": json.dumps(data, sort_keys=True)}


# What the historian records and the uplink forwards, topic by topic.
TELEMETRY_TOPICS = {"/site/poi/meter": MeterReading, "/site/poi/relay": RelayStatus,
                    "/bess/bms/status": BmsStatus, "/bess/pcs/status": PcsStatus,
                    "/ems/dispatch/request": DispatchRequest}
ALARM_TOPIC = "/ems/alarms"
# topic, message type, record table, row function, subscription depth
RECORD_TOPICS: tuple[tuple[str, type, str, Callable[[Any], dict[str, Any]], int], ...] = (
    ("/bess/pcs/command", PcsCommand, "commands", pcs_command_row, 50),
    ("/site/poi/relay/command", BreakerCommand, "commands", breaker_command_row, 50),
    ("/ems/arbiter/decision", ArbiterDecision, "decisions", decision_row, 100),
    (ALARM_TOPIC, Alarm, "alarm_events", alarm_event_row, 200),
)
