"""The alarm and performance assistant: a LangChain runnable pipeline — read the question, gather the
facts from the records, retrieve catalogue and procedure text, then compose the answer. Offline (the
default) the deterministic composer writes it. With an LLM (any OpenAI-compatible endpoint, through
langchain_openai and the official openai client) the model phrases it from the same evidence, and the
grounding guard checks every number, time, code and id it wrote; an ungrounded answer is replaced by
the deterministic one and the rejection is logged. The assistant explains; it never commands."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from langchain_core.runnables import RunnableLambda, RunnablePassthrough
from sqlalchemy.engine import Engine

from energizeos.knowledge.catalogue import load_catalogue
from energizeos.knowledge.compose import NO_RECORD, Draft, compose
from energizeos.knowledge.corpus import Chunk, knowledge_chunks
from energizeos.knowledge.facts import Evidence, FactFinder, Facts, parse
from energizeos.knowledge.grounding import ungrounded
from energizeos.knowledge.index import Retriever

log = logging.getLogger("energizeos.assistant")
SYSTEM_PROMPT = """You explain alarms and performance of a battery energy storage site to its operators.
Use ONLY the evidence below. Structure: what fired, why, how critical, what to do.
Cite every record and document you use with its id in square brackets exactly as given, e.g. [alarm 12] or
[procedures/bms-thermal.md#response]. Write no number, time, alarm code or id that is not in the evidence.
If the evidence does not answer the question, say: I don't have a record of that.
You never command the plant: operators act through the EMS user interface."""


@dataclass(frozen=True)
class LlmConfig:
    base_url: str = ""  # empty: offline (the deterministic composer)
    model: str = ""
    api_key_env: str = "ENERGIZEOS_LLM_API_KEY"  # the key is read from this environment variable, never a file
    timeout_s: float = 20.0

    @property
    def enabled(self) -> bool:
        return bool(self.base_url and self.model)


@dataclass
class Answer:
    question: str
    answer: str
    citations: list[str]
    grounded: bool
    mode: str  # offline | llm | llm-rejected | llm-failed
    latency_ms: float
    rejected: list[str] = field(default_factory=list)  # why an LLM answer was not shown

    def to_json(self) -> dict:
        return asdict(self)


def retrieval_query(text: str, facts: Facts) -> str:
    """The question, plus the code the facts are about (the root, most critical alarm) to steer retrieval."""
    return " ".join([text, *facts.codes[:1]])


def evidence_texts(facts: Facts, docs: list[Chunk]) -> list[str]:
    return ([f"[{e.cite}] {e.text}" for e in facts.evidence]
            + [f"[{d.cite}] {d.title}\n{d.text}" for d in docs])


class Assistant:
    def __init__(self, engine: Engine, tz: str, index_dir: Path, llm: LlmConfig | None = None,
                 report_settings=None, retrieval: str = "hybrid", k: int = 3) -> None:
        self.catalogue = load_catalogue()
        self.retriever = Retriever(knowledge_chunks(), index_dir)
        self.finder = FactFinder(engine, self.catalogue, tz, report_settings)
        self.tz, self.llm, self.retrieval, self.k = tz, llm or LlmConfig(), retrieval, k
        self.engine = engine
        self._incidents_after = 0  # the last alarm_events row indexed
        self.chain = (RunnablePassthrough.assign(question=RunnableLambda(self._parse))
                      | RunnablePassthrough.assign(facts=RunnableLambda(self._gather))
                      | RunnablePassthrough.assign(docs=RunnableLambda(self._retrieve))
                      | RunnablePassthrough.assign(draft=RunnableLambda(self._compose)))

    # --- the pipeline's steps -------------------------------------------------------------------------
    def _parse(self, state: dict):
        from zoneinfo import ZoneInfo

        return parse(state["text"], self.catalogue, state["now"], ZoneInfo(self.tz))

    def _gather(self, state: dict) -> Facts:
        q = state["question"]
        if q.intent == "history" and not q.codes:  # "has this happened before?" in plain words
            code = self.retriever.catalogue_code(state["text"])
            q.codes = [code] if code else []
        facts = self.finder.gather(q, state["now"])
        if q.intent == "history" and facts.codes:  # past incidents of that kind, from the incident index
            self.refresh_incidents()
            known = {e.cite for e in facts.evidence}
            for chunk in self.retriever.similar_incidents(state["text"], 3, facts.codes[0]):
                if chunk.cite not in known:
                    facts.history.append(Evidence(chunk.cite, f"similar past incident: {chunk.title}: {chunk.text}"))
        return facts

    def refresh_incidents(self) -> int:
        """Index the alarm occurrences recorded since the last call."""
        from energizeos.knowledge.corpus import incident_chunks

        chunks = incident_chunks(self.engine, self.tz, self._incidents_after)
        if chunks:
            self._incidents_after = max(c.extra["row_id"] for c in chunks)
        return self.retriever.add_incidents(chunks)

    def _retrieve(self, state: dict) -> list[Chunk]:
        """Catalogue and procedure text for the question, steered by the codes the facts involve; the
        catalogue entry of the main code and its procedure's response always come along (the answer's
        "what to do" quotes them)."""
        facts: Facts = state["facts"]
        docs = self.retriever.search(retrieval_query(state["text"], facts), self.k, self.retrieval)
        if facts.codes:
            code = facts.codes[0]
            wanted = [f"alarms.yaml#{code}", *(f"{r.split('#')[0]}#response" for r in
                                              self.catalogue.by_code[code].references if r.startswith("procedures/"))]
            docs += [self.retriever.by_cite[c] for c in wanted if c in self.retriever.by_cite and
                     c not in {d.cite for d in docs}]
        return docs

    def _compose(self, state: dict) -> Draft:
        return compose(state["facts"], state["docs"], self.catalogue)

    # --- asking ---------------------------------------------------------------------------------------
    def prepare(self, text: str, now: datetime | None = None) -> dict:
        if not text.strip():
            raise ValueError("the question is empty")
        return self.chain.invoke({"text": text.strip(), "now": now or datetime.now(UTC)})

    def ask(self, text: str, now: datetime | None = None, on_text: Callable[[str], None] | None = None) -> Answer:
        started = time.perf_counter()
        return self.respond(self.prepare(text, now), started, on_text)

    def respond(self, state: dict, started: float, on_text: Callable[[str], None] | None = None) -> Answer:
        """The answer from a prepared state: the deterministic draft, or the LLM's if it is grounded.
        ``on_text`` gets the LLM's text piece by piece as it is generated (the returned answer is the
        checked one, which may differ)."""
        text = state["text"]
        draft: Draft = state["draft"]
        if not self.llm.enabled or draft.text.startswith(NO_RECORD):
            return Answer(text, draft.text, draft.citations, True, "offline", _ms(started))
        try:
            generated = self._generate(state) if on_text is None else self._generate_streaming(state, on_text)
        except Exception as exc:  # the endpoint is down, slow or refuses: the deterministic answer stands
            log.warning(f"LLM endpoint failed ({type(exc).__name__}: {exc}): deterministic answer given")
            return Answer(text, draft.text, draft.citations, True, "llm-failed", _ms(started), [str(exc)])
        return self._guarded(text, state, generated, started)

    # --- the LLM path ---------------------------------------------------------------------------------
    def _chat(self):
        from langchain_openai import ChatOpenAI

        return ChatOpenAI(base_url=self.llm.base_url, model=self.llm.model, timeout=self.llm.timeout_s,
                          api_key=os.environ.get(self.llm.api_key_env) or "not-needed", max_retries=0,
                          temperature=0)

    def _messages(self, state: dict) -> list:
        from langchain_core.messages import HumanMessage, SystemMessage

        evidence = "\n\n".join(evidence_texts(state["facts"], state["docs"]))
        return [SystemMessage(SYSTEM_PROMPT), HumanMessage(f"Evidence:\n{evidence}\n\nQuestion: {state['text']}")]

    def _generate(self, state: dict) -> str:
        return str(self._chat().invoke(self._messages(state)).content)

    def _generate_streaming(self, state: dict, on_text: Callable[[str], None]) -> str:
        parts: list[str] = []
        for piece in self._chat().stream(self._messages(state)):
            parts.append(str(piece.content))
            on_text(parts[-1])
        return "".join(parts)

    def _guarded(self, text: str, state: dict, generated: str, started: float) -> Answer:
        draft: Draft = state["draft"]
        allowed = {e.cite for e in state["facts"].evidence} | {d.cite for d in state["docs"]}
        problems = ungrounded(generated, evidence_texts(state["facts"], state["docs"]), allowed)
        if problems:
            log.warning(f"LLM answer rejected by the grounding guard ({'; '.join(problems)}): "
                        "deterministic answer given")
            return Answer(text, draft.text, draft.citations, True, "llm-rejected", _ms(started), problems)
        cited = [c for c in allowed if f"[{c}]" in generated]
        return Answer(text, generated, cited, True, "llm", _ms(started))


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 1)
