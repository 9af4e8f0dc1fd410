"""The grounding guard: every number, time of day, alarm code and cited id in an answer must appear in
the evidence it was given (records and documents). Anything else is ungrounded and the answer is
not shown; the deterministic one is."""

from __future__ import annotations

import re

from energizeos.knowledge.corpus import CODE_RE

TIME_RE = re.compile(r"\b\d{1,2}:\d{2}(?::\d{2})?\b")
CITE_RE = re.compile(r"\[([^\[\]]+)\]")
NUMBER_RE = re.compile(r"(?<![\w.])-?\d+(?:,\d{3})*(?:\.\d+)?(?![\w])")
STEP_RE = re.compile(r"^\s*\d+[.)]\s", re.M)  # "1. Confirm…": list numbering is not a claim


def _numbers(text: str) -> set[float]:
    return {float(n.replace(",", "")) for n in NUMBER_RE.findall(TIME_RE.sub(" ", text))}


def _matches(value: float, known: set[float]) -> bool:
    """Equal, or the same number at a coarser rounding (56.04 in the records may be said as 56.0 or 56)."""
    for k in known:
        if value == k:
            return True
        for digits in (0, 1, 2):
            if round(k, digits) == value and value != 0:
                return True
    return False


def ungrounded(answer: str, evidence: list[str], allowed_cites: set[str]) -> list[str]:
    """What in ``answer`` the evidence does not support, each named (empty: grounded)."""
    corpus = "\n".join(evidence)
    problems = []
    allowed_cites = allowed_cites | set(CITE_RE.findall(corpus))  # e.g. a cause named inside a record
    for cite in CITE_RE.findall(answer):
        for one in (c.strip() for c in cite.split(";")):
            if one and one not in allowed_cites:
                problems.append(f"cites [{one}], which it was not given")
    body = CITE_RE.sub(" ", answer)
    for code in set(CODE_RE.findall(body)) - set(CODE_RE.findall(corpus)):
        problems.append(f"alarm code {code} is in no evidence")
    times = set(TIME_RE.findall(corpus))
    for t in set(TIME_RE.findall(body)):
        if t not in times and not any(k.startswith(t + ":") for k in times):
            problems.append(f"time {t} is in no evidence")
    known = _numbers(corpus)
    for value in _numbers(STEP_RE.sub(" ", body)):
        if not _matches(value, known):
            problems.append(f"number {value:g} is in no evidence")
    return problems
