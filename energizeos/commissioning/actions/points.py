"""Communications and point-to-point: every mapped point read independently over the device's own
link and map, scaled, checked for plausibility and against what the EMS publishes; and comms loss
detected (STALE, alarm) and recovered by itself."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field, model_validator

from energizeos.commissioning.context import StepContext
from energizeos.commissioning.driver import Sleep, StepFailed, Steps, Until
from energizeos.commissioning.registry import Params, action
from energizeos.nodes.device_link import LinkError
from energizeos.sim.maps.sel import load_map
from energizeos.sim.maps.sunspec import SunSpecLayout, SunSpecMapError

SEL_MAPS = {"meter": "sel735", "relay": "sel700g"}
SUNSPEC_BASE = 40000
# (register point, published field, function of the published message) compared per device. Register
# points are the device's engineering values (primary units for the meter, via its own CTR/PTR).
CROSS_CHECKS: dict[str, dict[str, tuple[str, Callable[[Any], float]]]] = {
    "meter": {"p_kw": ("p_total", lambda m: m.p_kw * 1000.0), "voltage_ln_v": ("va_mag", lambda m: m.voltage_ln_v[0]),
              "frequency_hz": ("frequency", lambda m: m.frequency_hz), "ct_ratio": ("ctr", lambda m: m.ct_ratio)},
    "relay": {"frequency_hz": ("frequency", lambda m: m.frequency_hz), "voltage_pu": ("va_pu", lambda m: m.voltage_pu),
              "breaker_closed": ("52A", lambda m: float(m.breaker_state == 1))},
    "bms": {"soc_pct": ("802.SoC", lambda m: m.soc_pct), "dc_voltage_v": ("802.V", lambda m: m.dc_voltage_v)},
    "pcs": {"p_kw": ("701.W", lambda m: m.p_kw * 1000.0), "frequency_hz": ("701.Hz", lambda m: m.frequency_hz),
            "reversion_timeout_s": ("704.WSetRvrtTms", lambda m: m.reversion_timeout_s)},
}
UNIT_SCALE = {"p_kw": 1000.0}  # tolerances are given in the published unit (kW); registers are in W


class PointParams(Params):
    device: Literal["meter", "relay", "bms", "pcs"]
    ranges: dict[str, tuple[float, float]] = Field(description="point -> plausible [low, high] (scaled)")
    cross_check: dict[str, float] = Field(description="published field -> largest accepted difference")

    @model_validator(mode="after")
    def _known(self) -> PointParams:
        unknown = sorted(set(self.cross_check) - set(CROSS_CHECKS[self.device]))
        if unknown:
            raise ValueError(f"no cross-check for {unknown} on the {self.device}; "
                             f"checks: {', '.join(CROSS_CHECKS[self.device])}")
        if self.device in SEL_MAPS:
            points = load_map(SEL_MAPS[self.device]).points
            missing = sorted(name for name in self.ranges if name not in points)
            if missing:
                raise ValueError(f"{SEL_MAPS[self.device]} has no point(s) {missing}")
        else:
            bad = sorted(name for name in self.ranges if "." not in name)
            if bad:
                raise ValueError(f"SunSpec points are named MODEL.Point (e.g. 802.SoC): {bad}")
        return self


def read_sel(ctx: StepContext, device: str) -> dict[str, Any]:
    """Every readable point of an SEL-class map, decoded; the meter's secondary values in primary units
    (its own CTR/PTR). Bit words stay one point each (their bits are looked up by ``flat``)."""
    dmap = load_map(SEL_MAPS[device])
    values: dict[str, Any] = {}
    for address, count in dmap.read_blocks():
        values.update(dmap.decode(ctx.io.read(device, address, count), address))
    if device == "meter" and values.get("ctr") and values.get("ptr"):
        values.update(dmap.to_primary(values))
    return values


def flat(values: dict[str, Any]) -> dict[str, Any]:
    """Points by name, and each bit of a bit word by its bit name (e.g. "52A")."""
    out = dict(values)
    for value in values.values():
        if isinstance(value, dict):
            out.update(value)
    return out


def read_sunspec(ctx: StepContext, device: str) -> dict[str, Any]:
    """Every point of every model in the device's SunSpec chain, as ``MODEL.Point``."""
    try:
        layout = SunSpecLayout.from_model_chain(lambda a, n: ctx.io.read(device, a, n), base=SUNSPEC_BASE)
    except SunSpecMapError as exc:
        raise StepFailed(f"the {device} is not a SunSpec device at {SUNSPEC_BASE}: {exc}") from exc
    values: dict[str, Any] = {}
    for model_id in layout.model_ids:
        if model_id == 1:
            continue  # the common model is text (manufacturer, serial): shown by the scan, not a measurement
        for name, value in layout.read_model(model_id, lambda a, n: ctx.io.read(device, a, n)).items():
            if not isinstance(value, list):  # repeating groups (racks) are checked by the BMS node per rack
                values[f"{model_id}.{name}"] = value
    return values


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


