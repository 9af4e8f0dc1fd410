"""Dispatch strategies (nodes/dispatch_strategies.py) as table-driven tests, and the Dispatcher node on the
deterministic SimExecutor: requests from published POI/PCS readings, the urgent path on export or a load
drop, plan following, and the SetDispatchMode service.

Sign conventions: BESS power > 0 discharges; POI power > 0 imports; site load = POI + BESS.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.nodes import dispatch_strategies as strategies
from energizeos.nodes.dispatcher import Dispatcher
from energizeos.runtime import Node, SimExecutor, Time, qos_profile_latched
from energizeos_msgs.msg import DispatchPlan, DispatchRequest, Header, MeterReading, PcsStatus
from energizeos_msgs.srv import SetDispatchMode

S = 1_000_000_000
PROPERTY = settings(max_examples=150, deadline=None, derandomize=True)
finite = st.floats(-5000.0, 5000.0)


# --------------------------------------------------------------------------------------------
# export_limit
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("poi", "bess", "limit", "margin", "expected"), [
    (100.0, 0.0, 0.0, 10.0, 90.0),  # import 100 kW: discharge 90 kW, keep 10 kW import
    (100.0, 50.0, 0.0, 10.0, 140.0),  # feed-forward: the load is 150 kW, not the 100 kW at the POI
    (-50.0, 0.0, 0.0, 10.0, -60.0),  # exporting 50 kW: absorb it and 10 kW more
    (-50.0, 100.0, 0.0, 10.0, 40.0),  # exporting while discharging 100 kW: cut back to 40 kW
    (10.0, 0.0, 0.0, 10.0, 0.0),  # already at the target
    (20.0, 0.0, 50.0, 10.0, 60.0),  # 50 kW export allowed: hold the POI at -40 kW
    (0.0, 0.0, 0.0, 0.0, 0.0),
])
def test_export_limit(poi, bess, limit, margin, expected):
    r = strategies.export_limit(poi, bess, limit, margin)
    assert r.p_kw == pytest.approx(expected)
    assert f"hold POI at {-limit + margin:+.0f} kW" in r.reason


def test_export_limit_defaults_zero_export_with_10_kw_margin():
    assert strategies.export_limit(100.0, 0.0).p_kw == pytest.approx(90.0)
    assert strategies.site_load(-30.0, 80.0) == 50.0


@PROPERTY
@given(finite, finite, st.floats(0.0, 500.0), st.floats(0.0, 50.0))
def test_export_limit_lands_the_poi_on_its_target(poi, bess, limit, margin):
    p = strategies.export_limit(poi, bess, limit, margin).p_kw
    assert strategies.site_load(poi, bess) - p == pytest.approx(-limit + margin, abs=1e-6)


# --------------------------------------------------------------------------------------------
# peak_shaving
# --------------------------------------------------------------------------------------------
PEAK = {"threshold_kw": 500.0, "recharge_below_kw": 350.0, "recharge_max_kw": 250.0}


@pytest.mark.parametrize(("poi", "bess", "allowed", "expected", "reason"), [
    (600.0, 0.0, True, 100.0, "above the 500 kW threshold: discharge 100.0 kW"),
    (500.0, 100.0, True, 100.0, "site load 600.0 kW"),  # holding the POI at the threshold: steady
    (450.0, 100.0, False, 50.0, "discharge 50.0 kW"),  # load fell to 550 kW: shave less
    (500.0, 0.0, True, 0.0, "no shaving needed"),  # at the threshold, not above
    (400.0, 0.0, True, 0.0, "no shaving needed"),  # between recharge level and threshold
    (300.0, 0.0, True, -50.0, "in a recharge window: charge 50.0 kW"),  # POI pushed to 350 kW, not beyond
    (300.0, 0.0, False, 0.0, "outside the recharge windows"),
    (0.0, 0.0, True, -250.0, "charge 250.0 kW"),  # capped at recharge_max_kw
    (-100.0, 0.0, True, -250.0, "charge 250.0 kW"),  # PV surplus: still capped
    (200.0, -100.0, True, -250.0, "site load 100.0 kW"),  # already charging 100 kW: load is 100 kW
    (250.0, -100.0, True, -200.0, "charge 200.0 kW"),  # load 150 kW: 200 kW more keeps the POI at 350 kW
    (349.0, 0.0, True, -1.0, "charge 1.0 kW"),
    (350.0, 0.0, True, 0.0, "no shaving needed"),
])
def test_peak_shaving(poi, bess, allowed, expected, reason):
    r = strategies.peak_shaving(poi, bess, PEAK["threshold_kw"], PEAK["recharge_below_kw"], allowed,
                                PEAK["recharge_max_kw"])
    assert r.p_kw == pytest.approx(expected)
    assert reason in r.reason


@PROPERTY
@given(finite, finite, st.booleans(), st.floats(0.0, 1000.0), st.floats(0.0, 1000.0), st.floats(0.0, 500.0))
def test_peak_shaving_invariants(poi, bess, allowed, threshold, recharge_below, recharge_max):
    load = strategies.site_load(poi, bess)
    p = strategies.peak_shaving(poi, bess, threshold, recharge_below, allowed, recharge_max).p_kw
    if load > threshold:
        assert load - p == pytest.approx(threshold)  # the POI lands on the threshold
    elif p < 0:
        assert allowed and load < recharge_below
        assert -p <= recharge_max + 1e-9  # recharge capped
        assert load - p <= recharge_below + 1e-6  # recharging never pushes the POI above the level
    else:
        assert p == 0.0


# --------------------------------------------------------------------------------------------
# threshold_baseline: OpenEMS Controller.Symmetric.PeakShaving
#   gridPower = meter + ess (the site load without the battery);
#   gridPower >= peakShavingPower -> gridPower - peakShavingPower;
#   gridPower <= rechargePower   -> gridPower - rechargePower; otherwise 0.
# --------------------------------------------------------------------------------------------
def openems_peak_shaving(poi: float, bess: float, peak: float, recharge: float) -> float:
    grid_power = poi + bess
    if grid_power >= peak:
        return grid_power - peak
    if grid_power <= recharge:
        return grid_power - recharge
    return 0.0


BASELINE = [
    # poi, bess, expected (peakShavingPower 500 kW, rechargePower 300 kW)
    (600.0, 0.0, 100.0),
    (500.0, 100.0, 100.0),  # shaving 100 kW with the POI at the threshold: keep shaving
    (499.0, 100.0, 99.0),  # load 599 kW: still a peak, the POI is under the threshold only thanks to the BESS
    (500.0, 0.0, 0.0),
    (400.0, 0.0, 0.0),  # idle band
    (200.0, 0.0, -100.0),  # recharge to hold 300 kW
    (310.0, -100.0, -90.0),  # charging 100 kW lifts the POI to 310 kW: the load is 210 kW, keep charging
    (300.0, 0.0, 0.0),
    (-50.0, 0.0, -350.0),
]


@pytest.mark.parametrize(("poi", "bess", "expected"), BASELINE)
def test_threshold_baseline_openems_semantics(poi, bess, expected):
    """BUG: threshold_baseline compares the raw POI with the thresholds where OpenEMS compares the site
    load (meter + ess); rows (499, 100) and (310, -100) come out 0 kW instead of 99 / -90 kW."""
    assert openems_peak_shaving(poi, bess, 500.0, 300.0) == pytest.approx(expected)  # the reference itself
    assert strategies.threshold_baseline(poi, bess, 500.0, 300.0).p_kw == pytest.approx(expected)


def test_threshold_baseline_tracks_a_falling_peak_in_closed_loop():
    """The request is fed back through the BESS (POI = load - BESS) while the peak eases by 1 kW per
    cycle: OpenEMS shaves 99, 98, 97 ... kW; comparing the raw POI instead alternates shave/idle."""
    bess, requests = 0.0, []
    for load in (599.0, 598.0, 597.0, 596.0, 595.0, 594.0):
        bess = strategies.threshold_baseline(load - bess, bess, 500.0, 300.0).p_kw
        requests.append(bess)
    assert requests == pytest.approx([99.0, 98.0, 97.0, 96.0, 95.0, 94.0])


def test_threshold_baseline_reasons():
    assert "peakShavingPower" in strategies.threshold_baseline(600.0, 0.0, 500.0, 300.0).reason
    assert "rechargePower" in strategies.threshold_baseline(200.0, 0.0, 500.0, 300.0).reason
    assert "idle" in strategies.threshold_baseline(400.0, 0.0, 500.0, 300.0).reason


# --------------------------------------------------------------------------------------------
# plan_value, parse_windows, in_windows
# --------------------------------------------------------------------------------------------
PLAN = [100.0, -50.0, 0.0]


@pytest.mark.parametrize(("now_s", "interval_s", "plan", "expected"), [
    (999.9, 900, PLAN, None),  # before the start
    (1000.0, 900, PLAN, 100.0),
    (1899.9, 900, PLAN, 100.0),
    (1900.0, 900, PLAN, -50.0),
    (2799.0, 900, PLAN, -50.0),
    (2800.0, 900, PLAN, 0.0),
    (3699.9, 900, PLAN, 0.0),
    (3700.0, 900, PLAN, None),  # after the last interval
    (1000.0, 0, PLAN, None),  # no interval
    (1000.0, -900, PLAN, None),
    (1000.0, 900, [], None),
])
def test_plan_value(now_s, interval_s, plan, expected):
    assert strategies.plan_value(plan, 1000.0, interval_s, now_s) == expected


@pytest.mark.parametrize(("text", "expected"), [
    ("0-6,10-14", [(0.0, 6.0), (10.0, 14.0)]),
    (" 0-6 , 22-24 ", [(0.0, 6.0), (22.0, 24.0)]),
    ("6.5-7.25", [(6.5, 7.25)]),
    ("0-24", [(0.0, 24.0)]),
    ("", []),
    (" , ", []),
])
def test_parse_windows(text, expected):
    assert strategies.parse_windows(text) == expected


@pytest.mark.parametrize(("text", "bad"), [
    ("6", "6"),
    ("a-b", "a-b"),
    ("0-6,bad", "bad"),
    ("0-6,14-10", "14-10"),  # backwards
    ("22-6", "22-6"),  # across midnight: write 22-24,0-6
    ("5-5", "5-5"),
    ("0-25", "0-25"),
    ("-1-5", "-1-5"),
    ("0-6-8", "0-6-8"),
    ("nan-5", "nan-5"),
    ("0-inf", "0-inf"),
    ("6-", "6-"),
])
def test_parse_windows_errors_name_the_bad_window(text, bad):
    with pytest.raises(ValueError, match="recharge window") as err:
        strategies.parse_windows(text)
    assert repr(bad) in str(err.value)
    if "," in text:
        assert "'0-6'" not in str(err.value)


@pytest.mark.parametrize(("hour", "expected"), [
    (0.0, True), (5.99, True), (6.0, False), (9.99, False), (10.0, True), (13.99, True), (14.0, False),
    (23.5, False),
])
def test_in_windows(hour, expected):
    assert strategies.in_windows(hour, [(0.0, 6.0), (10.0, 14.0)]) is expected


def test_in_windows_edges():
    assert strategies.in_windows(23.99, [(22.0, 24.0)]) and not strategies.in_windows(24.0, [(22.0, 24.0)])
    assert not strategies.in_windows(3.0, [])


# --------------------------------------------------------------------------------------------
# Dispatcher node on the SimExecutor
# --------------------------------------------------------------------------------------------
class Site:
    """A Dispatcher with a probe node that publishes POI/PCS readings and plans, and records requests."""

    def __init__(self, start: datetime | int = 0, **params) -> None:
        self.ex = SimExecutor(start)
        self.dispatcher = Dispatcher(executor=self.ex, parameter_overrides=params)
        probe = Node("probe", executor=self.ex)
        self.meter_pub = probe.create_publisher(MeterReading, "/site/poi/meter", 10)
        self.pcs_pub = probe.create_publisher(PcsStatus, "/bess/pcs/status", 10)
        self.plan_pub = probe.create_publisher(DispatchPlan, "/ems/plan/active", qos_profile_latched)
        self.mode_client = probe.create_client(SetDispatchMode, "/ems/dispatch/mode")
        self.requests: list[tuple[float, DispatchRequest]] = []
        self.t0 = self.ex.clock.nanoseconds
        probe.create_subscription(DispatchRequest, "/ems/dispatch/request",
                                  lambda m: self.requests.append((self.now_s(), m)), 10)

    def now_s(self) -> float:
        return (self.ex.clock.nanoseconds - self.t0) / S

    def meter(self, p_kw: float, quality: int = MeterReading.QUALITY_GOOD, sampled_s: float | None = None) -> None:
        self.meter_pub.publish(MeterReading(header=self.header(sampled_s), source="meter_poi", quality=quality,
                                            p_kw=p_kw))
        self.ex.run_pending()

    def pcs(self, p_kw: float, quality: int = PcsStatus.QUALITY_GOOD, sampled_s: float | None = None) -> None:
        self.pcs_pub.publish(PcsStatus(header=self.header(sampled_s), source="pcs", quality=quality, p_kw=p_kw))
        self.ex.run_pending()

    def header(self, sampled_s: float | None) -> Header:
        """A reading's header stamped with its sample time (seconds from the start); None leaves it unset."""
        return Header() if sampled_s is None else Header(stamp=Time(self.t0 + round(sampled_s * S)).to_msg())

    def until(self, t_s: float) -> None:
        self.ex.spin_until(self.t0 + round(t_s * S))

    def set_mode(self, mode: int, user: str, p_kw: float = 0.0) -> SetDispatchMode.Response:
        response = self.mode_client.call(SetDispatchMode.Request(mode=mode, p_kw=p_kw, user=user))
        self.ex.run_pending()
        return response

    def values(self) -> list[tuple[float, float]]:
        return [(t, m.p_kw) for t, m in self.requests]


