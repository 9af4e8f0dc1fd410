"""Alarm catalogue (knowledge/alarms.yaml, knowledge/catalogue.py).

The shipped catalogue is checked against the code it describes, read independently from the
source: topics and fields against the message classes, decision reason codes and permissive names
against the safety arbiter, device_alarm codes and priorities against the nodes that raise them,
bit numbers against the SunSpec models, and limits against the arbiter's and the relay's settings.
Broken files must fail with a ValueError that names the file and the bad entry.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import re
from collections import Counter
from functools import cache
from pathlib import Path

import pytest
import sunspec2
import yaml
from pydantic import ValidationError

from energizeos.knowledge.catalogue import (
    DECISION_TOPIC,
    DEFAULT_PATH,
    DEVICE_ALARMS_TOPIC,
    HEALTH_TOPIC,
    TOPIC_TYPES,
    Catalogue,
    Condition,
    load_catalogue,
)
from energizeos.nodes.arbiter_rules import Limits
from energizeos.nodes.bms_node import EVT1_ALARMS
from energizeos_msgs import msg as msgs
from energizeos_msgs._message import field_names
from energizeos_msgs.msg import Alarm

REPO = Path(__file__).resolve().parents[1]
NODES = REPO / "nodes"
ARBITER_SOURCES = (NODES / "arbiter_rules.py", NODES / "safety_arbiter.py")
DEVICES = {"pcs", "bms", "meter", "relay", "grid", "ems"}
# Codes the device nodes raise today (the brief for this catalogue); the AST scan below finds these
# and any added later.
NODE_CODES = {"METER_COMMS_LOSS", "RELAY_COMMS_LOSS", "BMS_COMMS_LOSS", "PCS_COMMS_LOSS", "METER_VALUES_FROZEN",
              "METER_CT_RATIO_MISMATCH", "METER_PT_RATIO_MISMATCH", "METER_PT_FUSE_LOSS",
              "METER_PT_RATIO_IMPLAUSIBLE", "METER_PHASE_ROTATION", "METER_CT_POLARITY_REVERSED",
              "METER_CT_RATIO_ERROR", "RELAY_TRIP", "RELAY_86_LOCKOUT", "RELAY_SELF_TEST_FAIL", "BMS_RACK_OVERTEMP",
              "BMS_CONTACTOR_FAULT", "PCS_FAULT", "PCS_NOT_FOLLOWING"}


@cache
def catalogue() -> Catalogue:
    return load_catalogue()


def alarms():
    return catalogue().alarms


# --- reading the code the catalogue describes -------------------------------------------------------

@cache
def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _call_name(call: ast.Call) -> str:
    func = call.func
    return func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


@cache
def arbiter_reason_codes() -> tuple[set[str], tuple[re.Pattern, ...]]:
    """Codes passed to Reason(...) / refuse(...) in the arbiter, plus patterns for f-string codes
    such as f"STALE_{name}" (the formatted part: any one-word upper-case constant of that module)."""
    codes: set[str] = set()
    patterns = []
    for path in ARBITER_SOURCES:
        tree = _tree(path)
        words = sorted(s for s in _strings(tree) if re.fullmatch(r"[A-Z][A-Z0-9]*", s))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            if _call_name(call) not in ("Reason", "refuse") or not call.args:
                continue
            arg = call.args[0]
            if isinstance(arg, ast.JoinedStr):
                parts = [re.escape(p.value) if isinstance(p, ast.Constant) else f"(?:{'|'.join(words)})"
                         for p in arg.values]
                patterns.append(re.compile("".join(parts)))
            else:
                codes |= {s for s in _strings(arg) if re.fullmatch(r"[A-Z][A-Z0-9_]*", s)}
    return codes, tuple(patterns)


def is_reason_code(code: str) -> bool:
    codes, patterns = arbiter_reason_codes()
    return code in codes or any(p.fullmatch(code) for p in patterns)


@cache
def permissive_names() -> set[str]:
    """The names of the arbiter's interlock chain: Link("name", ...) in arbiter_rules.py."""
    return {call.args[0].value for call in ast.walk(_tree(NODES / "arbiter_rules.py"))
            if isinstance(call, ast.Call) and _call_name(call) == "Link" and call.args
            and isinstance(call.args[0], ast.Constant)}


