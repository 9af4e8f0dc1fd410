"""dispatcher: turns site goals into /ems/dispatch/request at the control rate (default 1 Hz).

Modes: standby, export_limit (zero export / self-consumption), peak_shaving (TOU-aware recharge),
plan (follow /ems/plan/active), manual (a named user's set-point), threshold (the OpenEMS-style
fixed-threshold baseline). A POI reading that shows export, or a drop in site load, sends a new
request at once instead of waiting for the next period, so export is cleared fast during load
drops. The site load is POI + PCS only for readings that belong together: a POI reading newer than
the PCS reading, with a request since that moved by more than the export margin (the new set-point
may have taken effect between the two samples), is not acted on until the PCS is read again, unless
it shows export. Every discharge keeps an import margin against export sized from the site's own
load (nodes/export_margin.py). The safety arbiter decides what is actually done.
"""

from __future__ import annotations

import math
from collections import deque
from datetime import timedelta

from energizeos import runtime
from energizeos.nodes import dispatch_strategies as strategies
from energizeos.nodes.arbiter_rules import belong_together, sampled_ns
from energizeos.nodes.conditions import ConditionReporter
from energizeos.nodes.demand_interval import DemandInterval
from energizeos.nodes.events import EventReporter
from energizeos.nodes.export_margin import ExportMargin
from energizeos.runtime import MIN_RATE_HZ, Node, ParameterDescriptor, Time, qos_profile_latched
from energizeos_msgs.msg import DispatchPlan, DispatchRequest, Header, MeterReading, PcsStatus
from energizeos_msgs.srv import SetDispatchMode

MODES = {"standby": DispatchRequest.MODE_STANDBY, "peak_shaving": DispatchRequest.MODE_PEAK_SHAVING,
         "export_limit": DispatchRequest.MODE_EXPORT_LIMIT, "plan": DispatchRequest.MODE_PLAN,
         "manual": DispatchRequest.MODE_MANUAL, "threshold": DispatchRequest.MODE_PEAK_SHAVING}
GOOD = 0