def test_export_limit_mode_requests_at_the_control_rate():
    site = Site(mode="export_limit")
    site.pcs(0.0)
    site.meter(300.0)
    assert site.requests == []  # no request before the first control tick (nothing to correct yet)
    site.until(2.0)
    assert site.values() == [(1.0, 290.0), (2.0, 290.0)]
    msg = site.requests[0][1]
    assert msg.mode == DispatchRequest.MODE_EXPORT_LIMIT and msg.source == "dispatcher"
    assert msg.request_id + 1 == site.requests[1][1].request_id
    assert not msg.reason.startswith("urgent")
    assert Time.from_msg(msg.header.stamp).nanoseconds == site.t0 + S


def test_export_reading_triggers_an_urgent_request_before_the_next_tick():
    site = Site(mode="export_limit")
    site.pcs(0.0)
    site.meter(300.0)
    site.until(1.0)  # tick: 290 kW
    site.pcs(290.0)
    site.until(1.25)
    site.meter(15.0)  # import 15 kW, load 305 kW: nothing urgent
    assert [t for t, _ in site.requests] == [1.0]
    site.until(1.5)
    site.meter(-20.0)  # the load dropped: the site exports 20 kW
    assert [t for t, _ in site.requests] == [1.0, 1.5]
    msg = site.requests[-1][1]
    assert msg.reason.startswith("urgent: ")
    assert msg.p_kw == pytest.approx(-20.0 + 290.0 - 10.0)  # load 270 kW, keep 10 kW import
    site.until(2.0)
    assert [t for t, _ in site.requests] == [1.0, 1.5, 2.0]  # and the regular tick still runs
    assert not site.requests[-1][1].reason.startswith("urgent")