@cache
def node_conditions() -> dict[str, set[int | None]]:
    """code -> priorities, for every condition a node raises through set_condition(...) or
    self.conditions.set(...), read from the source of nodes/*.py."""
    sources = sorted(NODES.glob("*.py"))
    prefixes = set()
    findings = set()
    for path in sources:
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "alarm_prefix"
                                                     for t in node.targets)
                    and isinstance(node.value, ast.Constant)):
                prefixes.add(node.value.value)
            if isinstance(node, ast.Call) and _call_name(node) == "Finding" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                findings.add(node.args[0].value)
    prefixes.discard("DEVICE")  # the abstract DeviceNode's placeholder
    found: dict[str, set[int | None]] = {}
    for path in sources:
        tree = _tree(path)
        tuples = set()
        for node in tree.body:
            if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id.endswith("_CODES")
                                                    for t in node.targets):
                tuples |= _strings(node.value)
        forwarding = set()  # calls inside a wrapper that passes its own ``code`` parameter on
        for fn in (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)):
            params = {a.arg for a in fn.args.args}
            forwarding |= {id(c) for c in ast.walk(fn) if isinstance(c, ast.Call) and c.args
                           and isinstance(c.args[0], ast.Name) and c.args[0].id in params}
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            func = call.func
            reporter_set = (isinstance(func, ast.Attribute) and func.attr == "set"
                            and ((isinstance(func.value, ast.Attribute) and func.value.attr == "conditions")
                                 or (isinstance(func.value, ast.Name) and func.value.id == "conditions")))
            if not (_call_name(call) == "set_condition" or reporter_set) or not call.args:
                continue
            if id(call) in forwarding:
                continue
            arg = call.args[0]
            if isinstance(arg, ast.Constant):
                codes = {arg.value}
            elif isinstance(arg, ast.JoinedStr):
                template = "".join(p.value if isinstance(p, ast.Constant) else "{}" for p in arg.values)
                assert template.count("{}") == 1 and "alarm_prefix" in ast.unparse(arg), \
                    f"{path.name}:{call.lineno}: cannot resolve the alarm code {ast.unparse(arg)}"
                codes = {template.format(p) for p in prefixes}
            else:
                codes = tuples | (findings if path.name == "meter_node.py" else set())
                assert codes, f"{path.name}:{call.lineno}: cannot resolve the alarm code {ast.unparse(arg)}"
            priority_arg = call.args[2] if len(call.args) > 2 else next(
                (k.value for k in call.keywords if k.arg == "priority"), None)
            priority = getattr(Alarm, priority_arg.attr) if isinstance(priority_arg, ast.Attribute) else None
            for code in codes:
                found.setdefault(code, set())
                if priority is not None:
                    found[code].add(priority)
    return found


@cache
def sunspec_bits(model_id: int, point: str) -> dict[int, str]:
    model_file = next(Path(sunspec2.__file__).parent.rglob(f"model_{model_id}.json"))
    points = json.loads(model_file.read_text())["group"]["points"]
    return {s["value"]: s["name"] for s in next(p for p in points if p["name"] == point)["symbols"]}


BIT_SOURCES = {("/bess/bms/status", "alarm_bits"): (802, "Evt1"), ("/bess/pcs/status", "alarm_bits"): (701, "Alrm")}


def message_class(topic: str) -> type:
    return getattr(msgs, TOPIC_TYPES[topic])


def field_type(cls: type, name: str) -> str:
    return next(f.type for f in dataclasses.fields(cls) if f.name == name)


# --- the shipped catalogue ------------------------------------------------------------------------

