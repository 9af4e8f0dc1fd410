"""Acceptance criteria: pure evaluation of a step's measured values against the numbers written in
its procedure. A limit is a number or a site setting with an optional offset (``es_delay_s + 5``)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

LIMIT_EXPRESSION = re.compile(r"^\s*([a-z_][a-z0-9_]*)\s*(?:([+-])\s*(\d+(?:\.\d*)?))?\s*$")


def parse_limit(text: str) -> tuple[str, float]:
    """``"es_delay_s + 5"`` -> ``("es_delay_s", 5.0)``; ValueError for anything else."""
    match = LIMIT_EXPRESSION.match(text)
    if not match:
        raise ValueError(f"limit {text!r} is neither a number nor 'setting', 'setting + N' or 'setting - N'")
    name, sign, number = match.groups()
    offset = float(number) if number else 0.0
    return name, -offset if sign == "-" else offset


def resolve(limit: float | str, settings: Mapping[str, float]) -> tuple[float, str]:
    """The number a limit stands for, and how to show it (``300 (es_delay_s)``)."""
    if isinstance(limit, int | float) and not isinstance(limit, bool):
        return float(limit), f"{limit:g}"
    name, offset = parse_limit(str(limit))
    if name not in settings:
        raise ValueError(f"limit {limit!r} names no site setting; settings: {', '.join(sorted(settings))}")
    value = settings[name] + offset
    return value, f"{value:g} ({str(limit).strip()})"


@dataclass(frozen=True)
class Check:
    measure: str
    criterion: str  # e.g. "ratio in [0.8, 1.2]", with the limits as numbers
    value: Any
    ok: bool
    why: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"measure": self.measure, "criterion": self.criterion, "value": self.value, "ok": self.ok,
                "why": self.why}


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def evaluate(criterion: Any, measured: Mapping[str, Any], settings: Mapping[str, float]) -> Check:
    """One criterion (``model.Criterion``) against the measured values."""
    name, unit = criterion.measure, f" {criterion.unit}" if criterion.unit else ""
    value = measured.get(name)
    if criterion.min is not None or criterion.max is not None:
        low, low_text = resolve(criterion.min, settings) if criterion.min is not None else (-math.inf, "")
        high, high_text = resolve(criterion.max, settings) if criterion.max is not None else (math.inf, "")
        if criterion.min is not None and criterion.max is not None:
            text = f"{name} in [{low_text}, {high_text}]{unit}"
        elif criterion.min is not None:
            text = f"{name} >= {low_text}{unit}"
        else:
            text = f"{name} <= {high_text}{unit}"
        number = _number(value)
        return Check(name, text, value, number is not None and low <= number <= high, criterion.why)
    if criterion.equals is not None:
        expected = criterion.equals
        if isinstance(expected, (bool, str)):
            ok = type(value) is type(expected) and value == expected
        else:
            number = _number(value)
            ok = number is not None and math.isclose(number, float(expected), abs_tol=1e-9)
        shown = str(expected).lower() if isinstance(expected, bool) else repr(expected)
        return Check(name, f"{name} == {shown}{unit}", value, ok, criterion.why)
    listed = criterion.contains if criterion.contains is not None else criterion.excludes
    assert listed is not None  # the model requires one kind of criterion
    items = set(value) if isinstance(value, Sequence) and not isinstance(value, str) else None
    if criterion.contains is not None:
        ok = items is not None and set(listed) <= items
        text = f"{name} contains {', '.join(listed)}"
    else:
        ok = items is not None and not set(listed) & items
        text = f"{name} excludes {', '.join(listed)}"
    return Check(name, text, value, ok, criterion.why)
