"""The alarm catalogue (ISA-18.2 style): what each alarm code means, how it is detected, how
critical it is, what it drops and what the operator does about it.

``alarms.yaml`` beside this file is the catalogue the alarm manager and the assistant use;
``load_catalogue()`` reads and validates it. Every model forbids unknown keys, so a typo in the
YAML is an error that names the entry and the field, never a silently ignored line.

Condition kinds, and the fields each one uses (anything else set on the condition is an error):

- ``device_alarm``: a node raises and clears the code itself on ``/ems/device_alarms``.
- ``threshold``: ``topic``, ``field``, ``op``, ``limit`` (+ ``deadband``). Raised at
  ``value op limit``; clears only once the value is back past ``limit -/+ deadband``. For an array
  field the worst element counts (max for ``>``/``>=``, min for ``<``/``<=``).
- ``flag``: ``topic``, ``field``, ``equals``: active while ``field == equals``.
- ``bit``: ``topic``, ``field``, ``bit``: active while ``(field >> bit) & 1``.
- ``decision``: ``reason_codes`` (+ ``outcomes``): active while the safety arbiter's latest
  decisions on ``/ems/arbiter/decision`` carry one of the codes with one of the outcomes.
- ``stale``: ``topic``, ``max_age_s``: active when no GOOD-quality message (any message, for a
  type without a ``quality`` field) arrived on ``topic`` for ``max_age_s``.
- ``health``: active while ``/ems/graph/health`` reports an expected node missing.

``on_delay_s`` / ``off_delay_s`` apply to every kind. For ``decision``, ``health`` and
``device_alarm`` the topic is implied; the loader fills it in when the YAML leaves it empty.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, StringConstraints, ValidationError, field_validator, model_validator

from energizeos.yaml_file import read_yaml

DEFAULT_PATH = Path(__file__).with_name("alarms.yaml")

DECISION_TOPIC = "/ems/arbiter/decision"
HEALTH_TOPIC = "/ems/graph/health"
DEVICE_ALARMS_TOPIC = "/ems/device_alarms"

# Topics a condition may watch, with the energizeos_msgs.msg class published on each.
TOPIC_TYPES: dict[str, str] = {
    "/site/poi/meter": "MeterReading",
    "/site/poi/relay": "RelayStatus",
    "/bess/bms/status": "BmsStatus",
    "/bess/pcs/status": "PcsStatus",
    "/ems/arbiter/decision": "ArbiterDecision",
    "/ems/arbiter/interlocks": "InterlockState",
    "/ems/dispatch/request": "DispatchRequest",
    "/ems/plan/active": "DispatchPlan",
    "/ems/graph/health": "GraphHealth",
    "/ems/device_alarms": "Alarm",
}

PRIORITY_NAMES = {1: "critical", 2: "high", 3: "medium", 4: "low"}

Op = Literal[">", ">=", "<", "<="]
ConditionKind = Literal["device_alarm", "threshold", "flag", "bit", "decision", "stale", "health"]

Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
CODE_RE = re.compile(r"^[A-Z][A-Z0-9]*(_[A-Z0-9]+)*$")

# Kind -> (fields that must be given, kind-specific fields it may also use).
_KIND_FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "device_alarm": ((), ("topic",)),
    "threshold": (("topic", "field", "op", "limit"), ("deadband",)),
    "flag": (("topic", "field", "equals"), ()),
    "bit": (("topic", "field", "bit"), ()),
    "decision": (("reason_codes",), ("topic", "outcomes")),
    "stale": (("topic", "max_age_s"), ()),
    "health": ((), ("topic",)),
}
_KIND_SPECIFIC = ("topic", "field", "op", "limit", "deadband", "equals", "bit", "reason_codes", "outcomes",
                  "max_age_s")
_IMPLIED_TOPIC = {"decision": DECISION_TOPIC, "health": HEALTH_TOPIC, "device_alarm": DEVICE_ALARMS_TOPIC}
_WHAT = {"topic": "the topic to watch", "field": "the message field to test", "op": "the comparison (>, >=, <, <=)",
         "limit": "the value the field is compared with", "equals": "the value (true/false) that is the alarm",
         "bit": "the bit number (0-31) of the field", "reason_codes": "the arbiter reason codes that raise it",
         "max_age_s": "how old the last GOOD message may be"}


class Condition(BaseModel):
    """How the alarm manager detects the alarm (see the module docstring for the kinds)."""

    model_config = ConfigDict(extra="forbid")

    kind: ConditionKind
    topic: str = ""
    field: str = ""
    op: Op | None = None
    limit: float | None = None
    deadband: float = 0.0
    equals: bool | None = None
    bit: int | None = None
    reason_codes: list[str] = []
    outcomes: list[Literal["refused", "clipped"]] = ["refused"]
    max_age_s: float | None = None
    on_delay_s: float = 0.0
    off_delay_s: float = 0.0

    @model_validator(mode="after")
    def _fields_fit_kind(self) -> Condition:
        required, optional = _KIND_FIELDS[self.kind]
        for name in required:
            value = getattr(self, name)
            if value is None or value == "" or value == []:
                raise ValueError(f"a {self.kind} condition needs '{name}' ({_WHAT[name]})")
        # value-based (not "was it given"), so a dumped model (every field present) validates again
        misused = [name for name in _KIND_SPECIFIC if name not in required and name not in optional
                   and getattr(self, name) != type(self).model_fields[name].default]
        if misused:
            raise ValueError(f"a {self.kind} condition does not use {', '.join(repr(n) for n in misused)}")
        implied = _IMPLIED_TOPIC.get(self.kind)
        if implied is not None:
            if self.topic not in ("", implied):
                raise ValueError(f"a {self.kind} condition always watches {implied}, not {self.topic!r}")
            self.topic = implied
        elif not self.topic.startswith("/"):
            raise ValueError(f"topic {self.topic!r} must be an absolute topic name starting with '/'")
        for name in ("deadband", "on_delay_s", "off_delay_s"):
            if not getattr(self, name) >= 0.0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.kind == "threshold" and not math.isfinite(self.limit):  # type: ignore[arg-type]
            raise ValueError(f"limit must be a finite number, got {self.limit}")
        if self.kind == "bit" and not 0 <= self.bit <= 31:  # type: ignore[operator]
            raise ValueError(f"bit {self.bit} is outside 0..31 (alarm_bits fields are uint32)")
        if self.kind == "stale" and not self.max_age_s > 0.0:  # type: ignore[operator]
            raise ValueError(f"max_age_s must be > 0, got {self.max_age_s}")
        if self.kind == "decision":
            bad = [c for c in self.reason_codes if not CODE_RE.match(c)]
            if bad:
                raise ValueError(f"reason codes must be UPPER_SNAKE: {', '.join(map(repr, bad))}")
            if not self.outcomes:
                raise ValueError("a decision condition needs at least one outcome (refused, clipped)")
        return self


class AlarmDefinition(BaseModel):
    """One catalogue entry: detection, severity, meaning and the operator's response."""

    model_config = ConfigDict(extra="forbid")

    code: str
    device: Literal["pcs", "bms", "meter", "relay", "grid", "ems"]
    priority: int
    title: Text
    condition: Condition
    meaning: Text
    causes: list[Text]
    consequences: Text
    drops_interlocks: list[str] = []
    caused_by: list[str] = []
    response: list[Text]
    references: list[Text]

    @field_validator("code")
    @classmethod
    def _code_format(cls, code: str) -> str:
        if not CODE_RE.match(code):
            raise ValueError(f"code {code!r} must be UPPER_SNAKE (A-Z, 0-9, single underscores)")
        return code

    @field_validator("priority")
    @classmethod
    def _priority_range(cls, priority: int) -> int:
        if priority not in PRIORITY_NAMES:
            raise ValueError(f"priority {priority} is not one of 1 (critical), 2 (high), 3 (medium), 4 (low)")
        return priority

    @field_validator("causes", "response", "references")
    @classmethod
    def _not_empty(cls, items: list[str]) -> list[str]:
        if not items:
            raise ValueError("needs at least one entry")
        return items

    @field_validator("drops_interlocks", "caused_by")
    @classmethod
    def _no_duplicates(cls, items: list[str]) -> list[str]:
        repeated = sorted({x for x in items if items.count(x) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once")
        return items

    @property
    def priority_name(self) -> str:
        return PRIORITY_NAMES[self.priority]


class Catalogue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alarms: list[AlarmDefinition]

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        first: dict[str, int] = {}
        for i, alarm in enumerate(self.alarms):
            if alarm.code in first:
                raise ValueError(f"duplicate code {alarm.code} at alarms[{first[alarm.code]}] and alarms[{i}]")
            first[alarm.code] = i
        for i, alarm in enumerate(self.alarms):
            if alarm.code in alarm.caused_by:
                raise ValueError(f"alarms[{i}] ({alarm.code}) lists itself in caused_by")
            unknown = [c for c in alarm.caused_by if c not in first]
            if unknown:
                raise ValueError(f"alarms[{i}] ({alarm.code}) caused_by names unknown code(s) {', '.join(unknown)}")
        cycle = self._cause_cycle()
        if cycle:
            raise ValueError(f"caused_by forms a loop: {' -> '.join(cycle)} (an alarm cannot cause itself)")
        return self

    def _cause_cycle(self) -> list[str]:
        causes = {a.code: a.caused_by for a in self.alarms}
        done: set[str] = set()

        def visit(code: str, path: list[str]) -> list[str]:
            if code in path:
                return [*path[path.index(code):], code]
            if code in done:
                return []
            for cause in causes[code]:
                found = visit(cause, [*path, code])
                if found:
                    return found
            done.add(code)
            return []

        for code in causes:
            found = visit(code, [])
            if found:
                return found
        return []

    @property
    def by_code(self) -> dict[str, AlarmDefinition]:
        return {a.code: a for a in self.alarms}


def load_catalogue(path: str | Path | None = None) -> Catalogue:
    """Read and validate the catalogue (default: ``alarms.yaml`` beside this module).

    Raises ValueError naming the file and the bad entry (index and code) on a broken file."""
    path = Path(path) if path is not None else DEFAULT_PATH
    data = read_yaml(path, "alarm catalogue", ValueError)
    if not isinstance(data, dict) or "alarms" not in data:
        raise ValueError(f"alarm catalogue {path}: the top level must be a mapping with an 'alarms:' list")
    try:
        return Catalogue.model_validate(data)
    except ValidationError as exc:
        entries = data.get("alarms") if isinstance(data.get("alarms"), list) else []
        problems = [_describe(err, entries) for err in exc.errors()]
        raise ValueError(f"alarm catalogue {path} is invalid:\n  " + "\n  ".join(problems)) from None


def _describe(err: dict, entries: list) -> str:
    loc = list(err["loc"])
    msg = str(err["msg"]).removeprefix("Value error, ")
    where = "catalogue"
    if len(loc) >= 2 and loc[0] == "alarms" and isinstance(loc[1], int):
        index = loc[1]
        entry = entries[index] if index < len(entries) else None
        code = entry.get("code") if isinstance(entry, dict) else None
        where = f"alarms[{index}]" + (f" ({code})" if code else "")
        loc = loc[2:]
    field = ".".join(str(part) for part in loc)
    if err["type"] == "extra_forbidden":
        return f"{where}: unknown field {field!r} (check the spelling)"
    if err["type"] == "string_type" and isinstance(err.get("input"), dict):
        msg += " (an unquoted ': ' inside the text makes YAML read it as a mapping: quote the line)"
    return f"{where}" + (f" field {field!r}" if field else "") + f": {msg}"