def test_shipped_catalogue_loads_with_every_family_and_priority():
    cat = catalogue()
    codes = [a.code for a in cat.alarms]
    assert len(codes) >= 40
    assert len(set(codes)) == len(codes)
    assert {a.device for a in cat.alarms} == DEVICES
    assert {a.priority for a in cat.alarms} == {1, 2, 3, 4}
    assert set(cat.by_code) == set(codes)
    assert cat.by_code["RELAY_TRIP"].priority_name == "critical"
    assert load_catalogue(str(DEFAULT_PATH)).by_code.keys() == cat.by_code.keys()


def test_catalogue_round_trips_through_plain_data():
    cat = catalogue()
    assert Catalogue.model_validate(cat.model_dump()) == cat
    assert Catalogue.model_validate_json(cat.model_dump_json(exclude_defaults=True)) == cat


def test_every_alarm_is_documented_for_an_operator():
    for a in alarms():
        assert a.title and a.meaning and a.consequences, a.code
        assert a.causes and a.response and a.references, a.code
        assert all(len(step) >= 10 for step in a.response), a.code
        for ref in a.references:
            if ref.startswith("procedures/"):
                assert re.fullmatch(r"procedures/[a-z0-9-]+\.md(#[a-z0-9-]+)?", ref), (a.code, ref)


def test_topic_map_names_real_message_classes_and_topics_the_nodes_use():
    node_text = "\n".join(p.read_text() for p in NODES.glob("*.py"))
    for topic, name in TOPIC_TYPES.items():
        assert hasattr(msgs, name), name
        assert f'"{topic}"' in node_text or topic == DEVICE_ALARMS_TOPIC, f"no node uses {topic}"


def test_topics_and_fields_exist_on_the_message_classes():
    for a in alarms():
        c = a.condition
        if c.kind == "device_alarm":
            assert c.topic == DEVICE_ALARMS_TOPIC
            continue
        assert c.topic in TOPIC_TYPES, f"{a.code}: unknown topic {c.topic}"
        cls = message_class(c.topic)
        if c.kind == "decision":
            assert c.topic == DECISION_TOPIC and "reason_codes" in field_names(cls)
        elif c.kind == "health":
            assert c.topic == HEALTH_TOPIC and "missing_nodes" in field_names(cls)
        elif c.kind == "stale":
            assert not c.field
        else:
            assert c.field in field_names(cls), f"{a.code}: {cls.__name__} has no field {c.field!r}"
            kind = field_type(cls, c.field)
            expected = {"threshold": ("float", "int", "np.ndarray"), "flag": ("bool",), "bit": ("int",)}[c.kind]
            assert kind in expected, f"{a.code}: {c.kind} on {cls.__name__}.{c.field} of type {kind}"
            if kind == "np.ndarray":
                assert c.field in cls._ARRAYS, a.code


def test_decision_reason_codes_exist_in_the_arbiter():
    codes, _ = arbiter_reason_codes()
    assert {"STALE_METER", "SOC_LOW", "EXPORT_LIMIT", "REQUEST_STALE"} <= codes  # the scan works
    assert is_reason_code("STALE_BMS") and not is_reason_code("STALE_NOTHING_SUCH")
    used = [(a.code, r) for a in alarms() if a.condition.kind == "decision" for r in a.condition.reason_codes]
    assert used
    for code, reason in used:
        assert is_reason_code(reason), f"{code}: the arbiter never gives reason {reason}"


def test_dropped_interlocks_are_the_arbiters_permissives():
    names = permissive_names()
    assert {"meter.fresh", "relay.no_86_lockout", "bms.soc_in_window", "grid.enter_service"} <= names
    for a in alarms():
        unknown = set(a.drops_interlocks) - names
        assert not unknown, f"{a.code}: not a permissive of the arbiter: {sorted(unknown)}"


def test_every_code_a_node_raises_has_a_device_alarm_entry_with_the_nodes_priority():
    raised = node_conditions()
    assert set(raised) >= NODE_CODES, sorted(NODE_CODES - set(raised))
    by_code = catalogue().by_code
    for code, priorities in sorted(raised.items()):
        assert code in by_code, f"nodes raise {code} but the catalogue has no entry"
        assert by_code[code].condition.kind == "device_alarm", code
        assert priorities <= {by_code[code].priority}, f"{code}: node priority {priorities}"


