"""Alarm engine: delays, hysteresis, the ISA-18.2 lifecycle, shelving, chatter and cause linking (pure)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from energizeos.knowledge.catalogue import Catalogue, load_catalogue
from energizeos.nodes.alarm_engine import (
    ACTIVE_ACKED,
    ACTIVE_UNACKED,
    CLEARED_UNACKED,
    NORMAL,
    SHELVED,
    AlarmEngine,
    Limits,
    Transition,
)
from energizeos_msgs.msg import Alarm, ArbiterDecision, BmsStatus, GraphHealth
from energizeos_msgs.srv import AlarmAction

S = 1_000_000_000
ACK, SHELVE, UNSHELVE = (AlarmAction.Request.ACTION_ACKNOWLEDGE, AlarmAction.Request.ACTION_SHELVE,
                         AlarmAction.Request.ACTION_UNSHELVE)
ROLES = {"olga": "operator", "vic": "viewer"}


def authorize(user: str, action: str) -> str | None:
    role = ROLES.get(user)
    return None if role == "operator" else f"role {role!r} may not {action}"


def entry(code: str, condition: dict, priority: int = 2, caused_by: list[str] | None = None,
          device: str = "bms") -> dict:
    return {"code": code, "device": device, "priority": priority, "title": code.replace("_", " ").lower(),
            "condition": condition, "meaning": "m", "causes": ["c"], "consequences": "x",
            "caused_by": caused_by or [], "response": ["r"], "references": ["ref"]}


CATALOGUE = Catalogue.model_validate({"alarms": [
    entry("HOT", {"kind": "threshold", "topic": "/bess/bms/status", "field": "rack_temp_max_c", "op": ">",
                  "limit": 55.0, "deadband": 3.0, "on_delay_s": 5.0, "off_delay_s": 10.0}, priority=1),
    entry("COLD", {"kind": "threshold", "topic": "/bess/bms/status", "field": "rack_temp_max_c", "op": "<",
                   "limit": 5.0, "deadband": 2.0}, priority=3),
    entry("NOT_READY", {"kind": "flag", "topic": "/bess/bms/status", "field": "permissive", "equals": False}),
    entry("BIT9", {"kind": "bit", "topic": "/bess/bms/status", "field": "alarm_bits", "bit": 9}, priority=3),
    entry("BMS_STALE", {"kind": "stale", "topic": "/bess/bms/status", "max_age_s": 5.0}, device="ems"),
    entry("NODE_MISSING", {"kind": "health"}, device="ems"),
    entry("BMS_RACK_OVERTEMP", {"kind": "device_alarm"}, priority=1),
    entry("REFUSED", {"kind": "decision", "reason_codes": ["BMS_NOT_READY"], "on_delay_s": 2.0},
          caused_by=["BMS_RACK_OVERTEMP", "NOT_READY"], device="ems"),
    entry("PEAK_MISSED", {"kind": "device_alarm"}, caused_by=["REFUSED"], device="ems"),
    entry("EMS_ALARM_CHATTER", {"kind": "device_alarm"}, priority=4, device="ems"),
]})


class Bench:
    def __init__(self, limits: Limits = Limits()) -> None:
        self.now = 100 * S
        self.engine = AlarmEngine(CATALOGUE, self.now, limits, authorize=authorize)
        self.log: list[Transition] = []

    def at(self, t_s: float) -> Bench:
        self.now = 100 * S + round(t_s * S)
        self.log += self.engine.tick(self.now)
        return self

    def bms(self, temp: float = 25.0, permissive: bool = True, bits: int = 0, quality: int = 0) -> list[Transition]:
        out = self.engine.on_message("/bess/bms/status", BmsStatus(
            quality=quality, permissive=permissive, alarm_bits=bits, rack_temp_max_c=[25.0, temp, 24.0]), self.now)
        self.log += out
        return out

    def decision(self, codes: list[str], outcome: int = ArbiterDecision.OUTCOME_REFUSED) -> list[Transition]:
        out = self.engine.on_message("/ems/arbiter/decision", ArbiterDecision(
            decision_id=1, outcome=outcome, reason_codes=codes, reason_texts=[f"text {c}" for c in codes]), self.now)
        self.log += out
        return out

    def device(self, code: str, raised: bool) -> list[Transition]:
        out = self.engine.on_device_alarm(Alarm(code=code, source="bms_node", priority=1, message=f"{code} msg",
                                                event=Alarm.EVENT_RAISE if raised else Alarm.EVENT_CLEAR), self.now)
        self.log += out
        return out

    def act(self, alarm_id: int, action: int, user: str = "olga", duration_s: float = 0.0):
        ok, msg, out = self.engine.act(alarm_id, action, user, "", duration_s, self.now)
        self.log += out
        return ok, msg

    def events(self, code: str) -> list[tuple[int, int]]:
        return [(t.event, t.state) for t in self.log if t.code == code]


def test_threshold_waits_its_on_delay_and_clears_only_past_the_deadband_after_the_off_delay():
    b = Bench()
    b.at(0).bms(temp=56.0)
    b.at(4.9)
    b.bms(temp=56.0)
    assert b.events("HOT") == []  # 4.9 s above the limit: not yet
    b.at(5.0)
    assert b.events("HOT") == [(Alarm.EVENT_RAISE, ACTIVE_UNACKED)]
    raise_msg = b.log[-1]
    assert raise_msg.priority == 1 and "rack_temp_max_c = 56" in raise_msg.message and \
        raise_msg.evidence["rack_temp_max_c"] == 56.0
    b.at(6).bms(temp=54.0)  # below the limit, inside the 3 degree deadband: still hot
    b.at(30)
    assert len(b.events("HOT")) == 1
    b.at(31).bms(temp=51.9)  # past the deadband: the off-delay starts
    b.at(40.9)
    assert len(b.events("HOT")) == 1
    b.at(41.0)
    assert b.events("HOT")[-1] == (Alarm.EVENT_CLEAR, CLEARED_UNACKED)


def test_a_blip_shorter_than_the_on_delay_never_raises():
    b = Bench()
    for t in range(0, 40, 5):
        b.at(t).bms(temp=60.0)
        b.at(t + 4).bms(temp=40.0)
    assert b.events("HOT") == []


def test_low_threshold_uses_the_coldest_element_and_bad_quality_holds_the_state():
    b = Bench()
    b.at(0).bms(temp=4.0)
    assert b.events("COLD") == [(Alarm.EVENT_RAISE, ACTIVE_UNACKED)]
    b.at(1).bms(temp=6.5, quality=BmsStatus.QUALITY_STALE)  # a stale reading neither raises nor clears
    assert len(b.events("COLD")) == 1
    b.at(2).bms(temp=6.5)  # 6.5 < 5 + 2 deadband: still cold
    b.at(3).bms(temp=7.1)
    assert b.events("COLD")[-1] == (Alarm.EVENT_CLEAR, CLEARED_UNACKED)


def test_flag_bit_stale_and_health_conditions():
    b = Bench()
    b.at(0).bms(permissive=False, bits=1 << 9)
    assert b.events("NOT_READY") == [(Alarm.EVENT_RAISE, ACTIVE_UNACKED)]
    assert b.events("BIT9") == [(Alarm.EVENT_RAISE, ACTIVE_UNACKED)]
    b.at(5.0)
    assert b.events("BMS_STALE") == []
    b.at(5.1)
    assert b.events("BMS_STALE") == [(Alarm.EVENT_RAISE, ACTIVE_UNACKED)]
    b.bms()
    b.at(5.2)
    assert b.events("BMS_STALE")[-1][0] == Alarm.EVENT_CLEAR
    b.log += b.engine.on_message("/ems/graph/health", GraphHealth(missing_nodes=["/historian"]), b.now)
    assert b.log[-1].code == "NODE_MISSING" and b.log[-1].evidence == {"missing_nodes": ["/historian"]}


def test_lifecycle_ack_then_clear_and_clear_then_ack_and_return_before_ack():
    b = Bench()
    b.at(0).device("BMS_RACK_OVERTEMP", True)
    alarm_id = b.log[-1].alarm_id
    assert b.act(alarm_id, ACK) == (True, f"alarm {alarm_id} acknowledged by olga")
    b.device("BMS_RACK_OVERTEMP", False)
    assert b.events("BMS_RACK_OVERTEMP") == [(Alarm.EVENT_RAISE, ACTIVE_UNACKED),
                                             (Alarm.EVENT_ACKNOWLEDGE, ACTIVE_ACKED), (Alarm.EVENT_CLEAR, NORMAL)]
    b.log.clear()
    b.at(10).device("BMS_RACK_OVERTEMP", True)
    second = b.log[-1].alarm_id
    assert second > alarm_id  # a new occurrence
    b.device("BMS_RACK_OVERTEMP", False)
    b.device("BMS_RACK_OVERTEMP", True)  # back before anyone acknowledged: same occurrence, unacked again
    b.device("BMS_RACK_OVERTEMP", False)
    assert {t.alarm_id for t in b.log if t.code == "BMS_RACK_OVERTEMP"} == {second}
    assert b.act(second, ACK)[0]
    assert b.events("BMS_RACK_OVERTEMP")[-1] == (Alarm.EVENT_ACKNOWLEDGE, NORMAL)
    assert b.act(second, ACK) == (False, f"alarm {second} is not active (nothing to acknowledge)")


def test_actions_are_refused_for_the_wrong_role_an_unknown_alarm_or_a_critical_shelve():
    b = Bench()
    b.at(0).device("BMS_RACK_OVERTEMP", True)
    critical = b.log[-1].alarm_id
    ok, msg = b.act(critical, ACK, user="vic")
    assert not ok and "refused for 'vic'" in msg and "viewer" in msg
    assert b.act(critical, ACK, user="") == (False, "acknowledge needs the name of the user")
    assert b.act(424242, ACK)[1] == "alarm 424242 is not active (nothing to acknowledge)"
    ok, msg = b.act(critical, SHELVE, duration_s=600)
    assert not ok and "critical alarms cannot be shelved" in msg
    assert b.events("BMS_RACK_OVERTEMP") == [(Alarm.EVENT_RAISE, ACTIVE_UNACKED)]  # nothing changed


def test_shelving_hides_an_alarm_until_expiry_then_it_comes_back_if_still_active():
    b = Bench(Limits(max_shelve_s=3600.0))
    b.at(0).bms(bits=1 << 9)
    alarm_id = b.log[-1].alarm_id
    assert b.act(alarm_id, SHELVE, duration_s=7200)[1].startswith("shelve duration 7200 s must be")
    assert b.act(alarm_id, SHELVE, duration_s=600)[0]
    assert b.events("BIT9")[-1] == (Alarm.EVENT_SHELVE, SHELVED)
    assert b.log[-1].user == "olga" and b.log[-1].evidence["shelved_until_ns"] == b.now + 600 * S
    b.at(100).bms(bits=0)
    b.at(200).bms(bits=1 << 9)  # toggles while shelved: no announcements
    assert len(b.events("BIT9")) == 2
    b.at(600.0)
    assert b.events("BIT9")[-1] == (Alarm.EVENT_UNSHELVE, ACTIVE_UNACKED)
    assert b.log[-1].message == "shelve expired" and b.log[-1].alarm_id == alarm_id


def test_unshelving_an_alarm_whose_condition_went_away_returns_it_to_normal():
    b = Bench()
    b.at(0).bms(bits=1 << 9)
    alarm_id = b.log[-1].alarm_id
    b.act(alarm_id, SHELVE, duration_s=600)
    b.at(10).bms(bits=0)
    assert b.act(alarm_id, UNSHELVE) == (True, f"alarm {alarm_id} unshelved by olga")
    assert b.events("BIT9")[-1] == (Alarm.EVENT_UNSHELVE, NORMAL)


def test_a_chattering_alarm_is_latched_with_one_chatter_alarm_linked_to_it():
    b = Bench(Limits(chatter_raises=5, chatter_window_s=60.0))
    for i in range(20):  # on/off every second for 20 s
        b.at(i).bms(bits=1 << 9)
        b.at(i + 0.5).bms(bits=0)
    raises = [t for t in b.log if t.code == "BIT9" and t.event == Alarm.EVENT_RAISE]
    clears = [t for t in b.log if t.code == "BIT9" and t.event == Alarm.EVENT_CLEAR]
    assert len(raises) == 5 and len(clears) == 4  # latched active after the fifth raise
    chatter = [t for t in b.log if t.code == "EMS_ALARM_CHATTER"]
    assert [t.event for t in chatter] == [Alarm.EVENT_RAISE]
    assert chatter[0].cause_alarm_id == raises[0].alarm_id and chatter[0].evidence["raises"] == 5
    b.at(79.4)
    assert len([t for t in b.log if t.code == "BIT9" and t.event == Alarm.EVENT_CLEAR]) == 4
    b.at(79.6)  # quiet for the whole window: released
    assert b.events("BIT9")[-1][0] == Alarm.EVENT_CLEAR
    assert [t.event for t in b.log if t.code == "EMS_ALARM_CHATTER"] == [Alarm.EVENT_RAISE, Alarm.EVENT_CLEAR]


def test_consequential_alarms_carry_the_root_cause_through_a_chain():
    b = Bench()
    b.at(0).device("BMS_RACK_OVERTEMP", True)
    root = b.log[-1].alarm_id
    b.at(0.5).bms(permissive=False)  # NOT_READY is itself explained by nothing in this catalogue: a root
    b.at(1).decision(["BMS_NOT_READY"])
    b.at(3.0)
    refused = [t for t in b.log if t.code == "REFUSED"]
    assert refused and refused[0].event == Alarm.EVENT_RAISE
    assert refused[0].cause_alarm_id == root  # the earliest active root among its caused_by
    b.log += b.engine.on_device_alarm(Alarm(code="PEAK_MISSED", source="dispatcher", event=Alarm.EVENT_RAISE,
                                            message="peak 612 kW over 500 kW"), b.now)
    assert b.log[-1].cause_alarm_id == root  # REFUSED's own root, not REFUSED


def test_a_consequence_with_no_active_root_is_a_root_itself():
    b = Bench()
    b.at(0).decision(["BMS_NOT_READY"])
    b.at(2.0)
    assert [t.cause_alarm_id for t in b.log if t.code == "REFUSED"] == [0]


def test_an_alarm_code_missing_from_the_catalogue_is_still_shown():
    b = Bench()
    b.at(0).device("VENDOR_XYZ_42", True)
    assert b.log[-1].code == "VENDOR_XYZ_42" and b.log[-1].priority == 1 and b.log[-1].state == ACTIVE_UNACKED


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.lists(st.tuples(st.sampled_from(["hot", "cool", "bit", "nobit", "ack", "shelve", "unshelve", "tick"]),
                          st.floats(0.1, 30.0)), max_size=40))
def test_lifecycle_invariants_hold_for_any_sequence(steps):
    """Each occurrence's states follow the lifecycle; ids only grow; an acknowledged alarm is never unacked
    again without a new raise; nothing is announced while shelved."""
    b = Bench()
    t = 0.0
    for action, dt in steps:
        t += dt
        b.at(t)
        live = [occ.alarm_id for _tr, occ in b.engine.occurrences()]
        if action == "hot":
            b.bms(temp=60.0)
        elif action == "cool":
            b.bms(temp=20.0)
        elif action in ("bit", "nobit"):
            b.bms(bits=(1 << 9) if action == "bit" else 0)
        elif live and action in ("ack", "shelve", "unshelve"):
            b.act(live[0], {"ack": ACK, "shelve": SHELVE, "unshelve": UNSHELVE}[action], duration_s=60.0)
    allowed = {Alarm.EVENT_RAISE: {ACTIVE_UNACKED}, Alarm.EVENT_CLEAR: {CLEARED_UNACKED, NORMAL},
               Alarm.EVENT_ACKNOWLEDGE: {ACTIVE_ACKED, NORMAL}, Alarm.EVENT_SHELVE: {SHELVED},
               Alarm.EVENT_UNSHELVE: {ACTIVE_UNACKED, ACTIVE_ACKED, NORMAL}}
    by_id: dict[int, list[Transition]] = {}
    for tr in b.log:
        assert tr.state in allowed[tr.event]
        by_id.setdefault(tr.alarm_id, []).append(tr)
    for history in by_id.values():
        assert history[0].event == Alarm.EVENT_RAISE
        shelved = False
        for tr in history:
            assert not (shelved and tr.event in (Alarm.EVENT_RAISE, Alarm.EVENT_CLEAR))
            shelved = tr.state == SHELVED
            if tr.state == NORMAL:
                assert tr is history[-1]  # NORMAL ends an occurrence
    first_seen = list(dict.fromkeys(tr.alarm_id for tr in b.log))
    assert first_seen == sorted(first_seen) and len(first_seen) == len(set(first_seen))  # new ids only grow


def test_the_shipped_catalogue_runs_in_the_engine():
    engine = AlarmEngine(load_catalogue(), 0)
    assert len(engine.catalogue.alarms) >= 40 and "/bess/bms/status" in engine.by_topic
    assert engine.tick(60 * S)  # nothing has been heard for a minute: the stale-data alarms raise


@pytest.mark.parametrize("user", ["vic", "nobody"])
def test_refused_users(user):
    b = Bench()
    b.at(0).bms(bits=1 << 9)
    ok, msg = b.act(b.log[-1].alarm_id, ACK, user=user)
    assert not ok and "refused" in msg


def test_a_consequence_raised_while_its_cause_is_still_in_its_on_delay_links_to_the_root():
    b = Bench()
    b.at(0).device("BMS_RACK_OVERTEMP", True)
    root = b.log[-1].alarm_id
    b.at(0.5).decision(["BMS_NOT_READY"])  # REFUSED holds but waits its 2 s on-delay
    b.at(1.0)
    b.log += b.engine.on_device_alarm(Alarm(code="PEAK_MISSED", source="dispatcher", event=Alarm.EVENT_RAISE,
                                            message="peak missed"), b.now)
    assert b.events("REFUSED") == [] and b.log[-1].code == "PEAK_MISSED" and b.log[-1].cause_alarm_id == root