class Dispatcher(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("dispatcher", **kwargs)
        self.mode = self.declare_parameter("mode", "peak_shaving", ParameterDescriptor(
            "standby | export_limit | peak_shaving | plan | manual | threshold", choices=tuple(MODES))).value
        rate = self.declare_parameter("control_rate_hz", 1.0, ParameterDescriptor(
            "requests per second", min_value=MIN_RATE_HZ, max_value=20.0)).value
        self.peak_kw = self.declare_parameter("peak_threshold_kw", 500.0, ParameterDescriptor(
            "keep POI import under this", min_value=0.0)).value
        self.recharge_kw = self.declare_parameter("recharge_below_kw", 350.0, ParameterDescriptor(
            "recharge while the site load stays under this", min_value=0.0)).value
        self.recharge_max_kw = self.declare_parameter("recharge_max_kw", 250.0, ParameterDescriptor(
            "largest recharge power", min_value=0.0)).value
        self.windows = strategies.parse_windows(self.declare_parameter(
            "recharge_windows", "0-6,10-14", ParameterDescriptor("local hours when recharging is allowed")).value)
        self.utc_offset_h = self.declare_parameter("utc_offset_h", -8.0, ParameterDescriptor(
            "site standard time for the recharge windows")).value
        self.export_limit_kw = self.declare_parameter("export_limit_kw", 0.0).value
        self.export_margin_kw = self.declare_parameter("export_margin_kw", 10.0, ParameterDescriptor(
            "largest import kept at the POI against export (all of it until a day of site load is seen)",
            min_value=0.0)).value
        margin_min_kw = self.declare_parameter("export_margin_min_kw", 5.0, ParameterDescriptor(
            "smallest import kept at the POI against export: the margin follows the largest drop of the site "
            "load over one control period in the last day, between this and export_margin_kw",
            min_value=0.0)).value
        if margin_min_kw > self.export_margin_kw:  # refused, not clamped: one of the two is not what was meant
            raise runtime.ParameterError(
                f"node '{self.get_name()}': export_margin_min_kw ({margin_min_kw:g}) is above export_margin_kw "
                f"({self.export_margin_kw:g}): the least margin kept against export cannot exceed the most")
        self.event_driven = self.declare_parameter("event_driven", False, ParameterDescriptor(
            "also send a request on every POI reading (control at the meter rate)")).value
        self.baseline_peak_kw = self.declare_parameter("baseline_peak_shaving_kw", 500.0).value
        self.baseline_recharge_kw = self.declare_parameter("baseline_recharge_kw", 300.0).value
        self.charge_headroom_pct = self.declare_parameter("charge_headroom_pct", 1.0, ParameterDescriptor(
            "charging under a plan keeps the POI this much under the plan's threshold", min_value=0.0,
            max_value=20.0)).value
        self.peak_alarm_s = self.declare_parameter("peak_alarm_delay_s", 60.0, ParameterDescriptor(
            "POI import above the peak threshold this long raises EMS_PEAK_NOT_SHAVED", min_value=1.0)).value
        self.conditions = ConditionReporter(self)
        self.events = EventReporter(self)
        self._over_since_ns: int | None = None  # POI import above the threshold since
        self._under_since_ns: int | None = None
        self.manual_kw = 0.0
        self.manual_user = ""
        self.meter: MeterReading | None = None
        self.pcs_kw: float | None = None
        self.pcs_sampled_ns: int | None = None
        self._sent: deque[tuple[int, float]] = deque(maxlen=64)  # (stamp, kW) of recent requests: to pair readings
        self.pair_window_ns = round(self.declare_parameter("reading_pair_window_s", 0.25, ParameterDescriptor(
            "a PCS reading this much older than the POI reading does not explain it", min_value=0.0)).value * 1e9)
        self.plan: DispatchPlan | None = None
        self.last: DispatchRequest | None = None
        self._request_id = self.get_clock().now().nanoseconds // 1_000_000 * 1000
        self.pub = self.create_publisher(DispatchRequest, "/ems/dispatch/request", 10)
        self.create_subscription(MeterReading, "/site/poi/meter", self.on_meter, 10)
        self.create_subscription(PcsStatus, "/bess/pcs/status", self.on_pcs, 10)
        self.create_subscription(DispatchPlan, "/ems/plan/active", self.on_plan, qos_profile_latched)
        self.create_service(SetDispatchMode, "/ems/dispatch/mode", self.on_set_mode)
        self.period_s = 1.0 / rate
        self._margin_stamp: int | None = None  # the POI reading the margin last saw
        self.margin = ExportMargin(self.period_s, margin_min_kw, self.export_margin_kw)
        self.demand = DemandInterval(self.declare_parameter("demand_interval_s", 900.0, ParameterDescriptor(
            "the utility's demand interval: a held threshold keeps its mean import", min_value=60.0)).value)
        self.create_timer(self.period_s, self.tick)

    def on_pcs(self, msg: PcsStatus) -> None:
        waiting = self.meter is not None and not self._paired()
        self.pcs_kw = msg.p_kw if msg.quality == GOOD else None
        self.pcs_sampled_ns = sampled_ns(msg.header.stamp)
        if waiting and self._paired():  # the POI reading that came first can be acted on now
            self._fast_path()

    def on_plan(self, msg: DispatchPlan) -> None:
        self.plan = msg

    def on_meter(self, msg: MeterReading) -> None:
        self.meter = msg if msg.quality == GOOD else None
        if self.meter is not None:
            self.demand.add(self._now_s(), msg.p_kw)
        self._fast_path()

    def _paired(self) -> bool:
        """Whether POI + PCS is the site load now (arbiter_rules.belong_together, on this node's requests)."""
        if self.meter is None or self.last is None:
            return True
        # the request in force when the PCS was read (one sent at the same instant had not reached it yet)
        pcs_ns = self.pcs_sampled_ns
        earlier = [kw for ns, kw in self._sent if pcs_ns is not None and ns < pcs_ns]
        then = earlier[-1] if earlier else (self.pcs_kw or 0.0)
        return belong_together(sampled_ns(self.meter.header.stamp), pcs_ns, then, self.last.p_kw,
                               self.pair_window_ns, self.export_margin_kw)

    def _fast_path(self) -> None:
        """Export at the POI, or a request that would now export, is acted on at once."""
        if self.meter is None or self.last is None or self.pcs_kw is None:
            return
        poi = self.meter.p_kw
        exporting = poi < -self.export_limit_kw
        # unpaired, POI + PCS under-reads the load while the PCS rises to its new set-point: acting on it cut
        # the discharge every other step (measured)
        would_export = self._paired() and self.last.p_kw > 0 and strategies.site_load(poi, self.pcs_kw) < self.last.p_kw
        if exporting or would_export:
            self.tick(urgent=True)
        elif self.event_driven:
            self.tick()

    def compute(self) -> tuple[float, str]:
        """The request for now from the active mode, with every discharge capped against export."""
        if self.mode == "standby":
            return 0.0, "standby"
        if self.meter is None or self.pcs_kw is None or not math.isfinite(self.meter.p_kw):
            if self.mode == "manual":
                return self.manual_kw, f"manual set-point by {self.manual_user or 'configuration'}"
            return 0.0, "no fresh POI or PCS reading: standby"
        if not self._paired() and self.last is not None and self.meter.p_kw >= -self.export_limit_kw:
            return self.last.p_kw, "the POI reading is newer than the PCS reading: holding the last request"
        p_kw, reason = self._mode_request(self.meter.p_kw, self.pcs_kw)
        if p_kw > 0 and self.mode != "export_limit":  # every discharge keeps the export limit in view
            margin = self.margin.margin_kw()
            ceiling = max(0.0, strategies.site_load(self.meter.p_kw, self.pcs_kw) + self.export_limit_kw - margin)
            if p_kw > ceiling:
                return ceiling, f"{reason}; capped at {ceiling:.1f} kW to avoid export ({margin:.1f} kW margin)"
        return p_kw, reason

    def _mode_request(self, poi: float, bess: float) -> tuple[float, str]:
        if self.mode == "manual":
            return self.manual_kw, f"manual set-point by {self.manual_user or 'configuration'}"
        if self.mode == "export_limit":
            r = strategies.export_limit(poi, bess, self.export_limit_kw, self.margin.margin_kw())
        elif self.mode == "threshold":
            r = strategies.threshold_baseline(poi, bess, self.baseline_peak_kw, self.baseline_recharge_kw)
        elif self.mode == "plan":
            return self._plan_request(poi, bess)
        else:
            local = self.get_clock().now().to_datetime() + timedelta(hours=self.utc_offset_h)
            hour = local.hour + local.minute / 60.0
            r = strategies.peak_shaving(poi, bess, self._hold_kw(self.peak_kw), self.recharge_kw,
                                        strategies.in_windows(hour, self.windows), self.recharge_max_kw)
        return r.p_kw, r.reason

    def _now_s(self) -> float:
        return self.get_clock().now().nanoseconds / 1e9

    def _hold_kw(self, threshold_kw: float) -> float:
        """The POI level to hold now for the demand interval's mean to stay at ``threshold_kw``. What is
        left to make up is spread over at least a minute, so the interval's last seconds are not asked
        for a burst of full power (the arbiter's ramp would not allow it anyway)."""
        return self.demand.target_kw(self._now_s(), threshold_kw, max(self.period_s, 60.0))

    def _plan_request(self, poi: float, bess: float) -> tuple[float, str]:
        plan = self.plan
        if plan is None:
            return 0.0, "no active plan: standby"
        now_s = self._now_s()
        start_s = Time.from_msg(plan.start).seconds()
        value = strategies.plan_value(list(plan.p_kw), start_s, plan.interval_s, now_s)
        if value is None:
            return 0.0, f"plan {plan.plan_id} does not cover now: standby"
        index = int((now_s - start_s) // plan.interval_s)
        reason = f"plan {plan.plan_id}: {value:+.1f} kW for this interval"
        threshold = plan.peak_threshold_kw[index] if index < len(plan.peak_threshold_kw) else None
        load = strategies.site_load(poi, bess)
        hold = None if threshold is None else self._hold_kw(threshold)
        if hold is not None and value < 0:
            # charging keeps a headroom under the threshold: acting a reading late, a charge that rides the
            # threshold overshoots it a little, and each overshoot is the month's new peak that the next
            # night charges up to again (measured, MediumOffice July: +0.5 kW a night, +8 kW in the month)
            room = self._hold_kw(threshold * (1.0 - self.charge_headroom_pct / 100.0))
            if load - value > room:
                value = min(0.0, load - room)
                reason = (f"plan {plan.plan_id}: {value:+.1f} kW, charging held at {room:.0f} kW "
                          f"({self.charge_headroom_pct:g} % under the {threshold:.0f} kW threshold)")
        if hold is not None and load - value > hold:  # reality above the forecast: shave the rest
            value = load - hold  # (charging less comes first: a plan never charges into a new peak)
            reason = (f"plan {plan.plan_id}: {value:+.1f} kW to hold the POI at {hold:.0f} kW "
                      f"(interval mean at {threshold:.0f} kW)")
        return value, reason

    def _watch_peak(self) -> None:
        """Raise EMS_PEAK_NOT_SHAVED when peak shaving holds the POI above its threshold for too long."""
        if self.mode != "peak_shaving" or self.meter is None or not math.isfinite(self.meter.p_kw):
            self._over_since_ns = self._under_since_ns = None
            return
        now = self.get_clock().now().nanoseconds
        poi, delay = self.meter.p_kw, round(self.peak_alarm_s * 1e9)
        if poi > self.peak_kw * 1.02 + 1.0:
            self._under_since_ns = None
            self._over_since_ns = self._over_since_ns or now
            if now - self._over_since_ns >= delay:
                self.conditions.set("EMS_PEAK_NOT_SHAVED", True, 3,
                                    f"POI import {poi:.0f} kW above the {self.peak_kw:.0f} kW peak threshold for "
                                    f"{(now - self._over_since_ns) / 1e9:.0f} s",
                                    {"poi_kw": round(poi, 1), "peak_threshold_kw": self.peak_kw})
        else:
            self._over_since_ns = None
            self._under_since_ns = self._under_since_ns or now
            if now - self._under_since_ns >= delay:
                self.conditions.set("EMS_PEAK_NOT_SHAVED", False)

    def _watch_load(self) -> None:
        """One site load a control period, from a new POI reading and the PCS reading it belongs with: the
        export margin's input (a reading that stopped coming must not read as a steady load)."""
        if self.meter is None or self.pcs_kw is None or not self._paired():
            return
        stamp = sampled_ns(self.meter.header.stamp)
        if stamp is None or stamp == self._margin_stamp:
            return
        self._margin_stamp = stamp
        self.margin.add(stamp / 1e9, strategies.site_load(self.meter.p_kw, self.pcs_kw))

    def tick(self, urgent: bool = False) -> None:
        if not urgent:
            self._watch_peak()
            self._watch_load()
        p_kw, reason = self.compute()
        self._request_id += 1
        msg = DispatchRequest(header=Header(stamp=self.get_clock().now().to_msg(), frame_id="site"),
                              source=self.get_name(), request_id=self._request_id, mode=MODES[self.mode],
                              p_kw=float(p_kw), reason=("urgent: " if urgent else "") + reason,
                              peak_threshold_kw=self.threshold_in_force())
        self.pub.publish(msg)
        self.last = msg
        self._sent.append((sampled_ns(msg.header.stamp) or 0, msg.p_kw))

    def threshold_in_force(self) -> float:
        """The POI import limit the active mode holds (NaN when it holds none): reports draw it."""
        if self.mode == "peak_shaving":
            return float(self.peak_kw)
        if self.mode == "threshold":
            return float(self.baseline_peak_kw)
        if self.mode == "plan" and self.plan is not None and len(self.plan.peak_threshold_kw):
            now_s = self.get_clock().now().nanoseconds / 1e9
            index = int((now_s - Time.from_msg(self.plan.start).seconds()) // self.plan.interval_s)
            if 0 <= index < len(self.plan.peak_threshold_kw):
                return float(self.plan.peak_threshold_kw[index])
        return math.nan

    def on_set_mode(self, request: SetDispatchMode.Request,
                    response: SetDispatchMode.Response) -> SetDispatchMode.Response:
        names = {v: k for k, v in MODES.items() if k != "threshold"}
        if request.mode not in names:
            response.accepted, response.message = False, f"unknown mode {request.mode}; modes: {names}"
            return response
        if not request.user.strip():
            response.accepted, response.message = False, "a mode change must name the user who asks"
            return response
        if not math.isfinite(request.p_kw):
            response.accepted, response.message = False, "p_kw must be a number"
            return response
        old_mode, old_kw = self.mode, self.manual_kw
        self.mode = names[request.mode]
        self.manual_kw, self.manual_user = request.p_kw, request.user
        self.events.report("mode_change", f"dispatch mode {old_mode} -> {self.mode}"
                           + (f" at {request.p_kw:.1f} kW" if self.mode == "manual" else ""), request.user,
                           old_mode=old_mode, new_mode=self.mode, old_manual_kw=old_kw, manual_kw=request.p_kw)
        self.get_logger().warning(f"mode set to {self.mode} by {request.user!r}"
                                  + (f" at {request.p_kw:.1f} kW" if self.mode == "manual" else ""))
        self.tick()
        response.accepted, response.message = True, f"mode {self.mode}"
        return response


def main(args: list[str] | None = None) -> None:
    runtime.run_node(Dispatcher, args)
