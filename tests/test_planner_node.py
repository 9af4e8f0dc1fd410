"""The planner node in the deterministic executor: day-ahead plan at plan_hour, approval by policy or
by a user with the right role, activation at midnight, re-plans when reality departs, records."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select
from sqlmodel import Session

from energizeos.nodes.planner import Planner
from energizeos.planning import approval
from energizeos.planning.history import LoadHistory
from energizeos.planning.tracker import INTERVAL_S
from energizeos.records import audit
from energizeos.records.db import init_db, make_engine
from energizeos.records.models import Approval, PlanRecord, User
from energizeos.runtime import Node, SimExecutor
from energizeos_msgs.msg import BmsStatus, DispatchPlan, Header, MeterReading, PcsStatus
from energizeos_msgs.srv import PlanApproval

LA = ZoneInfo("America/Los_Angeles")
MONDAY = datetime(2025, 7, 14, tzinfo=LA)


def site_load(t: datetime) -> float:
    """Office-like: 300 kW at night, up to 900 kW mid-afternoon on weekdays, 350 kW flat at weekends."""
    local = t.astimezone(LA)
    if local.weekday() >= 5:
        return 350.0
    h = local.hour + local.minute / 60.0
    return 300.0 + 600.0 * max(0.0, float(np.sin((h - 6.0) / 13.0 * np.pi)))


class Site:
    def __init__(self, tmp_path, approval: str = "auto", surge: float = 1.0, friday_surge: float = 1.0,
                 **overrides) -> None:
        self.url = f"sqlite:///{tmp_path / 'r.db'}"
        self.ex = SimExecutor(MONDAY.astimezone(UTC))
        self.surge = surge  # reality / the usual profile, from Monday noon on
        self.planner = Planner(executor=self.ex, parameter_overrides={
            "db_url": self.url, "approval": approval, "check_period_s": 60.0, "plan_hour": 17,
            "replan_deviation_pct": 10.0,  # re-plans only on a real departure, to see each one
            "replan_soc_deviation_pct": 100.0,  # this probe has no battery: its SOC never follows a plan
            **overrides})
        begin = MONDAY.astimezone(UTC) - timedelta(days=28)
        times = [begin + timedelta(seconds=INTERVAL_S * (i + 0.5)) for i in range(28 * 96)]
        friday = (MONDAY - timedelta(days=3)).date()  # a heavier Friday before, when asked for
        values = [site_load(t) * (friday_surge if t.astimezone(LA).date() == friday else 1.0) for t in times]
        self.planner.tracker.seed(LoadHistory(begin, INTERVAL_S, np.array(values)))
        probe = Node("probe", executor=self.ex)
        self.meter = probe.create_publisher(MeterReading, "/site/poi/meter", 10)
        self.pcs = probe.create_publisher(PcsStatus, "/bess/pcs/status", 10)
        self.bms = probe.create_publisher(BmsStatus, "/bess/bms/status", 10)
        self.active: list[DispatchPlan] = []
        self.proposed: list[DispatchPlan] = []
        probe.create_subscription(DispatchPlan, "/ems/plan/active", self.active.append, 10)
        probe.create_subscription(DispatchPlan, "/ems/plan/proposed", self.proposed.append, 10)
        self.client = probe.create_client(PlanApproval, "/ems/plan/approve")
        probe.create_timer(60.0, self.tick)

    def tick(self) -> None:
        now = self.ex.clock.now().to_datetime()
        load = site_load(now) * (self.surge if now.astimezone(LA).hour >= 12 else 1.0)
        header = Header(stamp=self.ex.clock.now().to_msg())
        self.pcs.publish(PcsStatus(header=header, p_kw=0.0))
        self.bms.publish(BmsStatus(header=header, soc_pct=60.0))
        self.meter.publish(MeterReading(header=header, p_kw=load))

    def run_until(self, local: datetime) -> None:
        self.ex.spin_until(int(local.timestamp() * 1e9))


def test_day_ahead_plan_is_gated_approved_by_policy_activated_at_midnight_and_recorded(tmp_path):
    site = Site(tmp_path)
    site.run_until(MONDAY + timedelta(minutes=5))
    today = site.active[-1]  # no plan for today yet at start: one for the rest of the day
    assert today.status == DispatchPlan.STATUS_ACTIVE and all(f.startswith("PASS") for f in today.gate_findings)
    assert len(today.p_kw) == 95  # from the next whole interval to midnight
    site.run_until(MONDAY + timedelta(hours=17, minutes=2))
    tomorrow = site.proposed[-1]
    start = datetime.fromtimestamp(tomorrow.start.sec, UTC)
    assert start == (MONDAY + timedelta(days=1)).astimezone(UTC) and len(tomorrow.p_kw) == 96
    assert len(site.active) == 1  # proposed, approved, not yet active
    site.run_until(MONDAY + timedelta(days=1, minutes=2))
    assert site.active[-1].plan_id == tomorrow.plan_id and site.active[-1].status == DispatchPlan.STATUS_ACTIVE
    assert site.active[-1].approved_by == "policy:auto"
    on_peak = slice(64, 84)  # 16:00-21:00
    assert max(tomorrow.p_kw[on_peak]) > 100.0  # it plans to discharge on-peak
    engine = make_engine(site.url)
    with Session(engine) as session:
        plans = session.execute(select(PlanRecord).order_by(PlanRecord.plan_id)).scalars().all()
        approvals = session.execute(select(Approval)).scalars().all()
        assert {p.plan_id for p in plans} >= {today.plan_id, tomorrow.plan_id}
        assert {(a.subject, a.user, a.approved) for a in approvals} >= {
            (f"plan:{tomorrow.plan_id}", "policy:auto", True)}
        kinds = [e.kind for e in session.execute(select(audit.AuditEntry).order_by(audit.AuditEntry.seq)).scalars()]
        assert kinds.count("plan") == len(plans) and kinds.count("approval") == len(approvals)
        assert audit.verify(session).ok
        body = json.loads(next(p for p in plans if p.plan_id == tomorrow.plan_id).body_json)
        assert body["forecast_method"] == "similar-day" and len(body["load_forecast_kw"]) == 96
        # its LP also saw Wednesday's forecast (planned from the same history), and kept Tuesday only
        assert "the LP looked 96 intervals into the next day's forecast; the plan keeps its own 96" in body["notes"]
    wednesday = (MONDAY + timedelta(days=2)).date()
    assert site.planner._lookahead(wednesday) is not None
    np.testing.assert_allclose(site.planner._lookahead(wednesday), site.planner._forecast(wednesday)[0])


def test_the_demand_floor_keeps_the_plan_from_shaving_below_what_a_heavy_day_will_set(tmp_path):
    from energizeos.planning.day_ahead import local_day, plan_day
    from energizeos.planning.demand_floor import holdable_level

    (tmp_path / "plain").mkdir()
    (tmp_path / "floored").mkdir()
    plain = Site(tmp_path / "plain", friday_surge=1.4, demand_floor_days=0)
    floored = Site(tmp_path / "floored", friday_surge=1.4, demand_floor_days=7)
    for site in (plain, floored):
        site.run_until(MONDAY + timedelta(minutes=5))
    # the floor: the peak the planner's own day plan sets on the heavy Friday's load (1.4 x the usual day)
    planner = floored.planner
    friday_date = (MONDAY - timedelta(days=3)).date()
    start, n = local_day(friday_date, planner.tz)
    friday = 1.4 * np.array([site_load(start + timedelta(seconds=INTERVAL_S * (i + 0.5))) for i in range(n)])
    target = planner.settings.terminal_soc_pct
    floor = float(plan_day(planner.tariff, planner.settings, friday_date, friday, target).result.peak_kw["2025-07"])
    battery = planner.settings.battery
    usable = battery.energy_kwh * (battery.soc_max_pct - battery.floor_pct) / 100 * battery.discharge_efficiency
    holdable = holdable_level(friday, usable, battery.power_kw, INTERVAL_S)
    # above what a full battery alone could have held (the on-peak wants some of the energy) and Monday's own
    # peak (900 kW); below the Friday's
    assert 900.0 < holdable < floor < 1260.0
    assert planner._prior_peaks()[0]["2025-07"] == pytest.approx(floor, abs=0.01)
    assert planner._floor[1]["day"] == friday_date
    # by default the window is chosen from the battery next to the load: this battery holds a few % of a day
    assert planner._floor[1]["days"] == 1 and planner._floor[1]["window"].startswith("day windows: the battery's")
    assert "2025-07" not in plain.planner._prior_peaks()[0]  # nothing measured this month yet
    # Monday's plan: without the floor it shaves Monday's midday peak; with it, the battery's energy
    # is kept for the on-peak hours and the midday peak is left (the Friday will be billed anyway)
    plain_plan, floored_plan = plain.planner.active, floored.planner.active
    midday = slice(40, 60)  # 10:00-15:00 of the rest-of-today plan (it starts at 00:15, index 0)
    assert max(plain_plan.load_kw[midday] - plain_plan.grid_kw[midday]) > 50.0
    assert max(floored_plan.load_kw[midday] - floored_plan.grid_kw[midday]) < 1.0
    on_peak = slice(63, 83)  # 16:00-21:00
    discharged = [float(np.sum(np.clip(plan.p_kw[on_peak], 0, None))) for plan in (floored_plan, plain_plan)]
    assert discharged[0] > discharged[1]


def test_the_demand_floor_is_priced_as_the_month_being_planned():
    # a hospital-like week at the end of May: 1000 kW around the clock, 1100 kW from 10:00 to 21:00. At May's
    # (winter) rates the day plan gives its energy to the 11-hour plateau; at June's (on-peak $25/kW) it
    # keeps it for the on-peak, so the same days floor June (planned on its first day) at the plateau itself
    def floor_on(local: datetime) -> float:
        planner = Planner(executor=SimExecutor(local.astimezone(UTC)), parameter_overrides={"demand_floor_days": 7})
        begin = datetime(2025, 5, 24, tzinfo=LA).astimezone(UTC)
        hours = [(begin + timedelta(seconds=INTERVAL_S * i)).astimezone(LA).hour for i in range(8 * 96)]  # May 24-31
        planner.tracker.seed(LoadHistory(begin, INTERVAL_S, np.array([1100.0 if 10 <= h < 21 else 1000.0
                                                                      for h in hours])))
        return planner._prior_peaks()[0][f"2025-{local.month:02d}"]

    may, june = floor_on(datetime(2025, 5, 31, 0, 5, tzinfo=LA)), floor_on(datetime(2025, 6, 1, 0, 5, tzinfo=LA))
    assert may < 1100.0 - 50.0
    assert june == pytest.approx(1100.0, abs=0.01)


def test_a_peak_just_above_the_threshold_the_plans_held_is_planned_as_that_threshold(tmp_path):
    # the dispatcher holds the billed 15-minute mean; a load that moves in an interval's last minute lands it
    # a little above the threshold. With peak_noise_pct that overshoot is not planned as a new peak
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    noisy = Site(tmp_path / "on", demand_floor_days=0, peak_noise_pct=1.0)
    plain = Site(tmp_path / "off", demand_floor_days=0, peak_noise_pct=0.0)
    for site in (noisy, plain):
        site.run_until(MONDAY + timedelta(minutes=5))
    planner, plan = noisy.planner, noisy.planner.active
    held = float(np.max(plan.threshold_kw))
    held_on_peak = float(np.max(plan.threshold_kw[plan.on_peak]))
    assert planner.month_held == {"2025-07": pytest.approx(held)}  # noted when the plan became active
    assert planner.month_held_on_peak == {"2025-07": pytest.approx(held_on_peak)}
    for site in (noisy, plain):
        site.planner.month_peak["2025-07"] = held * 1.004  # 0.4 % over: the 15-minute mean's overshoot
        site.planner.month_on_peak["2025-07"] = held_on_peak * 1.009
    peaks, on_peaks = planner._prior_peaks()
    assert (peaks["2025-07"], on_peaks["2025-07"]) == (pytest.approx(held), pytest.approx(held_on_peak))
    assert plain.planner._prior_peaks()[0]["2025-07"] == pytest.approx(held * 1.004)  # off: planned as measured
    # a peak further above what was held is a peak: planned as measured
    planner.month_peak["2025-07"] = held * 1.011
    planner.month_on_peak["2025-07"] = held_on_peak * 1.02
    peaks, on_peaks = planner._prior_peaks()
    assert (peaks["2025-07"], on_peaks["2025-07"]) == (pytest.approx(held * 1.011), pytest.approx(held_on_peak * 1.02))
    # and one below it is left alone
    planner.month_peak["2025-07"] = held * 0.9
    assert planner._prior_peaks()[0]["2025-07"] == pytest.approx(held * 0.9)
def test_a_week_plan_made_once_a_day_sets_where_every_plan_ends(tmp_path):
    site = Site(tmp_path, week_plan_days=7)
    site.run_until(MONDAY + timedelta(minutes=5))
    planner = site.planner
    made_on, guide = planner._week
    assert made_on == MONDAY.date() and guide is not None
    assert guide.start == (MONDAY + timedelta(minutes=15)).astimezone(UTC)  # from the next whole interval
    assert len(guide.soc_pct) == 95 + 7 * 96  # the rest of Monday and the 7 days after it, all in July
    note = f"ends at week plan {guide.plan_id}'s SOC there"
    assert any(line.startswith(note) for line in planner.active.notes)
    site.run_until(MONDAY + timedelta(hours=17, minutes=2))
    tomorrow = planner.next
    assert planner._week[1] is guide and any(line.startswith(note) for line in tomorrow.notes)  # once a day
    assert tomorrow.soc_start_pct == pytest.approx(guide.at(tomorrow.start)[0])  # where the week plan has it
    engine = make_engine(site.url)
    with Session(engine) as session:  # the week plan the notes name is in the records and on the audit chain
        stored = session.get(PlanRecord, guide.plan_id)
        assert stored.status == DispatchPlan.STATUS_WEEK_PLAN and stored.start.replace(tzinfo=UTC) == guide.start
        body = json.loads(stored.body_json)
        assert body["soc_pct"] == [round(float(v), 3) for v in guide.soc_pct]
        assert body["soc_value_per_kwh"] == [round(float(v), 3) for v in guide.value_per_kwh]
        assert len(body["p_kw"]) == len(body["load_forecast_kw"]) == len(guide.soc_pct)
        subject = f"plan:{guide.plan_id}"
        entries = [e for e in session.execute(select(audit.AuditEntry)).scalars() if e.subject == subject]
        assert [json.loads(e.payload_json) for e in entries] == [
            {"sha256": approval.plan_body_hash(body), "start": guide.start.isoformat(), "week_plan": True}]
        assert not session.execute(select(Approval).where(Approval.subject == subject)).first()
        assert audit.verify(session).ok
    with pytest.raises(ValueError, match="is a week plan: it is never followed"):
        approval.record_decision(engine, guide.plan_id, True, "ops", "operator", "")
    site.run_until(MONDAY + timedelta(days=1, minutes=5))
    assert planner._week[0] == (MONDAY + timedelta(days=1)).date() and planner._week[1] is not guide
    (tmp_path / "off").mkdir()
    off = Site(tmp_path / "off", week_plan_days=0)
    off.run_until(MONDAY + timedelta(minutes=5))
    assert off.planner._week is None and not any("week plan" in line for line in off.planner.active.notes)


def test_a_week_plan_the_records_refuse_is_made_again_by_a_later_plan(tmp_path):
    site = Site(tmp_path, week_plan_days=7)
    engine = make_engine(site.url)
    init_db(engine)
    with engine.begin() as conn:  # the database refuses week plans (a full disk, say) and nothing else
        conn.exec_driver_sql(f"CREATE TRIGGER refuse_week_plans BEFORE INSERT ON plans WHEN NEW.status = "
                             f"{DispatchPlan.STATUS_WEEK_PLAN} BEGIN SELECT RAISE(ABORT, 'disk I/O error'); END")
    site.run_until(MONDAY + timedelta(minutes=5))
    planner = site.planner
    assert planner._week == (MONDAY.date(), None)  # not used: no note may name a plan the records lack
    assert planner.active is not None and not any("week plan" in line for line in planner.active.notes)
    with Session(engine) as session:
        assert not session.exec(select(PlanRecord).where(PlanRecord.status == DispatchPlan.STATUS_WEEK_PLAN)).all()
        assert audit.verify(session).ok  # the refused plan left nothing half-written on the chain
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP TRIGGER refuse_week_plans")
    site.run_until(MONDAY + timedelta(hours=17, minutes=2))
    made_on, guide = planner._week  # made again by a later plan the same day, and used from then on
    assert made_on == MONDAY.date() and guide is not None and guide.start > MONDAY + timedelta(minutes=15)
    assert any(line.startswith(f"ends at week plan {guide.plan_id}'s SOC there") for line in planner.next.notes)
    with Session(engine) as session:
        assert session.get(PlanRecord, guide.plan_id).status == DispatchPlan.STATUS_WEEK_PLAN
        assert audit.verify(session).ok


def test_manual_policy_waits_for_a_user_with_the_right_role(tmp_path):
    site = Site(tmp_path, approval="manual")
    engine = make_engine(site.url)
    init_db(engine)
    with Session(engine) as session:
        for name, role in (("olga", "operator"), ("vic", "viewer")):
            session.add(User(username=name, role=role, password_hash="-", created_at=datetime.now(UTC)))
        session.commit()
    site.run_until(MONDAY + timedelta(hours=17, minutes=2))
    assert site.active == []  # nothing approved: nothing active
    plan_id = site.proposed[-1].plan_id
    refused = site.client.call(PlanApproval.Request(plan_id=plan_id, approve=True, user="vic"))
    assert not refused.success and "role 'viewer' may not approve plans" in refused.message
    ok = site.client.call(PlanApproval.Request(plan_id=plan_id, approve=True, user="olga", comment="looks right"))
    assert ok.success and ok.message == f"plan {plan_id} approved by olga"
    site.run_until(MONDAY + timedelta(days=1, minutes=2))
    assert site.active[-1].plan_id == plan_id and site.active[-1].approved_by == "olga"
    with Session(engine) as session:
        approval = session.execute(select(Approval).where(Approval.subject == f"plan:{plan_id}")).scalars().one()
        assert (approval.user, approval.role, approval.comment) == ("olga", "operator", "looks right")


def test_reality_above_the_forecast_triggers_a_gated_re_plan(tmp_path):
    site = Site(tmp_path, surge=1.3)
    site.run_until(MONDAY + timedelta(hours=14))
    replans = [p for p in site.active if p.plan_id != site.active[0].plan_id]
    assert replans, "no re-plan although the load ran 30 % above the forecast"
    first = replans[0]
    assert datetime.fromtimestamp(first.start.sec, UTC).astimezone(LA).hour in (12, 13)
    assert all(f.startswith("PASS") for f in first.gate_findings)
    with Session(make_engine(site.url)) as session:
        body = json.loads(session.get(PlanRecord, first.plan_id).body_json)
        approval = session.execute(select(Approval).where(Approval.subject == f"plan:{first.plan_id}")).scalars().one()
    assert body["parent_plan_id"] and "re-plan at" in body["notes"][0]
    assert any(note.startswith("the LP looked 96 intervals into the next day's forecast") for note in body["notes"])
    departure = int(re.search(r"is \+(\d+) % from the forecast", body["notes"][0]).group(1))
    assert 10 <= departure <= 30  # the first hour after noon runs 30 % over: caught as it grows
    assert approval.user == "policy:replan"


@pytest.mark.parametrize("approval", ["sometimes"])
def test_a_bad_policy_is_refused_by_name(tmp_path, approval):
    from energizeos.runtime.parameters import ParameterError

    with pytest.raises(ParameterError, match="approval"):
        Site(tmp_path, approval=approval)


def test_a_restarted_planner_takes_its_history_and_the_month_peak_from_the_records(tmp_path):
    from energizeos.records.models import Telemetry
    from energizeos.records.types import utc_from_ns

    url = f"sqlite:///{tmp_path / 'r.db'}"
    engine = make_engine(url)
    init_db(engine)
    begin = int((MONDAY - timedelta(days=3)).timestamp())
    with Session(engine) as session:  # three days of 1-minute POI and PCS readings: 700 kW, one 1234 kW quarter
        for minute in range(3 * 1440):
            t = utc_from_ns((begin + 60 * minute) * 1_000_000_000)
            poi = 1234.0 if 2 * 1440 + 600 <= minute < 2 * 1440 + 615 else 700.0
            session.add(Telemetry(point="/site/poi/meter/p_kw", time=t, value=poi, quality=0))
            session.add(Telemetry(point="/bess/pcs/status/p_kw", time=t, value=-50.0, quality=0))
        session.commit()
    ex = SimExecutor(MONDAY.astimezone(UTC))
    planner = Planner(executor=ex, parameter_overrides={"db_url": url})
    history = planner.tracker.history(MONDAY.astimezone(UTC), 3)
    assert history.coverage == 1.0 and np.nanmax(history.values) == pytest.approx(1184.0)  # load = POI + PCS
    ex.spin_for(61.0)
    assert planner.month_peak == {"2025-07": pytest.approx(1234.0)}