def test_bit_conditions_match_the_sunspec_models_and_the_bms_permissive():
    seen = Counter()
    for a in alarms():
        c = a.condition
        if c.kind != "bit":
            continue
        seen[(c.topic, c.field, c.bit)] += 1
        model_id, point = BIT_SOURCES[(c.topic, c.field)]
        name = sunspec_bits(model_id, point).get(c.bit)
        assert name, f"{a.code}: SunSpec {model_id} {point} has no bit {c.bit}"
        assert name in a.meaning and f"{point} bit {c.bit}" in a.meaning, f"{a.code}: meaning must name {name}"
        if model_id == 802:  # bms_node drops its permissive on exactly the EVT1_ALARMS bits
            assert ("bms.permissive" in a.drops_interlocks) == (c.bit in EVT1_ALARMS), a.code
    assert max(seen.values()) == 1, "the same bit is catalogued twice"
    # bits already turned into device alarms by bms_node are not catalogued a second time
    bms_source = (NODES / "bms_node.py").read_text()
    covered = re.findall(r'set_condition\("(\w+)", "(\w+)" in alarms', bms_source)
    assert covered
    bit_of = {name: bit for bit, name in EVT1_ALARMS.items()}
    for _code, name in covered:
        assert ("/bess/bms/status", "alarm_bits", bit_of[name]) not in seen, name


def test_limits_match_the_arbiter_and_the_relay_settings():
    by_code, limits = catalogue().by_code, Limits()

    def limit(code: str) -> float:
        return by_code[code].condition.limit

    assert limit("GRID_VOLTAGE_LOW") == limits.es_v_min_pu
    assert limit("GRID_VOLTAGE_HIGH") == limits.es_v_max_pu
    assert limit("GRID_FREQUENCY_LOW") == limits.es_f_min_hz
    assert limit("GRID_FREQUENCY_HIGH") == limits.es_f_max_hz
    assert limit("BMS_SOC_LOW") == limits.soc_min_pct
    assert limit("EMS_EXPORT_LIMIT_EXCEEDED") == -(limits.export_limit_kw + limits.export_margin_kw)
    for code, watchdog in (("EMS_METER_STALE", limits.meter_watchdog_s), ("EMS_RELAY_STALE", limits.relay_watchdog_s),
                           ("EMS_BMS_STALE", limits.bms_watchdog_s), ("EMS_PCS_STALE", limits.pcs_watchdog_s)):
        assert by_code[code].condition.max_age_s == watchdog, code
    relay_map = yaml.safe_load((REPO / "sim" / "maps" / "sel700g.yaml").read_text())
    settings = relay_map["defaults"]
    assert settings["ieee1547_category"] == 2  # the catalogue's GRID_* limits are Category II
    for element in ("ov2", "ov1", "uv1", "uv2", "of2", "of1", "uf1", "uf2"):
        c = by_code[f"GRID_{element.upper()}"].condition
        assert c.limit == settings[f"{element}_pickup"], element
        assert c.op == (">" if element.startswith("o") else "<"), element
        assert c.field == ("voltage_pu" if element[1] == "v" else "frequency_hz"), element


def test_consequential_alarms_link_to_their_roots():
    by_code = catalogue().by_code
    refused = by_code["EMS_DISPATCH_REFUSED"]
    assert refused.condition.kind == "decision"
    assert {"BMS_RACK_OVERTEMP", "BMS_CONTACTOR_FAULT", "RELAY_TRIP", "RELAY_86_LOCKOUT", "METER_COMMS_LOSS",
            "PCS_FAULT"} <= set(refused.caused_by)
    assert "RELAY_TRIP" in by_code["RELAY_86_LOCKOUT"].caused_by
    for code in ("EMS_PLAN_REJECTED", "EMS_ALARM_CHATTER", "EMS_HISTORIAN_SPOOLING"):
        assert by_code[code].condition.kind == "device_alarm", code
    assert by_code["EMS_GRAPH_NODE_MISSING"].condition.kind == "health"
    for a in alarms():  # stale data on a device topic links to that device's comms loss first
        if a.condition.kind == "stale" and a.condition.topic.startswith(("/site/", "/bess/")):
            device = TOPIC_TYPES[a.condition.topic].removesuffix("Status").removesuffix("Reading").upper()
            assert a.caused_by[0] == f"{device}_COMMS_LOSS", a.code


