"""Commissioning procedures as data: the shipped files load, broken files are refused naming the file
and the field, and acceptance criteria are judged by pure, exact rules."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.commissioning.criteria import evaluate, parse_limit, resolve
from energizeos.commissioning.model import Criterion, ProcedureError, load_procedure, shipped
from energizeos.commissioning.registry import actions
from energizeos.commissioning.settings import SETTING_NAMES, SiteSettings

SETTINGS = SiteSettings().as_dict()
GOOD_STEP = {"id": "ratios", "title": "CT and PT ratios", "do": {"action": "meter_ratios"},
             "observe": "the ratios", "acceptance": [{"measure": "ctr_error_pct", "min": -1.0, "max": 1.0}]}


def write(tmp_path: Path, name: str, **changes) -> Path:
    data = {"id": name, "title": "A test procedure", "phases": ["FAT"], "purpose": "testing the loader",
            "steps": [GOOD_STEP], **changes}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_the_shipped_procedures_cover_the_issue_in_order():
    procedures = shipped()
    assert list(procedures) == ["settings", "communications", "ct-pt", "interlocks", "trip-lockout",
                                "export-limit", "reversion"]
    steps = {p: [s.id for s in proc.steps] for p, proc in procedures.items()}
    assert {"bms-not-ready", "contactor-open", "soc-at-limit", "stale-meter", "relay-trip-86"} <= set(
        steps["interlocks"])
    assert steps["trip-lockout"][2:] == ["trip", "close-refused", "reset", "close", "enter-service"]
    comms = [s.do.params["device"] for s in procedures["communications"].steps if s.do.action == "point_to_point"]
    assert comms == ["meter", "relay", "bms", "pcs"]  # every device, point to point
    for procedure in procedures.values():
        for step in procedure.steps:
            assert step.acceptance, f"{procedure.id}/{step.id} has no acceptance criterion"
            spec = actions()[step.do.action]
            assert {c.measure for c in step.acceptance} <= spec.measures
            # a step that creates a condition on equipment says how a person creates and undoes it
            if step.do.action in ("drop_permissive", "comms_loss", "relay_trip", "pcs_reversion"):
                assert step.prompt, f"{procedure.id}/{step.id} has no operator prompt"


def test_a_good_file_loads(tmp_path):
    procedure = load_procedure(write(tmp_path, "good"))
    assert procedure.steps[0].acceptance[0].max == 1.0


@pytest.mark.parametrize(("changes", "message"), [
    ({"steps": [{**GOOD_STEP, "do": {"action": "melt_down"}}]},
     "bad.yaml: steps.0.do.action: unknown action 'melt_down'; actions: "),
    ({"steps": [{**GOOD_STEP, "do": {"action": "hold_setpoint", "params": {"p_kw": "lots"}}}]},
     "bad.yaml: steps.0.do.params.p_kw: Input should be a valid number"),
    ({"steps": [{**GOOD_STEP, "do": {"action": "hold_setpoint", "params": {"p_kw": 1, "speed": 2}}}]},
     "bad.yaml: steps.0.do.params.speed: Extra inputs are not permitted"),
    ({"steps": [{**GOOD_STEP, "acceptance": [{"measure": "ratio", "max": 1.2}]}]},
     "bad.yaml: steps.0.acceptance.0.measure: meter_ratios does not measure 'ratio'"),
    ({"steps": [{**GOOD_STEP, "acceptance": [{"measure": "ctr", "max": 1.0, "equals": 1.0}]}]},
     "steps.0.acceptance.0: Value error, give exactly one kind of criterion"),
    ({"steps": [{**GOOD_STEP, "acceptance": [{"measure": "ctr", "max": "es_dealy_s + 5"}]}]},
     "steps.0.acceptance.0.max: Value error, 'es_dealy_s + 5' names no site setting"),
    ({"steps": [{**GOOD_STEP, "acceptance": [{"measure": "ctr", "max": "es_delay_s * 2"}]}]},
     "steps.0.acceptance.0.max: Value error, limit 'es_delay_s * 2' is neither a number nor"),
    ({"steps": [GOOD_STEP, GOOD_STEP]}, "bad.yaml: steps: Value error, step id 'ratios' is used twice"),
    ({"steps": [{**GOOD_STEP, "evidence": ["nothing_measured"]}]},
     "bad.yaml: steps.0.evidence.0: meter_ratios does not measure 'nothing_measured'"),
    ({"phases": ["ITC"]}, "bad.yaml: phases.0: Input should be 'FAT' or 'SAT'"),
    ({"steps": [{k: v for k, v in GOOD_STEP.items() if k != "observe"}]}, "bad.yaml: steps.0.observe: Field required"),
])
def test_a_broken_file_is_refused_naming_the_file_and_the_field(tmp_path, changes, message):
    with pytest.raises(ProcedureError) as err:
        load_procedure(write(tmp_path, "bad", **changes))
    assert message in str(err.value)


def test_the_file_name_is_the_procedure_id_and_broken_yaml_is_named(tmp_path):
    path = write(tmp_path, "renamed")
    path.rename(tmp_path / "other.yaml")
    with pytest.raises(ProcedureError, match=r"other\.yaml: id: 'renamed' must match the file name 'other'"):
        load_procedure(tmp_path / "other.yaml")
    (tmp_path / "broken.yaml").write_text("id: [unclosed\n")
    with pytest.raises(ProcedureError, match=r"broken\.yaml is not valid YAML"):
        load_procedure(tmp_path / "broken.yaml")


def test_point_ranges_must_name_points_of_the_device_map(tmp_path):
    step = {**GOOD_STEP, "do": {"action": "point_to_point", "params": {
        "device": "meter", "ranges": {"va_magnitude": [1, 2]}, "cross_check": {}}},
        "acceptance": [{"measure": "missing_count", "max": 0}]}
    with pytest.raises(ProcedureError, match=r"steps\.0\.do\.params: Value error, sel735 has no point\(s\) "
                                             r"\['va_magnitude'\]"):
        load_procedure(write(tmp_path, "bad", steps=[step]))


# --- criteria -----------------------------------------------------------------------------------
def criterion(**kwargs) -> Criterion:
    return Criterion(measure="x", **kwargs)


def test_criteria_table():
    cases = [
        (criterion(min=0.8, max=1.2), 1.004, True, "x in [0.8, 1.2]"),
        (criterion(min=0.8, max=1.2), -0.992, False, "x in [0.8, 1.2]"),
        (criterion(max=2.0, unit="s"), 0.95, True, "x <= 2 s"),
        (criterion(min="es_delay_s"), 300.15, True, "x >= 300 (es_delay_s)"),
        (criterion(min="es_delay_s"), 299.9, False, "x >= 300 (es_delay_s)"),
        (criterion(max="es_delay_s + 5"), 305.0, True, "x <= 305 (es_delay_s + 5)"),
        (criterion(equals=True), True, True, "x == true"),
        (criterion(equals=False), 0, False, "x == false"),  # a number is not a verdict
        (criterion(equals=0.0), False, False, "x == 0.0"),
        (criterion(contains=["RELAY_TRIP", "RELAY_86_LOCKOUT"]), ["BREAKER_OPEN", "RELAY_TRIP"], False,
         "x contains RELAY_TRIP, RELAY_86_LOCKOUT"),
        (criterion(contains=["SOC_LOW"]), ["SOC_LOW"], True, "x contains SOC_LOW"),
        (criterion(excludes=["METER_CT_POLARITY_REVERSED"]), [], True, "x excludes METER_CT_POLARITY_REVERSED"),
        (criterion(excludes=["METER_CT_RATIO_ERROR"]), ["METER_CT_RATIO_ERROR"], False,
         "x excludes METER_CT_RATIO_ERROR"),
        (criterion(contains=["A"]), "A", False, "x contains A"),  # a string is not a list of codes
    ]
    for c, value, ok, text in cases:
        check = evaluate(c, {"x": value}, SETTINGS)
        assert (check.ok, check.criterion, check.value) == (ok, text, value), (c, value)


def test_a_value_that_was_not_measured_fails_every_kind_of_criterion():
    for c in (criterion(max=1.0), criterion(equals=True), criterion(contains=["A"]), criterion(excludes=["A"])):
        assert not evaluate(c, {}, SETTINGS).ok


@settings(max_examples=200, deadline=None)
@given(low=st.floats(-1e6, 1e6), width=st.floats(0, 1e6),
       value=st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.none(), st.booleans()))
def test_a_range_passes_exactly_the_finite_numbers_inside_it(low, width, value):
    check = evaluate(criterion(min=low, max=low + width), {"x": value}, SETTINGS)
    inside = isinstance(value, float) and math.isfinite(value) and low <= value <= low + width
    assert check.ok == inside


@given(name=st.sampled_from(sorted(SETTING_NAMES)), millis=st.integers(0, 10_000_000), minus=st.booleans())
def test_a_setting_limit_is_the_setting_plus_its_offset(name, millis, minus):
    offset = millis / 1000.0
    text = f"{name} {'-' if minus else '+'} {offset:.3f}"
    number, shown = resolve(text, SETTINGS)
    assert number == pytest.approx(SETTINGS[name] + (-offset if minus else offset))
    assert parse_limit(text) == (name, pytest.approx(-offset if minus else offset)) and name in shown


# --- pure measurement helpers of the actions ----------------------------------------------------------
@settings(max_examples=200, deadline=None)
@given(readings=st.lists(st.tuples(st.floats(0.01, 1.0), st.floats(-800.0, 800.0)), min_size=1, max_size=60),
       limit=st.floats(0.0, 50.0), deadband=st.floats(0.0, 5.0))
def test_export_events_invariants(readings, limit, deadband):
    """Export energy is never negative and never more than the largest export held for the whole span;
    the clearing time is the time of the last reading beyond the limit; all-import means no export."""
    from energizeos.commissioning.actions.export import export_events

    t, samples = 0.0, []
    for dt, p_kw in readings:
        samples.append((t, p_kw))
        t += dt
    events = export_events(samples, 0.0, limit, deadband)
    span = samples[-1][0]
    over = [(ts, -p - limit) for ts, p in samples if -p > limit + deadband]
    assert 0.0 <= events["exported_kwh"] <= events["max_export_kw"] * span / 3600.0 + 1e-9
    assert events["export_samples"] == len(over)
    assert events["export_cleared_after_s"] == (over[-1][0] if over else 0.0)
    if all(p >= 0 for _t, p in samples):
        assert events == {"max_export_kw": 0.0, "export_cleared_after_s": 0.0, "export_samples": 0,
                          "exported_kwh": 0.0}


def test_export_events_by_hand():
    from energizeos.commissioning.actions.export import export_events

    # 0.2 s readings: 300 kW export for two readings, then import; zero-export limit, 1 kW deadband
    samples = [(0.0, 50.0), (0.2, -300.0), (0.4, -300.0), (0.6, 10.0), (0.8, 10.0)]
    events = export_events(samples, 0.1, 0.0, 1.0)
    assert events["max_export_kw"] == 300.0 and events["export_samples"] == 2
    assert events["export_cleared_after_s"] == pytest.approx(0.3)
    assert events["exported_kwh"] == pytest.approx(300.0 * 0.4 / 3600.0)


def test_settings_compare_at_register_resolution():
    from energizeos.commissioning.actions.settings import compare

    approved = {"uv1_pickup": 0.70, "uv1_clear_time": 10.0, "ieee1547_category": 2}
    resolution = {"uv1_pickup": 0.001, "uv1_clear_time": 0.001, "ieee1547_category": 1.0}
    assert compare({"uv1_pickup": 0.7000004, "uv1_clear_time": 10.0, "ieee1547_category": 2}, approved,
                   resolution) == []
    assert compare({"uv1_pickup": 0.701, "uv1_clear_time": None, "ieee1547_category": 3}, approved, resolution) == [
        "ieee1547_category: read 3, approved 2", "uv1_clear_time: read None, approved 10.0",
        "uv1_pickup: read 0.701, approved 0.7"]