def test_load_drop_below_the_last_request_is_urgent_before_any_export_shows():
    site = Site(mode="export_limit")
    site.pcs(0.0)
    site.meter(300.0)
    site.until(1.0)  # 290 kW requested
    site.pcs(100.0)  # the PCS is still ramping up
    site.until(1.2)
    site.meter(50.0)  # importing, but the load (150 kW) is now under the 290 kW last asked for
    assert [t for t, _ in site.requests] == [1.0, 1.2]
    assert site.requests[-1][1].reason.startswith("urgent: ")
    assert site.requests[-1][1].p_kw == pytest.approx(140.0)


STAMPED = datetime(2025, 7, 2, 23, tzinfo=UTC)  # readings stamped at 0 ns would count as unstamped


def discharging_290_kw() -> Site:
    """Zero export with stamped readings: PCS 0 kW and POI 300 kW sampled at 0 s, 290 kW requested at 1 s."""
    site = Site(STAMPED, mode="export_limit")
    site.pcs(0.0, sampled_s=0.0)
    site.meter(300.0, sampled_s=0.0)
    site.until(1.0)
    return site


def test_a_poi_reading_sampled_after_the_pcs_reading_is_not_taken_for_a_load_drop():
    # The meter is read after the PCS took its new set-point, the PCS reading is from before: POI + PCS
    # under-reads the load by the whole step. Read as a load drop, it cut the discharge every other step
    # (measured in the savings graph at a 60 s step: on-peak POI 10 kW and 170 kW in turn).
    site = discharging_290_kw()
    site.until(1.2)
    site.meter(12.0, sampled_s=1.2)  # the PCS now delivers 288 kW; its last reading says 0 kW
    assert [t for t, _ in site.requests] == [1.0]
    site.pcs(288.0, sampled_s=1.2)  # the pair: load 300 kW, nothing to correct
    assert [t for t, _ in site.requests] == [1.0]
    site.until(2.0)
    assert site.values()[-1] == (2.0, pytest.approx(290.0))


