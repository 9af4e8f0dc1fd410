"""The deterministic composer (the default, with no LLM): an answer written only from the gathered
facts and the retrieved documents — what fired, why, how critical, what to do — citing each record
and document it uses by id. It never guesses: without a record it says so."""

from __future__ import annotations

from dataclasses import dataclass

from energizeos.knowledge.catalogue import PRIORITY_NAMES, Catalogue
from energizeos.knowledge.corpus import Chunk
from energizeos.knowledge.facts import Facts
from energizeos.knowledge.grounding import CITE_RE

NO_RECORD = "I don't have a record of that."
MAX_LINES = 6


@dataclass(frozen=True)
class Draft:
    text: str
    citations: list[str]


def main_code(facts: Facts) -> str | None:
    return facts.codes[0] if facts.codes else None


def procedure_for(code: str | None, docs: list[Chunk], catalogue: Catalogue) -> Chunk | None:
    """The response section of the procedure the catalogue names for ``code`` (among the retrieved)."""
    if code is None:
        return next((d for d in docs if d.section.lower() == "response"), None)
    refs = [r for r in catalogue.by_code[code].references if r.startswith("procedures/")]
    for ref in refs:
        doc = ref.split("#", 1)[0]
        for chunk in docs:
            if chunk.doc == doc and chunk.section.lower() == "response":
                return chunk
    return next((d for d in docs if d.section.lower() == "response" and code in d.codes), None)


def compose(facts: Facts, docs: list[Chunk], catalogue: Catalogue) -> Draft:
    q = facts.question
    if not facts.found:
        return Draft(NO_RECORD + _what_i_have(q.intent), [])
    cites: list[str] = []
    lines: list[str] = []

    def cite(ref: str) -> str:
        if ref not in cites:
            cites.append(ref)
        return f"[{ref}]"

    code = main_code(facts)
    entry = catalogue.by_code.get(code) if code else None
    if facts.fired:
        lines.append("What fired:")
        lines += [f"- {e.text} {cite(e.cite)}" for e in facts.fired[:MAX_LINES]]
        if len(facts.fired) > MAX_LINES:
            lines.append(f"- and {len(facts.fired) - MAX_LINES} more alarm(s) in that window.")
    if facts.why:
        lines.append("Why:")
        lines += [f"- {e.text} {cite(e.cite)}" for e in facts.why[:MAX_LINES]]
    if entry is not None and q.intent in ("meaning", "why-at", "occurrences", "history"):
        if not facts.why:
            lines.append("Why:")
        lines.append(f"- {entry.code} ({entry.title}): {entry.meaning} Likely causes: {'; '.join(entry.causes)}. "
                     f"{cite(f'alarms.yaml#{entry.code}')}")
    if facts.figures:
        lines.append("Figures from the records:")
        lines += [f"- {e.text} {cite(e.cite)}" for e in facts.figures]
    if facts.history:
        lines.append("In the records:" if q.intent != "meaning" else "Last occurrence in the records:")
        lines += [f"- {e.text} {cite(e.cite)}" for e in facts.history[:MAX_LINES]]
    priority = facts.priority or (entry.priority if entry else None)
    if priority is not None:
        level = PRIORITY_NAMES.get(priority, str(priority))
        consequence = f" {entry.consequences}" if entry is not None else ""
        lines.append(f"How critical: {level} (priority {priority}).{consequence}"
                     + (f" {cite(f'alarms.yaml#{entry.code}')}" if entry is not None else ""))
    procedure = procedure_for(code, docs, catalogue)
    if entry is not None or procedure is not None:
        lines.append("What to do:")
        if entry is not None:
            lines += [f"{i}. {step}" for i, step in enumerate(entry.response[:4], 1)]
            lines.append(f"(catalogue response {cite(f'alarms.yaml#{entry.code}')})")
        if procedure is not None:
            lines.append(f"Full procedure: {procedure.title} {cite(procedure.cite)}")
    text = "\n".join(lines)
    nested = [c for c in CITE_RE.findall(text) if c not in cites]  # e.g. a cause named inside an alarm line
    return Draft(text, [*cites, *dict.fromkeys(nested)])


def _what_i_have(intent: str) -> str:
    if intent == "unknown-code":
        return " That alarm code is not in the catalogue."
    return " The records hold no alarm, decision, plan or report that matches the question."