@action("point_to_point", PointParams, ("points_read", "points_not_read", "points_unavailable", "out_of_range",
                                        "out_of_range_count",
                                        "missing", "missing_count", "cross_checked", "cross_check_failures",
                                        "cross_check_failure_count"))
def point_to_point(ctx: StepContext, p: PointParams) -> Steps:
    """Read every mapped point of one device independently, check each listed point's range and compare
    with the value the device node publishes."""
    try:
        points = read_sel(ctx, p.device) if p.device in SEL_MAPS else read_sunspec(ctx, p.device)
    except LinkError as exc:
        raise StepFailed(f"the {p.device} does not answer its own map: {exc}") from exc
    yield Sleep(0.0)  # an action is a generator even when it only reads
    values = flat(points)
    missing = sorted(name for name in p.ranges if _number(values.get(name)) is None)
    out = []
    for name, (low, high) in sorted(p.ranges.items()):
        value = _number(values.get(name))
        if value is not None and not low <= value <= high:
            out.append(f"{name}={value:g} not in [{low:g}, {high:g}]")
    published = ctx.io.fresh(p.device, 2.0)
    failures = []
    for field, tolerance in sorted(p.cross_check.items()):
        point, get = CROSS_CHECKS[p.device][field]
        read, shown = _number(values.get(point)), None if published is None else _number(get(published))
        if read is None or shown is None:
            failures.append(f"{field}: register {point}={read}, published {shown}")
            continue
        scale = UNIT_SCALE.get(field, 1.0)
        if abs(read - shown) / scale > tolerance:
            failures.append(f"{field}: register {point} gives {read / scale:g}, published {shown / scale:g} "
                            f"(accepted difference {tolerance:g})")
    expected = {n for n, pt in load_map(SEL_MAPS[p.device]).points.items() if pt.readable} \
        if p.device in SEL_MAPS else set(points)  # SunSpec: the points of the chain the device declares
    ctx.measure(points_read=len(points), points_not_read=len(expected - set(points)),
                points_unavailable=sum(1 for v in points.values() if v is None),
                missing=missing, missing_count=len(missing), out_of_range=out, out_of_range_count=len(out),
                cross_checked=len(p.cross_check), cross_check_failures=failures,
                cross_check_failure_count=len(failures))


class CommsParams(Params):
    device: Literal["meter", "relay", "bms", "pcs"]
    hold_s: float = Field(3.0, gt=0, description="how long the link stays cut")
    stale_timeout_s: float = Field(5.0, gt=0)
    recover_timeout_s: float = Field(20.0, gt=0)


@action("comms_loss", CommsParams, ("stale_after_s", "alarm_raised", "alarm_after_s", "values_while_stale",
                                    "recovered_after_s", "alarm_cleared"))
def comms_loss(ctx: StepContext, p: CommsParams) -> Steps:
    """Cut the device's link: its topic must turn STALE with no invented values and raise the comms-loss
    alarm; restored, the node must reconnect by itself and clear the alarm."""
    code = f"{p.device.upper()}_COMMS_LOSS"
    t0 = ctx.now()
    yield from ctx.inject("comms_loss", p.device)

    def first_stale() -> float | None:
        return next((s.t for s in ctx.io.since(p.device, t0) if s.msg.quality != 0), None)

    def first_raise() -> float | None:
        return next((s.t for s in ctx.io.since("alarm", t0) if s.msg.code == code and s.msg.event == 0), None)

    yield Until(lambda: first_stale() is not None, p.stale_timeout_s, f"{p.device} data marked stale", required=False)
    yield Until(lambda: first_raise() is not None, p.stale_timeout_s, code, required=False)
    yield Sleep(max(0.0, p.hold_s - (ctx.now() - t0)))
    stale_at, raised_at = first_stale(), first_raise()
    invented = [s.t for s in ctx.io.since(p.device, t0) if s.msg.quality != 0 and _has_numbers(p.device, s.msg)]
    t_clear = ctx.now()
    yield from ctx.clear("comms_loss", p.device)

    def good_again() -> bool:
        return any(s.msg.quality == 0 for s in ctx.io.since(p.device, t_clear))

    def alarm_cleared() -> bool:
        return any(s.msg.code == code and s.msg.event == 1 for s in ctx.io.since("alarm", t_clear))

    recovered = yield Until(good_again, p.recover_timeout_s, f"{p.device} data good again", required=False)
    yield Until(alarm_cleared, 5.0, f"{code} cleared", required=False)
    ctx.measure(stale_after_s=None if stale_at is None else stale_at - t0, alarm_raised=raised_at is not None,
                alarm_after_s=None if raised_at is None else raised_at - t0, values_while_stale=len(invented),
                recovered_after_s=recovered, alarm_cleared=alarm_cleared())


def _has_numbers(device: str, msg: Any) -> bool:
    """A stale message must carry NaN, never the last values."""
    field = {"meter": "p_kw", "relay": "frequency_hz", "bms": "soc_pct", "pcs": "p_kw"}[device]
    return math.isfinite(getattr(msg, field))