def test_an_unpaired_poi_reading_that_shows_export_is_still_acted_on_at_once():
    site = discharging_290_kw()
    site.until(1.3)
    site.meter(-20.0, sampled_s=1.3)  # exporting: no PCS reading is needed to know that
    assert [t for t, _ in site.requests] == [1.0, 1.3] and site.requests[-1][1].reason.startswith("urgent: ")


def test_a_load_drop_is_acted_on_when_the_pcs_reading_that_pairs_with_the_poi_reading_arrives():
    site = discharging_290_kw()
    site.until(1.2)
    site.meter(50.0, sampled_s=1.2)  # unpaired: not yet known whether the load dropped
    assert [t for t, _ in site.requests] == [1.0]
    site.pcs(100.0, sampled_s=1.2)  # the PCS was still ramping: load 150 kW, under the 290 kW asked for
    assert [t for t, _ in site.requests] == [1.0, 1.2]
    assert site.requests[-1][1].reason.startswith("urgent: ") and site.requests[-1][1].p_kw == pytest.approx(140.0)


def test_a_control_tick_between_a_poi_reading_and_its_pcs_reading_holds_the_last_request():
    site = discharging_290_kw()
    site.meter(12.0, sampled_s=1.9)
    site.until(2.0)
    assert site.values()[-1] == (2.0, pytest.approx(290.0))
    assert "newer than the PCS reading" in site.requests[-1][1].reason
    # steady: a PCS read at 2.1 s (after the last request) still explains a POI read at 2.9 s, and the load
    # rise it shows is acted on (a meter read more often than the PCS is not frozen out)
    site.until(2.1)
    site.pcs(288.0, sampled_s=2.1)
    site.until(2.9)
    site.meter(30.0, sampled_s=2.9)
    site.until(3.0)
    assert site.values()[-1] == (3.0, pytest.approx(308.0)) and "newer" not in site.requests[-1][1].reason


