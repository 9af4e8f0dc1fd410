"""An assistant answer on a page, with each citation opening the record or document it names.

Citations look like ``alarm 1752…``, ``decision 1752…``, ``event 12``, ``plan 1752…``,
``report daily 2025-07-15``, ``alarms.yaml#CODE`` or ``procedures/bms-thermal.md#response``.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import streamlit as st
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from energizeos.knowledge.corpus import Chunk, knowledge_chunks
from energizeos.records.models import AlarmEvent, AlarmRecord, DecisionRecord, Event, PlanRecord
from energizeos.ui import context


@cache
def _documents() -> dict[str, Chunk]:
    return {c.cite: c for c in knowledge_chunks()}


def _row(obj: Any, fields: tuple[str, ...]) -> dict[str, Any]:
    return {f: str(getattr(obj, f)) for f in fields}


def cited_record(engine: Engine, cite: str) -> tuple[str, Any]:
    """("markdown" | "json", content) for one citation; a citation that names nothing says so."""
    kind, _, ident = cite.partition(" ")
    if "#" in cite and not ident:
        chunk = _documents().get(cite)
        return ("markdown", f"**{chunk.title}**\n\n{chunk.text}") if chunk else ("markdown", f"{cite}: not found")
    if kind == "report":
        return "markdown", f"Figures of the {ident} report: open **Reports** for the period."
    if not ident.isdigit():
        return "markdown", f"{cite}: not a record id"
    number = int(ident)
    with Session(engine) as session:
        if kind == "alarm":
            alarm = session.get(AlarmRecord, number)
            events = session.exec(select(AlarmEvent).where(AlarmEvent.alarm_id == number)
                                  .order_by(AlarmEvent.time)).all()  # type: ignore[arg-type]
            if alarm is None:
                return "markdown", f"alarm {number}: not in the records"
            return "json", {**_row(alarm, ("code", "source", "priority", "state", "message", "raised_at",
                                           "cleared_at", "acked_at", "acked_by", "cause_alarm_id")),
                            "evidence": json.loads(alarm.evidence_json or "{}"),
                            "lifecycle": [f"{e.time.astimezone(context.zone()):%Y-%m-%d %H:%M:%S %Z} "
                                          f"event {e.event} {e.user}".strip() for e in events]}
        if kind == "decision":
            d = session.exec(select(DecisionRecord).where(DecisionRecord.decision_id == number)).first()
            if d is None:
                return "markdown", f"decision {number}: not in the records"
            return "json", {**_row(d, ("time", "request_source", "kind", "outcome", "requested_kw", "granted_kw",
                                       "reason_codes")), "reasons": json.loads(d.reason_texts_json)}
        if kind == "event":
            e = session.get(Event, number)
            return ("json", _row(e, ("time", "source", "kind", "message"))) if e else (
                "markdown", f"event {number}: not in the records")
        if kind == "plan":
            p = session.get(PlanRecord, number)
            return ("json", {**_row(p, ("site", "created_at", "start", "interval_s", "status")),
                             "gate": json.loads(p.gate_findings_json)}) if p else (
                "markdown", f"plan {number}: not in the records")
    return "markdown", f"{cite}: unknown kind of citation"


def show_answer(answer: str, data: dict[str, Any]) -> None:
    """The answer, how it was made, and one expander per citation showing what it cites."""
    st.markdown(answer)
    mode = data.get("mode", "")
    st.caption(f"{mode}, {data.get('latency_ms', 0):.0f} ms, "
               f"{'grounded in the records' if data.get('grounded') else 'NOT grounded'}")
    citations = data.get("citations", [])
    if citations:
        st.markdown("**Sources** (open one to see the record)")
    for cite in citations:
        with st.expander(f"[{cite}]"):
            form, content = cited_record(context.records(), cite)
            st.json(content) if form == "json" else st.markdown(content)