def test_thresholds_have_sensible_hysteresis():
    for a in alarms():
        c = a.condition
        if c.kind == "threshold" and c.field.endswith("_c"):
            assert c.deadband >= 1.0 and c.on_delay_s >= 5.0, f"{a.code}: temperature alarms need hysteresis"


# --- conditions -------------------------------------------------------------------------------------

def test_implied_topics_are_filled_in():
    assert Condition(kind="decision", reason_codes=["SOC_LOW"]).topic == DECISION_TOPIC
    assert Condition(kind="health").topic == HEALTH_TOPIC
    assert Condition(kind="device_alarm").topic == DEVICE_ALARMS_TOPIC
    assert Condition(kind="decision", topic=DECISION_TOPIC, reason_codes=["X"]).outcomes == ["refused"]


@pytest.mark.parametrize(("fields", "expected"), [
    ({"kind": "threshold", "topic": "/site/poi/meter", "field": "p_kw", "op": "<"},
     "a threshold condition needs 'limit'"),
    ({"kind": "threshold", "topic": "/site/poi/meter", "op": "<", "limit": 1}, "needs 'field'"),
    ({"kind": "flag", "topic": "/site/poi/relay", "field": "trip"}, "a flag condition needs 'equals'"),
    ({"kind": "bit", "topic": "/bess/pcs/status", "field": "alarm_bits"}, "a bit condition needs 'bit'"),
    ({"kind": "bit", "topic": "/bess/pcs/status", "field": "alarm_bits", "bit": 32}, "outside 0..31"),
    ({"kind": "stale", "topic": "/site/poi/meter"}, "a stale condition needs 'max_age_s'"),
    ({"kind": "stale", "topic": "/site/poi/meter", "max_age_s": 0}, "max_age_s must be > 0"),
    ({"kind": "decision"}, "a decision condition needs 'reason_codes'"),
    ({"kind": "decision", "reason_codes": ["soc low"]}, "UPPER_SNAKE"),
    ({"kind": "decision", "reason_codes": ["X"], "outcomes": []}, "at least one outcome"),
    ({"kind": "decision", "reason_codes": ["X"], "topic": "/site/poi/meter"}, "always watches /ems/arbiter/decision"),
    ({"kind": "threshold", "topic": "/a", "field": "x", "op": ">", "limit": 1, "bit": 3}, "does not use 'bit'"),
    ({"kind": "flag", "topic": "/a", "field": "x", "equals": True, "deadband": 1}, "does not use 'deadband'"),
    ({"kind": "device_alarm", "field": "x"}, "does not use 'field'"),
    ({"kind": "threshold", "topic": "/a", "field": "x", "op": ">", "limit": float("nan")}, "finite"),
    ({"kind": "threshold", "topic": "/a", "field": "x", "op": "==", "limit": 1}, "op"),
    ({"kind": "threshold", "topic": "a", "field": "x", "op": ">", "limit": 1}, "starting with '/'"),
    ({"kind": "health", "on_delay_s": -1}, "on_delay_s must be >= 0"),
])
def test_condition_fields_must_fit_the_kind(fields, expected):
    with pytest.raises(ValidationError, match=re.escape(expected)):
        Condition(**fields)


# --- broken files -----------------------------------------------------------------------------------

def entry(code: str = "TEST_A", **changes) -> dict:
    base = {"code": code, "device": "ems", "priority": 3, "title": "Test alarm", "condition": {"kind": "device_alarm"},
            "meaning": "meaning", "causes": ["a cause"], "consequences": "consequences",
            "response": ["do the thing"], "references": ["procedures/comms-loss.md"]}
    base.update(changes)
    return base