def test_urgent_export_uses_the_configured_export_limit():
    site = Site(mode="export_limit", export_limit_kw=50.0)
    site.pcs(0.0)
    site.meter(100.0)
    site.until(1.0)  # hold the POI at -40 kW: 140 kW
    assert site.values() == [(1.0, 140.0)]
    site.pcs(200.0)  # the PCS overshoots
    site.until(1.3)
    site.meter(-30.0)  # exporting 30 kW: inside the 50 kW limit, load 170 kW above the request: not urgent
    assert [t for t, _ in site.requests] == [1.0]
    site.until(1.4)
    site.meter(-60.0)  # exporting 60 kW: beyond the limit (load 140 kW, not below the request)
    assert [t for t, _ in site.requests] == [1.0, 1.4]
    assert site.requests[-1][1].reason.startswith("urgent: ") and site.requests[-1][1].p_kw == pytest.approx(180.0)


def test_event_driven_sends_a_request_on_every_poi_reading():
    site = Site(mode="export_limit", event_driven=True)
    site.pcs(0.0)
    site.meter(300.0)
    assert site.requests == []  # still nothing before the first tick
    site.until(1.0)
    site.pcs(290.0)
    site.until(1.1)
    site.meter(12.0)  # load 302 kW: not urgent, but event-driven
    site.until(1.2)
    site.meter(-5.0)  # export: urgent
    assert site.values() == [(1.0, 290.0), (1.1, pytest.approx(292.0)), (1.2, pytest.approx(275.0))]
    assert [m.reason.startswith("urgent") for _, m in site.requests] == [False, False, True]


