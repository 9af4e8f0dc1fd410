"""Scoring the assistant on the evaluation set (eval/incident_day.yaml) over the recorded incident day:
retrieval hit@3 per retrieval mode, answer fact-recall and citation recall, ungrounded answers (the
guard run on every answer), "no record" answers where the records are silent, and latency."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import yaml
from sqlmodel import Session, select

from energizeos.knowledge.assistant import Assistant, evidence_texts, retrieval_query
from energizeos.knowledge.compose import NO_RECORD
from energizeos.knowledge.corpus import KNOWLEDGE_DIR
from energizeos.knowledge.grounding import ungrounded
from energizeos.knowledge.index import MODES
from energizeos.records.db import make_engine
from energizeos.records.models import AlarmEvent
from energizeos_msgs.msg import Alarm

EVAL_SET = KNOWLEDGE_DIR / "eval" / "incident_day.yaml"
TZ = "America/Los_Angeles"


def load_set(path: Path = EVAL_SET) -> dict:
    data = yaml.safe_load(path.read_text())
    ids = [q["id"] for q in data["questions"]]
    if len(ids) != len(set(ids)):
        raise ValueError(f"{path}: question ids repeat")
    return data


def resolve(cite: str, engine) -> set[str]:
    """"alarm:CODE" -> the ids of every raise of that code in the records; anything else as it is."""
    if not cite.startswith("alarm:"):
        return {cite}
    with Session(engine) as session:
        rows = session.exec(select(AlarmEvent).where(AlarmEvent.code == cite[6:],
                                                     AlarmEvent.event == Alarm.EVENT_RAISE)).all()
    return {f"alarm {row.alarm_id}" for row in rows} or {f"alarm ({cite[6:]} never raised)"}


def cited(expected: set[str], citations: list[str]) -> bool:
    for one in expected:
        if one.endswith("*") and any(c.startswith(one[:-1]) for c in citations):
            return True
        if one in citations:
            return True
    return False


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def run_evaluation(db_url: str | None, index_dir: Path, workdir: Path,
                   progress: Callable[[str], None] | None = None) -> dict:
    from energizeos.reports.figures import ReportSettings

    say = progress or (lambda _msg: None)
    if db_url is None:
        from energizeos.knowledge.incident_day import record_incident_day

        say("recording the incident day (the whole graph in simulated time)…")
        directory = workdir / "incident-day"
        directory.mkdir(parents=True, exist_ok=True)
        db_url = record_incident_day(directory).db_url
    engine = make_engine(db_url)
    data = load_set()
    now = datetime.fromisoformat(data["now"])
    say("building the retrieval index…")
    assistant = Assistant(engine, TZ, index_dir, report_settings=ReportSettings(timezone=TZ))
    assistant.ask("What does RELAY_TRIP mean?", now)  # warm: model and index loaded before timing
    rows = []
    for item in data["questions"]:
        started = time.perf_counter()
        state = assistant.prepare(item["q"], now)
        answer = assistant.respond(state, started)
        latency = (time.perf_counter() - started) * 1000.0
        text_low = answer.answer.lower()
        facts = item.get("facts", [])
        missing_facts = [f for f in facts if str(f).lower() not in text_low]
        expected_cites = [resolve(c, engine) for c in item.get("cites", [])]
        missing_cites = [sorted(c)[0] for c in expected_cites if not cited(c, answer.citations)]
        query = retrieval_query(item["q"], state["facts"])
        hits = {mode: [c.cite for c in assistant.retriever.search(query, 3, mode)] for mode in MODES}
        allowed = {e.cite for e in state["facts"].evidence} | {d.cite for d in state["docs"]}
        problems = ungrounded(answer.answer, evidence_texts(state["facts"], state["docs"]), allowed)
        no_record_ok = answer.answer.startswith(NO_RECORD) == bool(item.get("no_record"))
        rows.append({"id": item["id"], "question": item["q"], "latency_ms": round(latency, 1),
                     "facts": len(facts), "missing_facts": missing_facts, "cites": len(expected_cites),
                     "missing_citations": missing_cites, "retrieve": item.get("retrieve"),
                     "hit_at_3": {m: item.get("retrieve") in hits[m] for m in MODES} if item.get("retrieve") else None,
                     "top3": hits["hybrid"], "ungrounded": problems, "no_record_ok": no_record_ok,
                     "answer": answer.answer})
    scored = [r for r in rows if r["hit_at_3"] is not None]
    total_facts = sum(r["facts"] for r in rows)
    total_cites = sum(r["cites"] for r in rows)
    latencies = [r["latency_ms"] for r in rows]
    summary = {
        "questions": len(rows),
        **{("hit_at_3" if m == "hybrid" else f"hit_at_3_{m}"): sum(r["hit_at_3"][m] for r in scored) / len(scored)
           for m in MODES},
        "fact_recall": 1 - sum(len(r["missing_facts"]) for r in rows) / total_facts,
        "citation_recall": 1 - sum(len(r["missing_citations"]) for r in rows) / total_cites,
        "ungrounded_answers": sum(bool(r["ungrounded"]) for r in rows),
        "no_record_correct": sum(r["no_record_ok"] for r in rows),
        "latency_p50_ms": statistics.median(latencies), "latency_p95_ms": percentile(latencies, 95),
    }
    return {"summary": summary, "questions": rows}