def write(tmp_path: Path, entries: list[dict]) -> Path:
    path = tmp_path / "alarms.yaml"
    path.write_text(yaml.safe_dump({"alarms": entries}, sort_keys=False))
    return path


def test_a_minimal_file_loads(tmp_path):
    cat = load_catalogue(write(tmp_path, [entry(), entry("TEST_B", caused_by=["TEST_A"])]))
    assert cat.by_code["TEST_B"].caused_by == ["TEST_A"]


@pytest.mark.parametrize(("entries", "expected"), [
    ([entry(), entry("TEST_B"), entry()], [r"duplicate code TEST_A at alarms\[0\] and alarms\[2\]"]),
    ([entry("TEST_B"), entry(causez=["x"])], [r"alarms\[1\] \(TEST_A\)", "unknown field 'causez'"]),
    ([entry(condition={"kind": "flag", "topic": "/site/poi/relay", "field": "trip", "equal": True})],
     [r"alarms\[0\] \(TEST_A\)", "unknown field 'condition.equal'"]),
    ([entry("TEST_B"), entry(condition={"kind": "threshold", "topic": "/site/poi/meter", "field": "p_kw", "op": "<"})],
     [r"alarms\[1\] \(TEST_A\) field 'condition'", "a threshold condition needs 'limit'"]),
    ([entry(caused_by=["NOPE"])], [r"alarms\[0\] \(TEST_A\) caused_by names unknown code\(s\) NOPE"]),
    ([entry(caused_by=["TEST_A"])], [r"alarms\[0\] \(TEST_A\) lists itself in caused_by"]),
    ([entry(caused_by=["TEST_B"]), entry("TEST_B", caused_by=["TEST_A"])], ["loop: TEST_A -> TEST_B -> TEST_A"]),
    ([entry(priority=5)], [r"alarms\[0\] \(TEST_A\) field 'priority'", "priority 5 is not one of 1"]),
    ([entry(priority=0)], ["priority 0"]),
    ([entry(device="inverter")], [r"alarms\[0\] \(TEST_A\) field 'device'"]),
    ([entry(code="bad-code")], [r"alarms\[0\] \(bad-code\) field 'code'", "UPPER_SNAKE"]),
    ([entry(response=[])], [r"field 'response'", "at least one entry"]),
    ([entry(causes=[" "])], [r"field 'causes.0'"]),
    ([{k: v for k, v in entry().items() if k != "references"}], [r"alarms\[0\] \(TEST_A\) field 'references'",
                                                                  "Field required"]),
    ([entry(drops_interlocks=["meter.fresh", "meter.fresh"])], ["meter.fresh more than once"]),
])
def test_broken_entries_name_the_file_and_the_entry(tmp_path, entries, expected):
    path = write(tmp_path, entries)
    with pytest.raises(ValueError) as info:
        load_catalogue(path)
    message = str(info.value)
    assert str(path) in message
    for pattern in expected:
        assert re.search(pattern, message), f"{pattern!r} not in {message}"


def test_an_unquoted_colon_in_a_text_line_gets_a_hint(tmp_path):
    path = tmp_path / "alarms.yaml"
    path.write_text(yaml.safe_dump({"alarms": [entry()]}, sort_keys=False).replace(
        "- do the thing", "- Check the HMI: is it on?"))
    with pytest.raises(ValueError, match=r"alarms\[0\] \(TEST_A\) field 'response.0'.*quote the line"):
        load_catalogue(path)


@pytest.mark.parametrize(("text", "expected"), [
    (None, "does not exist"),
    ("alarms: [unclosed", "is not valid YAML"),
    ("something_else: []", "must be a mapping with an 'alarms:' list"),
    ("- code: X", "must be a mapping with an 'alarms:' list"),
    ("alarms: []\nextra: 1", "unknown field"),
    ("alarms: {code: X}", "alarms"),
])
def test_broken_files_name_the_file(tmp_path, text, expected):
    path = tmp_path / "alarms.yaml"
    if text is not None:
        path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(expected)) as info:
        load_catalogue(path)
    assert str(path) in str(info.value)