def test_no_fresh_reading_means_standby():
    site = Site(mode="export_limit")
    site.until(1.0)
    site.pcs(0.0)
    site.meter(300.0, quality=MeterReading.QUALITY_STALE)
    site.until(2.0)
    site.meter(300.0)
    site.pcs(0.0, quality=PcsStatus.QUALITY_INVALID)
    site.until(3.0)
    assert site.values() == [(1.0, 0.0), (2.0, 0.0), (3.0, 0.0)]
    assert all("no fresh POI or PCS reading" in m.reason for _, m in site.requests)


@pytest.mark.parametrize(("hour", "poi", "expected", "reason"), [
    (10.5, 700.0, 200.0, "above the 500 kW threshold"),
    (10.5, 200.0, -150.0, "in a recharge window"),  # load 200 kW: recharge up to 350 kW at the POI
    (16.0, 200.0, 0.0, "outside the recharge windows"),
    (3.0, 0.0, -250.0, "charge 250.0 kW"),
])
def test_peak_shaving_mode_with_tou_windows(hour, poi, expected, reason):
    start = datetime(2024, 1, 15, int(hour), int(hour % 1 * 60), tzinfo=UTC)
    site = Site(start, mode="peak_shaving", utc_offset_h=0.0)
    site.pcs(0.0)
    site.meter(poi)
    site.until(1.0)
    ((_t, msg),) = site.requests
    assert msg.mode == DispatchRequest.MODE_PEAK_SHAVING
    assert msg.p_kw == pytest.approx(expected) and reason in msg.reason


def test_peak_shaving_windows_are_in_site_local_time():
    start = datetime(2024, 1, 15, 18, 30, tzinfo=UTC)  # 10:30 at UTC-8: inside 10-14
    site = Site(start, mode="peak_shaving")  # utc_offset_h defaults to -8
    site.pcs(0.0)
    site.meter(200.0)
    site.until(1.0)
    assert site.requests[0][1].p_kw == pytest.approx(-150.0)


def test_threshold_mode_uses_the_baseline():
    site = Site(mode="threshold")
    site.pcs(0.0)
    site.meter(600.0)
    site.until(1.0)
    ((_t, msg),) = site.requests
    assert msg.mode == DispatchRequest.MODE_PEAK_SHAVING
    assert msg.p_kw == pytest.approx(100.0) and "peakShavingPower" in msg.reason


def publish_plan(site: Site, p_kw: list[float], peak: list[float] | None = None) -> None:
    site.plan_pub.publish(DispatchPlan(plan_id=7, start=Time(site.t0).to_msg(), interval_s=900,
                                       status=DispatchPlan.STATUS_ACTIVE, p_kw=p_kw,
                                       peak_threshold_kw=peak or []))
    site.ex.run_pending()


def test_plan_mode_follows_the_plan_interval_by_interval():
    site = Site(mode="plan", control_rate_hz=0.1)  # a tick every 10 s
    site.pcs(0.0)
    site.meter(800.0)
    publish_plan(site, [120.0, -60.0])
    site.until(1810.0)
    by_time = dict(site.values())
    assert by_time[10.0] == pytest.approx(120.0) and by_time[890.0] == pytest.approx(120.0)
    assert by_time[900.0] == pytest.approx(-60.0) and by_time[1790.0] == pytest.approx(-60.0)
    assert by_time[1800.0] == 0.0 and by_time[1810.0] == 0.0
    reasons = {t: m.reason for t, m in site.requests}
    assert reasons[10.0] == "plan 7: +120.0 kW for this interval"
    assert "does not cover now" in reasons[1810.0]
    assert site.requests[0][1].mode == DispatchRequest.MODE_PLAN


def test_plan_mode_shaves_what_the_forecast_missed():
    site = Site(mode="plan")
    site.pcs(0.0)
    site.meter(500.0)
    publish_plan(site, [120.0], peak=[300.0])  # 500 - 120 = 380 kW at the POI > 300 kW threshold
    site.until(1.0)
    assert site.requests[0][1].p_kw == pytest.approx(200.0)


