"""safety_arbiter: the only writer of PCS and breaker commands.

It keeps the latest reading of every input with its arrival time, and decides (rules in
arbiter_rules.decide) whenever a dispatch request or a POI meter reading arrives, when the PCS
reading that pairs with a POI reading arrives (export limit), and on a watchdog tick, so a stale
input is noticed even when nothing else happens. Every decision is published with its reasons on
/ems/arbiter/decision, the interlock chain on /ems/arbiter/interlocks, and the command on
/bess/pcs/command. Breaker requests come through one service, /ems/breaker/request, checked
against the whole chain and answered with the reasons.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import replace

from energizeos import runtime
from energizeos.nodes import arbiter_rules as rules
from energizeos.runtime import MIN_RATE_HZ, Node, ParameterDescriptor, Time, qos_profile_latched
from energizeos_msgs.msg import (
    ArbiterDecision,
    BmsStatus,
    BreakerCommand,
    DispatchRequest,
    Header,
    InterlockState,
    MeterReading,
    PcsCommand,
    PcsStatus,
    Permissive,
    RelayStatus,
)
from energizeos_msgs.srv import BreakerRequest

GOOD = 0
SOURCE = "safety_arbiter"


class SafetyArbiter(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("safety_arbiter", **kwargs)
        defaults = rules.Limits()
        values = {name: self.declare_parameter(name, getattr(defaults, name), ParameterDescriptor(
            f"safety limit {name}", min_value=0.0 if name not in ("export_limit_kw",) else -1e6)).value
            for name in defaults.__dataclass_fields__}
        self.limits = rules.Limits(**values)
        self.request_timeout_s = self.declare_parameter("request_timeout_s", 5.0, ParameterDescriptor(
            "a dispatch request older than this counts as 0 kW (dispatcher gone)", min_value=0.5)).value
        self.reversion_s = self.declare_parameter("pcs_reversion_s", 5.0, ParameterDescriptor(
            "PCS reverts to 0 kW if not refreshed within this time", min_value=1.0, max_value=300.0)).value
        tick_hz = self.declare_parameter("watchdog_hz", 2.0, ParameterDescriptor(
            "decisions per second when no input arrives", min_value=MIN_RATE_HZ, max_value=20.0)).value
        self.state = rules.SiteState()
        self.request: DispatchRequest | None = None
        self._request_ns = 0
        self._decision_id = self.get_clock().now().nanoseconds // 1_000_000 * 1000  # unique across restarts
        self.last_decision: rules.Decision | None = None
        self._commands: deque[tuple[int, float]] = deque(maxlen=64)  # (decided at, kW): to pair PCS readings
        self.cmd_pub = self.create_publisher(PcsCommand, "/bess/pcs/command", 10)
        self.breaker_pub = self.create_publisher(BreakerCommand, "/site/poi/relay/command", 10)
        self.decision_pub = self.create_publisher(ArbiterDecision, "/ems/arbiter/decision", 50)
        self.interlock_pub = self.create_publisher(InterlockState, "/ems/arbiter/interlocks", qos_profile_latched)
        self.create_subscription(MeterReading, "/site/poi/meter", self.on_meter, 10)
        self.create_subscription(RelayStatus, "/site/poi/relay", self.on_relay, 10)
        self.create_subscription(BmsStatus, "/bess/bms/status", self.on_bms, 10)
        self.create_subscription(PcsStatus, "/bess/pcs/status", self.on_pcs, 10)
        self.create_subscription(DispatchRequest, "/ems/dispatch/request", self.on_request, 10)
        self.create_service(BreakerRequest, "/ems/breaker/request", self.on_breaker_request)
        self.create_timer(1.0 / tick_hz, self.decide_and_command)
        self.add_on_shutdown(self.to_zero)

    def _now(self) -> int:
        return self.get_clock().now().nanoseconds

    # --- inputs -------------------------------------------------------------------------------
    def on_meter(self, msg: MeterReading) -> None:
        if msg.quality == GOOD and math.isfinite(msg.p_kw):
            meter = rules.MeterIn(msg.p_kw, True, self._now(), rules.sampled_ns(msg.header.stamp))
        else:  # keep the time of the last good reading: the watchdog runs from there
            old = self.state.meter
            never = -(10**18)  # never good: older than any watchdog, even in a simulation that starts at 0
            meter = rules.MeterIn(old.p_kw if old else float("nan"), False, old.received_ns if old else never)
        self.state = replace(self.state, meter=meter)
        self.decide_and_command()  # the export limit acts on every fresh POI reading

    def on_relay(self, msg: RelayStatus) -> None:
        closed = {RelayStatus.BREAKER_CLOSED: True, RelayStatus.BREAKER_OPEN: False}.get(msg.breaker_state)
        relay = rules.RelayIn(closed, msg.trip, msg.lockout_86, msg.close_permissive, msg.voltage_pu,
                              msg.frequency_hz, msg.quality == GOOD, self._now(), bool(msg.active_elements))
        es = rules.update_enter_service(self.state.enter_service, relay, self.limits, self._now())
        if es.in_service_since_ns is not None and self.state.enter_service.in_service_since_ns is None:
            self.get_logger().info("IEEE 1547 enter-service delay complete: ramping in")
        if es.in_service_since_ns is None and self.state.enter_service.in_service_since_ns is not None:
            self.get_logger().warning("left service (trip, open breaker or V/f outside the window)")
        self.state = replace(self.state, relay=relay, enter_service=es)

    def on_bms(self, msg: BmsStatus) -> None:
        self.state = replace(self.state, bms=rules.BmsIn(
            msg.soc_pct, msg.permissive, msg.contactors_closed, msg.state == BmsStatus.STATE_FAULT,
            msg.max_charge_current_a, msg.max_discharge_current_a, msg.dc_voltage_v, msg.quality == GOOD,
            self._now()))

    def on_pcs(self, msg: PcsStatus) -> None:
        meter, before = self.state.meter, self.state.pcs
        sampled = rules.sampled_ns(msg.header.stamp)
        self.state = replace(self.state, pcs=rules.PcsIn(msg.p_kw, msg.quality == GOOD, self._now(),
                                                         msg.quality == GOOD and msg.state == PcsStatus.STATE_FAULT,
                                                         sampled, self._command_at(sampled)))
        if meter is not None and meter.good and before is not None \
                and not rules.readings_paired(meter, before, self.state.last_granted_kw, self.limits):
            self.decide_and_command()  # the POI reading now has its PCS reading: the export limit decides again

    def _command_at(self, sampled_ns: int | None) -> float | None:
        """The command in force at ``sampled_ns``: the last one decided before it (one decided at the same
        instant has not reached the PCS yet); None when unknown."""
        if sampled_ns is None:
            return None
        earlier = [kw for ns, kw in self._commands if ns < sampled_ns]
        return earlier[-1] if earlier else None

    def on_request(self, msg: DispatchRequest) -> None:
        self.request, self._request_ns = msg, self._now()
        self.decide_and_command()

    # --- decisions ----------------------------------------------------------------------------
    def _next_id(self) -> int:
        self._decision_id += 1
        return self._decision_id

    def decide_and_command(self) -> rules.Decision:
        now = self._now()
        request_kw, extra = 0.0, []
        if self.request is not None:
            age = (now - self._request_ns) / 1e9
            if age <= self.request_timeout_s:
                request_kw = self.request.p_kw
            else:
                extra.append(rules.Reason("REQUEST_STALE", f"last dispatch request is {age:.1f} s old "
                                                           f"(timeout {self.request_timeout_s:g} s): 0 kW"))
        decision = rules.decide(self.state, request_kw, self.limits, now)
        if extra:
            decision = replace(decision, reasons=(*extra, *decision.reasons))
        self.state = replace(self.state, last_granted_kw=decision.granted_kw, last_decision_ns=now)
        self._commands.append((now, decision.granted_kw))
        decision_id = self._next_id()
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="pcs")
        self.cmd_pub.publish(PcsCommand(header=header, source=SOURCE, decision_id=decision_id,
                                        enable=decision.granted_kw != 0.0, p_kw=decision.granted_kw,
                                        reversion_timeout_s=self.reversion_s))
        self._publish_decision(decision, decision_id, ArbiterDecision.KIND_DISPATCH,
                               self.request.request_id if self.request else 0,
                               self.request.source if self.request else "", header)
        codes = [r.code for r in decision.reasons]
        if self.last_decision is None or [r.code for r in self.last_decision.reasons] != codes:
            text = "; ".join(r.text for r in decision.reasons) or "granted"
            self.get_logger().info(f"decision {decision_id}: {decision.requested_kw:.1f} -> "
                                   f"{decision.granted_kw:.1f} kW ({text})")
        self.last_decision = decision
        self._publish_interlocks(now, header)
        return decision

    def _publish_decision(self, decision: rules.Decision, decision_id: int, kind: int, request_id: int,
                          request_source: str, header: Header) -> None:
        self.decision_pub.publish(ArbiterDecision(
            header=header, decision_id=decision_id, request_id=request_id, request_source=request_source,
            kind=kind, outcome=decision.outcome, requested_kw=decision.requested_kw, granted_kw=decision.granted_kw,
            reason_codes=[r.code for r in decision.reasons], reason_texts=[r.text for r in decision.reasons]))

    def _publish_interlocks(self, now: int, header: Header) -> None:
        chain = rules.interlock_chain(self.state, self.limits, now)
        close = rules.decide_breaker(self.state, BreakerRequest.Request.ACTION_CLOSE, "interlock-check",
                                     self.limits, now, chain)  # the same chain: built once per decision
        self.interlock_pub.publish(InterlockState(
            header=header,
            dispatch_permitted=all(link.ok for link in chain if link.name != "relay.close_permissive"),
            close_permitted=close.outcome == rules.GRANTED,
            permissives=[Permissive(name=link.name, ok=link.ok, source=link.source, value=link.value,
                                    age_s=link.age_s if link.age_s != float("inf") else -1.0) for link in chain]))

    def on_breaker_request(self, request: BreakerRequest.Request,
                           response: BreakerRequest.Response) -> BreakerRequest.Response:
        now = self._now()
        decision = rules.decide_breaker(self.state, request.action, request.requested_by, self.limits, now)
        decision_id = self._next_id()
        header = Header(stamp=Time(now).to_msg(), frame_id="poi_breaker")
        granted = decision.outcome == rules.GRANTED
        if granted:
            self.breaker_pub.publish(BreakerCommand(header=header, source=SOURCE, decision_id=decision_id,
                                                    action=request.action, requested_by=request.requested_by))
        self._publish_decision(decision, decision_id, ArbiterDecision.KIND_BREAKER, 0, request.requested_by, header)
        action = {0: "open", 1: "close", 2: "reset 86"}.get(request.action, str(request.action))
        self.get_logger().warning(f"breaker {action} requested by {request.requested_by!r} ({request.reason!r}): "
                                  f"{'granted' if granted else 'refused'}: "
                                  + "; ".join(r.text for r in decision.reasons))
        response.accepted = granted
        response.decision_id = decision_id
        response.reason_codes = [r.code for r in decision.reasons]
        response.reason_texts = [r.text for r in decision.reasons]
        return response

    def to_zero(self) -> None:
        """On shutdown: command 0 kW (the PCS would also revert by itself when we stop)."""
        header = Header(stamp=self.get_clock().now().to_msg(), frame_id="pcs")
        self.cmd_pub.publish(PcsCommand(header=header, source=SOURCE, decision_id=self._next_id(), enable=False,
                                        p_kw=0.0, reversion_timeout_s=self.reversion_s))


def main(args: list[str] | None = None) -> None:
    runtime.run_node(SafetyArbiter, args)
