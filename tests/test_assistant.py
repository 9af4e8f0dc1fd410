"""The alarm and performance assistant over the recorded incident day: the evaluation set against its
goals, the deterministic answers, the LLM path against a local OpenAI-compatible server (faithful,
unfaithful, down, streamed), the grounding guard, the assistant node's service and `energizeos ask`."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from energizeos.knowledge.assistant import Assistant, LlmConfig
from energizeos.knowledge.catalogue import load_catalogue
from energizeos.knowledge.compose import NO_RECORD
from energizeos.knowledge.evaluate import run_evaluation
from energizeos.knowledge.facts import parse
from energizeos.knowledge.grounding import ungrounded
from energizeos.knowledge.incident_day import record_incident_day
from energizeos.records.db import make_engine
from energizeos.reports.figures import ReportSettings
from tests.openai_stub import OpenAIStub

TZ = "America/Los_Angeles"
NOW = datetime(2025, 7, 15, 19, 0, tzinfo=ZoneInfo(TZ))
ENERGIZEOS = str(Path(sys.executable).with_name("energizeos"))
OVERTEMP_Q = "Why did the battery stop discharging at 16:24?"


@pytest.fixture(scope="module")
def day(tmp_path_factory):
    """The incident day, recorded once by the whole graph in simulated time (about 80 s)."""
    return record_incident_day(tmp_path_factory.mktemp("incident-day"))


@pytest.fixture(scope="module")
def index_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("index")


@pytest.fixture(scope="module")
def offline(day, index_dir):
    return Assistant(make_engine(day.db_url), TZ, index_dir, report_settings=ReportSettings(timezone=TZ))


@pytest.fixture
def stub():
    server = OpenAIStub()
    yield server
    server.close()


def with_llm(day, index_dir, base_url: str, timeout_s: float = 5.0) -> Assistant:
    return Assistant(make_engine(day.db_url), TZ, index_dir, LlmConfig(base_url, "stub-model", timeout_s=timeout_s),
                     report_settings=ReportSettings(timezone=TZ))


def test_the_evaluation_set_meets_its_goals(day, index_dir, tmp_path):
    result = run_evaluation(day.db_url, index_dir, tmp_path)
    s = result["summary"]
    assert s["questions"] >= 40
    assert s["hit_at_3"] >= 0.95 and s["fact_recall"] >= 0.9, s
    assert s["ungrounded_answers"] == 0 and s["no_record_correct"] == s["questions"], s
    assert s["hit_at_3"] >= max(s["hit_at_3_dense"], s["hit_at_3_bm25"])  # the fusion earns its keep


def test_an_offline_answer_says_what_fired_why_how_critical_and_what_to_do(offline):
    answer = offline.ask(OVERTEMP_Q, NOW)
    text = answer.answer
    assert answer.mode == "offline" and answer.grounded
    for part in ("What fired:", "Why:", "How critical: critical", "What to do:"):
        assert part in text
    assert "BMS_RACK_OVERTEMP" in text and "rack 3" in text and "BMS_NOT_READY" in text
    assert any(c.startswith("alarm ") for c in answer.citations)
    assert any(c.startswith("decision ") for c in answer.citations)
    assert "procedures/bms-thermal.md#response" in answer.citations
    for c in answer.citations:
        assert f"[{c}]" in text  # every citation is where the fact it supports is


def test_nothing_in_the_records_gets_no_guess(offline):
    for q in ("Did the inverter catch fire yesterday?", "What does NOT_A_REAL_CODE mean?",
              "Why did the battery stop discharging at 09:00?"):
        answer = offline.ask(q, NOW)
        assert answer.answer.startswith(NO_RECORD) and answer.citations == []


def test_a_faithful_llm_answer_is_shown_with_its_citations(day, index_dir, stub):
    assistant = with_llm(day, index_dir, stub.base_url)
    state = assistant.prepare(OVERTEMP_Q, NOW)
    root = state["facts"].fired[0]
    stub.reply = (f"Rack 3 overheated: BMS_RACK_OVERTEMP was raised at 16:24:26 [{root.cite}], the BMS dropped its "
                  "permissive and the arbiter refused dispatch. It is critical. Follow the thermal procedure "
                  "[procedures/bms-thermal.md#response].")
    answer = assistant.ask(OVERTEMP_Q, NOW)
    assert answer.mode == "llm" and answer.answer == stub.reply and answer.grounded
    assert set(answer.citations) == {root.cite, "procedures/bms-thermal.md#response"}
    sent = stub.requests[-1]["body"]
    assert sent["model"] == "stub-model" and root.cite in sent["messages"][-1]["content"]  # the evidence went out


@pytest.mark.parametrize("invented", [
    "the rack reached 61.2 C",  # a number in no record
    "it was raised at 16:31",  # a time in no record
    "{absent_code} fired too",  # an alarm code in no record or document it was given
    "see [alarm 999]",  # an id it was not given
])
def test_an_unfaithful_llm_answer_is_replaced_and_logged(day, index_dir, stub, caplog, invented):
    from energizeos.knowledge.assistant import evidence_texts

    assistant = with_llm(day, index_dir, stub.base_url)
    state = assistant.prepare(OVERTEMP_Q, NOW)
    given = "\n".join(evidence_texts(state["facts"], state["docs"]))
    absent_code = next(a.code for a in load_catalogue().alarms if a.code not in given)
    stub.reply = f"BMS_RACK_OVERTEMP on rack 3 at 16:24:26; {invented.format(absent_code=absent_code)}."
    with caplog.at_level(logging.WARNING, logger="energizeos.assistant"):
        answer = assistant.ask(OVERTEMP_Q, NOW)
    assert answer.mode == "llm-rejected" and answer.answer == state["draft"].text
    assert answer.rejected and any("grounding guard" in r.message for r in caplog.records)


def test_an_endpoint_that_is_down_or_slow_leaves_the_deterministic_answer(day, index_dir, stub):
    slow = with_llm(day, index_dir, stub.base_url, timeout_s=0.5)
    stub.delay_s, stub.reply = 2.0, "too late"
    answer = slow.ask(OVERTEMP_Q, NOW)
    assert answer.mode == "llm-failed" and "What fired:" in answer.answer
    gone = with_llm(day, index_dir, "http://127.0.0.1:9/v1")  # discard port: nothing listens
    assert gone.ask(OVERTEMP_Q, NOW).mode == "llm-failed"


def test_streaming_passes_the_text_as_it_comes_and_a_rejection_replaces_it(day, index_dir, stub):
    assistant = with_llm(day, index_dir, stub.base_url)
    stub.reply = "BMS_RACK_OVERTEMP was raised at 16:24:26 on rack 3. It is critical."
    pieces: list[str] = []
    answer = assistant.ask(OVERTEMP_Q, NOW, on_text=pieces.append)
    assert len(pieces) > 3 and "".join(pieces) == stub.reply == answer.answer and answer.mode == "llm"
    stub.reply = "BMS_RACK_OVERTEMP was raised at 16:29:59."
    pieces.clear()
    answer = assistant.ask(OVERTEMP_Q, NOW, on_text=pieces.append)
    assert "".join(pieces) == stub.reply  # streamed, then replaced by the checked answer
    assert answer.mode == "llm-rejected" and "What fired:" in answer.answer


def test_the_guard_checks_numbers_times_codes_and_ids():
    evidence = ["[alarm 7] BMS_RACK_OVERTEMP raised at 2025-07-15 16:24:33: rack 3 module temperature 56.04 C"]
    allowed = {"alarm 7"}
    assert ungrounded("BMS_RACK_OVERTEMP at 16:24 on rack 3: 56.0 C [alarm 7].\n1. Cool it.", evidence, allowed) == []
    assert ungrounded("57 C", evidence, allowed) == ["number 57 is in no evidence"]
    assert ungrounded("at 16:25", evidence, allowed) == ["time 16:25 is in no evidence"]
    assert ungrounded("RELAY_TRIP", evidence, allowed) == ["alarm code RELAY_TRIP is in no evidence"]
    assert ungrounded("[alarm 8]", evidence, allowed) == ["cites [alarm 8], which it was not given"]


def test_questions_are_read_for_codes_times_days_racks_and_intent():
    catalogue = load_catalogue()
    tz = ZoneInfo(TZ)
    q = parse("Why did the battery stop discharging at 14:02 yesterday?", catalogue, NOW, tz)
    assert q.intent == "why-at" and q.at == datetime(2025, 7, 14, 14, 2, tzinfo=tz)
    q = parse("Has rack 3 overheated before?", catalogue, NOW, tz)
    assert q.intent == "history" and q.rack == 3 and q.codes[0] == "BMS_RACK_OVERTEMP"
    assert parse("How much did we save on demand charges last month?", catalogue, NOW, tz).month == "2025-06"
    assert parse("What does RELAY_TRIP mean?", catalogue, NOW, tz).intent == "meaning"
    assert parse("What does FOO_BAR mean?", catalogue, NOW, tz).intent == "unknown-code"


def test_the_assistant_node_answers_on_its_service(day, index_dir):
    from energizeos.nodes.assistant import AssistantNode
    from energizeos.runtime import Node, SimExecutor
    from energizeos_msgs.srv import AskAssistant

    ex = SimExecutor(start=NOW)
    AssistantNode(executor=ex, parameter_overrides={"db_url": day.db_url, "index_dir": str(index_dir)})
    client = Node("asker", executor=ex).create_client(AskAssistant, "/ems/assistant/ask")
    response = client.call(AskAssistant.Request(question="What happened at 17:30?", user="olga"))
    assert response.error == "" and response.grounded and response.mode == "offline"
    assert "RELAY_TRIP" in response.answer and any(c.startswith("alarm ") for c in response.citations)
    empty = client.call(AskAssistant.Request(question="  ", user="olga"))
    assert "empty" in empty.error and empty.answer == ""


def test_ask_command_prints_json(day, index_dir):
    run = subprocess.run([ENERGIZEOS, "ask", "Has rack 3 overheated before?", "--json", "--db", day.db_url,
                          "--index", str(index_dir), "--now", NOW.isoformat()],
                         capture_output=True, text=True, timeout=180, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert set(result) >= {"answer", "citations", "grounded", "mode", "latency_ms"}
    assert result["grounded"] and result["mode"] == "offline" and "BMS_RACK_OVERTEMP" in result["answer"]
    bad = subprocess.run([ENERGIZEOS, "ask", "x", "--now", "yesterday", "--db", day.db_url],
                         capture_output=True, text=True, timeout=180)
    assert bad.returncode == 2 and "--now" in bad.stderr


def test_incidents_are_indexed_once_and_plain_words_find_the_alarm_kind(day, index_dir, offline):
    first = offline.refresh_incidents() + offline.retriever.add_incidents([])
    again = Assistant(make_engine(day.db_url), TZ, index_dir, report_settings=ReportSettings(timezone=TZ))
    assert again.refresh_incidents() == 0 and len(again.retriever.incident_chunks) >= first  # persisted, no doubles
    similar = again.retriever.similar_incidents("the battery rack got too hot", 3)
    assert similar and similar[0].codes[0] in ("BMS_RACK_OVERTEMP", "BMS_RACK_TEMP_HIGH")
    assert again.ask("Has the PCS had a ground fault before?", NOW).answer.startswith(NO_RECORD)
    opened = again.ask("Has the breaker opened before?", NOW)
    assert "RELAY_TRIP" in opened.answer and "1 occurrence(s)" in opened.answer