def test_plan_mode_charges_a_headroom_under_the_threshold_and_never_discharges_for_it():
    # charging that rides the threshold overshoots it by the one-reading-late loop: each overshoot became the
    # month's new peak, which the next night charged up to again (measured: +8 kW in a MediumOffice July)
    site = Site(mode="plan")  # charge_headroom_pct 1: 297 kW under a 300 kW threshold
    site.pcs(0.0)
    site.meter(200.0)
    publish_plan(site, [-150.0], peak=[300.0])  # 200 + 150 = 350 kW at the POI: charge 97 kW instead
    site.until(1.0)
    assert site.requests[-1][1].p_kw == pytest.approx(-97.0) and "1 % under the 300 kW threshold" in \
        site.requests[-1][1].reason
    site.meter(298.5)  # the load now 298.5 kW with the battery idle: above the headroom, under the threshold
    site.until(2.0)
    assert site.requests[-1][1].p_kw == 0.0  # no charging, and no discharge for the headroom's sake
    flat = Site(mode="plan", charge_headroom_pct=0.0)
    flat.pcs(0.0)
    flat.meter(200.0)
    publish_plan(flat, [-150.0], peak=[300.0])
    flat.until(1.0)
    assert flat.requests[-1][1].p_kw == pytest.approx(-100.0)


def test_plan_mode_without_a_plan_is_standby():
    site = Site(mode="plan")
    site.pcs(0.0)
    site.meter(500.0)
    site.until(1.0)
    assert site.values() == [(1.0, 0.0)] and "no active plan" in site.requests[0][1].reason


def test_export_cap_never_raises_a_charge_request():
    """BUG: in peak_shaving/threshold mode the dispatcher's export cap returns max(0, load + limit - margin)
    whenever the strategy's request is above that ceiling; with a PV surplus (negative site load) the
    ceiling is negative, so a 50 kW recharge is replaced by 0 kW and the site exports 50 kW more. A cap
    meant to avoid export may only lower a request, never raise a charge toward 0 kW."""
    site = Site(datetime(2024, 1, 15, 10, 30, tzinfo=UTC), mode="peak_shaving", utc_offset_h=0.0,
                recharge_max_kw=50.0)
    site.pcs(0.0)
    site.meter(-100.0)  # exporting 100 kW with the BESS idle, inside a recharge window
    assert strategies.peak_shaving(-100.0, 0.0, 500.0, 350.0, True, 50.0).p_kw == -50.0  # what the mode asks
    site.until(1.0)
    p_kw = site.requests[0][1].p_kw
    assert p_kw <= -50.0, f"recharge of 50 kW while exporting 100 kW became a request of {p_kw} kW"


def test_set_mode_manual_by_a_named_user_is_applied_at_once():
    site = Site(mode="standby")
    site.until(0.5)
    response = site.set_mode(DispatchRequest.MODE_MANUAL, "operator", 42.0)
    assert response.accepted and response.message == "mode manual"
    assert site.values() == [(0.5, 42.0)]
    assert site.requests[0][1].mode == DispatchRequest.MODE_MANUAL
    assert site.requests[0][1].reason == "manual set-point by operator"
    site.until(1.0)
    assert site.values()[-1] == (1.0, 42.0)
    assert site.set_mode(DispatchRequest.MODE_STANDBY, "operator").accepted
    assert site.values()[-1] == (1.0, 0.0)


@pytest.mark.parametrize(("mode", "user", "p_kw", "message"), [
    (DispatchRequest.MODE_MANUAL, "", 42.0, "must name the user"),
    (DispatchRequest.MODE_MANUAL, "   ", 42.0, "must name the user"),
    (9, "operator", 0.0, "unknown mode 9"),
    (DispatchRequest.MODE_MANUAL, "operator", math.nan, "p_kw must be a number"),
    (DispatchRequest.MODE_MANUAL, "operator", math.inf, "p_kw must be a number"),
])
def test_set_mode_refusals_change_nothing(mode, user, p_kw, message):
    site = Site(mode="standby")
    response = site.set_mode(mode, user, p_kw)
    assert not response.accepted and message in response.message
    assert site.dispatcher.mode == "standby" and site.dispatcher.manual_kw == 0.0
    assert site.requests == []  # no request published for a refused change
    site.until(1.0)
    assert site.values() == [(1.0, 0.0)]
