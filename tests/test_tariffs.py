"""Tariffs as data: period lookup, holidays, DST, URDB import, hand-computed bills and loud errors."""

from __future__ import annotations

import copy
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from energizeos.cli.tariff import app as tariff_app
from energizeos.tariffs.bill import BillError, compute_bill
from energizeos.tariffs.model import SHIPPED_DIR, TariffError, load_tariff, parse_tariff
from energizeos.tariffs.urdb import tariff_from_urdb, urdb_item

LA = ZoneInfo("America/Los_Angeles")
FIXTURE = Path(__file__).parent / "data" / "urdb" / "sdge_al_tou_fixture.json"

# The shipped illustrative SDG&E AL-TOU rates, written out so the expected bills below are explicit.
SUMMER = {"on_peak": 0.30, "off_peak": 0.15, "super_off_peak": 0.10}
WINTER = {"on_peak": 0.24, "off_peak": 0.13, "super_off_peak": 0.09}
MAX_DEMAND = 30.0
ON_PEAK_DEMAND = {"summer": 25.0, "winter": 5.0}
BASIC_FEE = 300.0


@pytest.fixture(scope="module")
def sdge():
    return load_tariff("sdge-al-tou")


@pytest.fixture(scope="module")
def urdb_raw() -> dict:
    return json.loads(FIXTURE.read_text())["items"][0]


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=LA)


def elapsed_s(start: datetime, end: datetime) -> int:
    """Absolute seconds between two aware times (Python subtracts same-zone times by wall clock)."""
    return int((end.astimezone(UTC) - start.astimezone(UTC)).total_seconds())


def series(start: datetime, end: datetime, kw: float, step_s: int = 900) -> np.ndarray:
    return np.full(elapsed_s(start, end) // step_s, kw)


def at(start: datetime, t: datetime, step_s: int = 900) -> int:
    """Index of the interval starting at t."""
    return elapsed_s(start, t) // step_s


def test_shipped_rates_are_the_ones_these_tests_compute_with(sdge):
    assert sdge.rates_illustrative is True
    assert sdge.timezone == "America/Los_Angeles"
    for p in SUMMER:
        assert sdge.energy_rate(7, p) == SUMMER[p]
        assert sdge.energy_rate(1, p) == WINTER[p]
    assert [sdge.max_demand_rate(m) for m in (1, 7)] == [MAX_DEMAND, MAX_DEMAND]
    assert [sdge.on_peak_demand_rate(m) for m in (1, 7)] == [ON_PEAK_DEMAND["winter"], ON_PEAK_DEMAND["summer"]]
    assert [(c.amount, c.unit) for c in sdge.fixed_charges] == [(BASIC_FEE, "$/month")]
    assert sdge.export_credit == 0.0


@pytest.mark.parametrize(("when", "expected"), [
    (local(2025, 7, 15, 16, 30), "on_peak"),  # summer Tuesday
    (local(2025, 7, 15, 15, 59), "off_peak"),
    (local(2025, 7, 15, 21, 0), "off_peak"),
    (local(2025, 7, 15, 5, 45), "super_off_peak"),
    (local(2025, 7, 15, 6, 0), "off_peak"),
    (datetime(2025, 7, 15, 23, 30, tzinfo=UTC), "on_peak"),  # = 16:30 PDT
    (local(2025, 3, 12, 11, 0), "super_off_peak"),  # March weekday: extra 10-14 super off-peak
    (local(2025, 3, 12, 9, 45), "off_peak"),
    (local(2025, 3, 12, 14, 0), "off_peak"),
    (local(2025, 4, 12, 11, 0), "super_off_peak"),  # April Saturday
    (local(2025, 4, 12, 15, 0), "off_peak"),
    (local(2025, 5, 14, 11, 0), "off_peak"),  # May weekday: no extra window
    (local(2025, 7, 4, 17, 0), "on_peak"),  # Independence Day (Friday): holiday rules
    (local(2025, 7, 4, 11, 0), "super_off_peak"),
    (local(2025, 7, 3, 11, 0), "off_peak"),  # the Thursday before: weekday rules
    (local(2021, 12, 24, 11, 0), "super_off_peak"),  # Christmas 2021 (Sat) observed Fri 24th
    (local(2025, 6, 19, 11, 0), "off_peak"),  # Juneteenth is not an SDG&E holiday
    (local(2025, 11, 28, 11, 0), "off_peak"),  # day after Thanksgiving is not one either
])
def test_period_at(sdge, when, expected):
    assert sdge.period_at(when) == expected


def test_holidays_use_observed_dates_and_only_named_ones(sdge):
    assert sdge.is_holiday(date(2021, 12, 24))  # observed Christmas
    assert sdge.is_holiday(date(2021, 12, 25))
    assert sdge.is_holiday(date(2026, 7, 3))  # July 4 2026 is a Saturday
    assert sdge.is_holiday(date(2025, 2, 17))  # Presidents' Day ("Washington's Birthday")
    assert sdge.is_holiday(date(2025, 11, 27))  # Thanksgiving
    assert not sdge.is_holiday(date(2025, 10, 13))  # Columbus Day: not named
    assert not sdge.is_holiday(date(2025, 6, 19))  # Juneteenth: not named
    assert not sdge.is_holiday(date(2025, 7, 7))


def test_season_at_and_naive_times_refused(sdge):
    assert sdge.season_at(local(2025, 6, 1, 0, 0)) == "summer"
    assert sdge.season_at(datetime(2025, 6, 1, 6, 59, tzinfo=UTC)) == "winter"  # still May 31 in San Diego
    assert sdge.season_at(date(2025, 10, 31)) == "summer"
    assert sdge.season_at(date(2025, 11, 1)) == "winter"
    with pytest.raises(ValueError, match="naive"):
        sdge.period_at(datetime(2025, 7, 1, 12))


def test_hourly_period_matrix_is_urdb_shaped(sdge):
    wd = sdge.period_matrix("weekday")
    assert wd.shape == (12, 24)
    names = sdge.period_names
    march = [names[i] for i in wd[2]]
    assert march[:6] == ["super_off_peak"] * 6
    assert march[10:14] == ["super_off_peak"] * 4
    assert march[16:21] == ["on_peak"] * 5
    assert [names[i] for i in wd[4]][10:14] == ["off_peak"] * 4  # May


@pytest.mark.parametrize(("day", "n", "counts"), [
    # Sunday 2025-03-09: 23 h; weekend rules: super off-peak 0-14 (13 h), off 14-16 + 21-24, on 16-21
    (date(2025, 3, 9), 92, {"super_off_peak": 52, "off_peak": 20, "on_peak": 20}),
    # Sunday 2025-11-02: 25 h, the 01:00 hour twice
    (date(2025, 11, 2), 100, {"super_off_peak": 60, "off_peak": 20, "on_peak": 20}),
])
def test_dst_days_have_92_or_100_intervals_that_map_by_wall_clock(sdge, day, n, counts):
    start = local(day.year, day.month, day.day)
    next_day = local(day.year, day.month, day.day + 1)
    assert elapsed_s(start, next_day) // 900 == n
    prices = sdge.interval_prices(start, n)
    assert {p: prices.period.count(p) for p in counts} == counts
    assert set(prices.month_key.tolist()) == {f"{day.year}-{day.month:02d}"}
    assert prices.period[8] == "super_off_peak"
    assert prices.energy_rate[-1] == WINTER["off_peak"]  # 23:45 local
    for i in range(n):  # every interval agrees with the scalar lookup of its own instant
        assert prices.period[i] == sdge.period_at(start.astimezone(UTC) + timedelta(seconds=900 * i))
    after = sdge.interval_prices(start, n + 1)
    assert after.month_key[-1] == f"{day.year}-{day.month:02d}" and after.period[-1] == "super_off_peak"


def test_interval_prices_across_a_season_change(sdge):
    start = local(2025, 5, 31, 20, 0)  # Saturday evening, winter, into Sunday June 1 (summer)
    prices = sdge.interval_prices(start, 24)  # 6 hours
    assert prices.month_key[0] == "2025-05" and prices.month_key[-1] == "2025-06"
    assert prices.max_demand_rate == {"2025-05": MAX_DEMAND, "2025-06": MAX_DEMAND}
    assert prices.on_peak_demand_rate == {"2025-05": ON_PEAK_DEMAND["winter"], "2025-06": ON_PEAK_DEMAND["summer"]}
    assert prices.on_peak_demand[:4].all() and not prices.on_peak_demand[4:].any()  # 20:00-21:00 on-peak
    assert prices.energy_rate[0] == WINTER["on_peak"]
    assert prices.energy_rate[4] == WINTER["off_peak"]
    assert prices.energy_rate[16] == SUMMER["super_off_peak"]  # June 1 00:00
    assert prices.export_rate.tolist() == [0.0] * 24
    assert len(prices) == 24


def test_june_bill_by_hand(sdge):
    """June 2025 at a constant 100 kW, a 300 kW quarter hour on-peak and a 250 kW one off-peak."""
    start, end = local(2025, 6, 1), local(2025, 7, 1)
    kw = series(start, end, 100.0)
    kw[at(start, local(2025, 6, 10, 17, 0))] = 300.0  # Tuesday, on-peak
    kw[at(start, local(2025, 6, 11, 8, 0))] = 250.0  # Wednesday, off-peak
    bill = compute_bill(sdge, start, kw)
    assert list(bill.months) == ["2025-06"]
    june = bill.months["2025-06"]
    # June 2025: 21 weekdays, 9 weekend days, no named holiday.
    on_h = 30 * 5  # 16-21 every day
    super_h = 21 * 6 + 9 * 14  # 0-6 weekdays, 0-14 weekends
    off_h = 30 * 24 - on_h - super_h
    assert (on_h, super_h, off_h) == (150, 252, 318)
    on_kwh = on_h * 100 + (300 - 100) * 0.25
    off_kwh = off_h * 100 + (250 - 100) * 0.25
    super_kwh = super_h * 100
    assert june.item("energy", "on_peak").quantity == pytest.approx(on_kwh)  # 15,050 kWh
    assert june.item("energy", "off_peak").quantity == pytest.approx(off_kwh)  # 31,837.5 kWh
    assert june.item("energy", "super_off_peak").quantity == pytest.approx(super_kwh)  # 25,200 kWh
    assert june.item("max_demand").quantity == 300.0
    assert june.item("max_demand").at == "2025-06-10T17:00:00-07:00"
    assert june.item("on_peak_demand").quantity == 300.0
    assert june.item("fixed").quantity == 1.0 and not june.partial and not june.incomplete
    expected = (on_kwh * SUMMER["on_peak"] + off_kwh * SUMMER["off_peak"] + super_kwh * SUMMER["super_off_peak"]
                + 300 * MAX_DEMAND + 300 * ON_PEAK_DEMAND["summer"] + BASIC_FEE)
    assert expected == pytest.approx(28_610.625)
    assert june.total == pytest.approx(expected)
    assert bill.total == pytest.approx(expected)
    assert bill.to_dict()["months"]["2025-06"]["total"] == pytest.approx(expected)
    json.dumps(bill.to_dict())  # JSON-serialisable as is


def test_off_peak_spike_sets_max_demand_but_not_on_peak_demand(sdge):
    start, end = local(2025, 1, 1), local(2025, 2, 1)
    kw = series(start, end, 100.0)
    kw[at(start, local(2025, 1, 8, 10, 0))] = 400.0  # Wednesday off-peak
    kw[at(start, local(2025, 1, 8, 18, 0))] = 150.0  # on-peak
    jan = compute_bill(sdge, start, kw).months["2025-01"]
    assert jan.season == "winter"
    assert (jan.item("max_demand").quantity, jan.item("max_demand").amount) == (400.0, 400 * MAX_DEMAND)
    assert jan.item("on_peak_demand").quantity == 150.0
    assert jan.item("on_peak_demand").amount == 150 * ON_PEAK_DEMAND["winter"]


def test_two_months_split_at_local_midnight(sdge):
    """Sat 2025-05-31 and Sun 2025-06-01 at 50 kW, with a 200 kW quarter hour on May 31 18:00."""
    start, end = local(2025, 5, 31), local(2025, 6, 2)
    kw = series(start, end, 50.0)
    kw[at(start, local(2025, 5, 31, 18, 0))] = 200.0
    bill = compute_bill(sdge, start, kw)
    assert list(bill.months) == ["2025-05", "2025-06"]
    may, june = bill.months["2025-05"], bill.months["2025-06"]
    assert (may.intervals, june.intervals) == (96, 96)
    # weekend day: super off-peak 14 h, on-peak 5 h, off-peak 5 h
    may_on = 5 * 50 + 150 * 0.25
    assert may.item("energy", "on_peak").quantity == pytest.approx(may_on)
    assert may.item("energy", "super_off_peak").quantity == pytest.approx(14 * 50)
    assert june.item("energy", "on_peak").quantity == pytest.approx(5 * 50)
    assert (may.item("max_demand").quantity, june.item("max_demand").quantity) == (200.0, 50.0)
    assert (may.item("on_peak_demand").quantity, june.item("on_peak_demand").quantity) == (200.0, 50.0)
    assert may.partial and june.partial
    assert may.item("fixed").quantity == pytest.approx(1 / 31)
    assert "prorated: 1 of 31 days" in may.item("fixed").name
    may_total = (may_on * WINTER["on_peak"] + 5 * 50 * WINTER["off_peak"] + 14 * 50 * WINTER["super_off_peak"]
                 + 200 * MAX_DEMAND + 200 * ON_PEAK_DEMAND["winter"] + BASIC_FEE / 31)
    june_total = (5 * 50 * SUMMER["on_peak"] + 5 * 50 * SUMMER["off_peak"] + 14 * 50 * SUMMER["super_off_peak"]
                  + 50 * MAX_DEMAND + 50 * ON_PEAK_DEMAND["summer"] + BASIC_FEE / 30)
    assert may.total == pytest.approx(may_total)
    assert june.total == pytest.approx(june_total)
    assert bill.total == pytest.approx(may_total + june_total)


def test_gap_is_counted_not_billed_and_flags_the_month(sdge):
    start, end = local(2025, 6, 1), local(2025, 7, 1)
    kw = series(start, end, 100.0)
    spike = at(start, local(2025, 6, 10, 17, 0))
    kw[spike] = 300.0
    kw[spike:spike + 4] = np.nan  # an hour of missing data on-peak, the spike inside it
    june = compute_bill(sdge, start, kw).months["2025-06"]
    assert june.incomplete and june.gap_intervals == 4 and june.gap_hours == 1.0
    assert june.demand_intervals_left_out == 4
    assert june.item("energy", "on_peak").quantity == pytest.approx(150 * 100 - 100)
    assert june.item("max_demand").quantity == 100.0  # the lost spike is not invented
    assert any("no data" in note for note in june.notes)
    assert compute_bill(sdge, start, kw).incomplete


def test_one_minute_data_is_averaged_to_15_minutes_for_demand(sdge):
    start = local(2025, 6, 10)  # Tuesday
    kw = series(start, local(2025, 6, 11), 100.0, 60)
    kw[at(start, local(2025, 6, 10, 17, 5), 60)] = 1000.0  # one minute
    kw[at(start, local(2025, 6, 10, 3, 7), 60)] = np.nan
    june = compute_bill(sdge, start, kw, interval_s=60).months["2025-06"]
    assert june.item("max_demand").quantity == pytest.approx((14 * 100 + 1000) / 15)  # 160 kW
    assert june.item("on_peak_demand").quantity == pytest.approx(160.0)
    assert june.item("on_peak_demand").at == "2025-06-10T17:00:00-07:00"
    assert june.gap_intervals == 1 and june.demand_intervals_left_out == 1
    assert june.item("energy", "on_peak").quantity == pytest.approx(5 * 100 + 900 / 60)
    assert june.item("energy", "super_off_peak").quantity == pytest.approx(6 * 100 - 100 / 60)


def test_hourly_data_bills_energy_but_refuses_demand(sdge):
    start = local(2025, 6, 10)
    kw = np.full(24, 100.0)
    with pytest.raises(BillError, match="coarser than the 15-minute demand interval"):
        compute_bill(sdge, start, kw, interval_s=3600)
    june = compute_bill(sdge, start, kw, interval_s=3600, bill_demand=False).months["2025-06"]
    assert june.item("energy", "on_peak").quantity == pytest.approx(500.0)
    assert june.intervals == 24
    assert not [i for i in june.line_items if i.kind in ("max_demand", "on_peak_demand")]
    data = _shipped()
    data["demand"] = {}
    energy_only = parse_tariff(data, "energy-only")
    assert not energy_only.has_demand_charges
    assert compute_bill(energy_only, start, kw, interval_s=3600).total == pytest.approx(june.total)


@pytest.mark.parametrize(("start", "kw", "interval_s", "message"), [
    (datetime(2025, 6, 1), np.ones(4), 900, "naive"),
    (local(2025, 6, 1), np.ones(4), 700, "must divide 900"),
    (local(2025, 6, 1), np.ones((2, 2)), 900, "1-D"),
    (local(2025, 6, 1), np.array([]), 900, "non-empty"),
])
def test_bad_bill_input_is_refused(sdge, start, kw, interval_s, message):
    with pytest.raises(BillError, match=message):
        compute_bill(sdge, start, kw, interval_s)


def test_export_is_reported_without_credit_on_a_non_export_site(sdge):
    start = local(2025, 6, 10)
    kw = np.full(96, 100.0)
    kw[at(start, local(2025, 6, 10, 12, 0)):at(start, local(2025, 6, 10, 13, 0))] = -40.0
    june = compute_bill(sdge, start, kw).months["2025-06"]
    export = june.item("export", "off_peak")
    assert (export.quantity, export.amount) == (pytest.approx(40.0), 0.0)
    assert "no export credit" in export.name
    assert june.export_kwh == pytest.approx(40.0)
    assert june.item("energy", "off_peak").quantity == pytest.approx((10 + 3 - 1) * 100)  # 6-16, 21-24, less 12-13


# --- OpenEI URDB --------------------------------------------------------------------------------
def test_urdb_fixture_imports_to_the_schedules_and_rates_written(urdb_raw):
    t = load_tariff(FIXTURE)
    assert t.period_names == ["p0", "p1", "p2", "p3", "p4", "p5"]
    assert {p: t.periods[p] for p in t.period_names} == {"p0": 0.30, "p1": 0.15, "p2": 0.10,
                                                           "p3": 0.24, "p4": 0.13, "p5": 0.09}
    assert t.period_matrix("weekday").tolist() == urdb_raw["energyweekdayschedule"]
    assert t.period_matrix("weekend_holiday").tolist() == urdb_raw["energyweekendschedule"]
    assert t.seasons == {"nov-may": [1, 2, 3, 4, 5, 11, 12], "jun-oct": [6, 7, 8, 9, 10]}
    assert t.demand.on_peak_periods == ["p0", "p3"]
    assert [t.on_peak_demand_rate(m) for m in range(1, 13)] == [5.0] * 5 + [25.0] * 5 + [5.0] * 2
    assert [t.max_demand_rate(m) for m in range(1, 13)] == [30.0] * 12
    assert [(c.amount, c.unit) for c in t.fixed_charges] == [(300.0, "$/month")]
    assert t.effective_from == date(2025, 1, 1) and t.rates_as_of == date(2025, 2, 14)
    assert t.overrides[0].months == [3, 4] and t.overrides[0].windows == {"p5": ["10:00-14:00"]}
    assert any("holiday" in note for note in t.notes)
    assert t.holidays == []


def test_urdb_fixture_prices_match_the_shipped_yaml_on_non_holidays(sdge):
    """The fixture encodes the shipped tariff: every quarter hour of 2025 must price the same."""
    t = load_tariff(FIXTURE)
    start = local(2025, 1, 1)
    n = 365 * 96  # absolute quarter hours of 2025: the spring and autumn DST hours cancel
    a, b = sdge.interval_prices(start, n), t.interval_prices(start, n)
    ordinary = np.array([not sdge.is_holiday(d) for d in
                         (datetime.fromtimestamp(e, UTC).astimezone(LA).date() for e in a.grid.epoch)])
    assert ordinary.sum() > 0.97 * n
    assert np.array_equal(a.energy_rate[ordinary], b.energy_rate[ordinary])
    assert np.array_equal(a.on_peak_demand[ordinary], b.on_peak_demand[ordinary])
    assert a.max_demand_rate == b.max_demand_rate and a.on_peak_demand_rate == b.on_peak_demand_rate
    holiday = ~ordinary
    assert not np.array_equal(a.energy_rate[holiday], b.energy_rate[holiday])  # URDB has no holidays


def test_urdb_yaml_round_trip(tmp_path):
    t = load_tariff(FIXTURE)
    path = tmp_path / "imported.yaml"
    path.write_text(t.to_yaml())
    assert load_tariff(path) == t


def test_urdb_items_wrapper_and_bare_item(tmp_path, urdb_raw):
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(urdb_raw))
    assert load_tariff(bare) == load_tariff(FIXTURE)
    two = tmp_path / "two.json"
    two.write_text(json.dumps({"items": [urdb_raw, urdb_raw]}))
    with pytest.raises(TariffError, match=r"two\.json.*exactly one rate item, found 2"):
        load_tariff(two)
    with pytest.raises(TariffError, match="exactly one"):
        urdb_item({"items": []})


def test_urdb_tiers_use_the_first_tier_and_say_so(urdb_raw):
    item = copy.deepcopy(urdb_raw)
    item["energyratestructure"][0] = [{"rate": 0.28, "adj": 0.02, "max": 500, "unit": "kWh"},
                                      {"rate": 0.40, "adj": 0.02, "unit": "kWh"}]
    t = tariff_from_urdb(item)
    assert t.periods["p0"] == 0.30
    assert any("tiered" in n and "FIRST tier" in n for n in t.notes)


def test_urdb_labels_name_periods_and_sell_becomes_export_credit(urdb_raw):
    item = copy.deepcopy(urdb_raw)
    item["energytoulabels"] = ["Summer On-Peak", "Summer Off-Peak", "Summer Super Off-Peak",
                               "Winter On-Peak", "Winter Off-Peak", "Winter Super Off-Peak"]
    item["energyratestructure"][2][0]["sell"] = 0.03
    t = tariff_from_urdb(item, timezone="America/Los_Angeles")
    assert t.period_names[:3] == ["summer_on_peak", "summer_off_peak", "summer_super_off_peak"]
    assert t.demand.on_peak_periods == ["summer_on_peak", "winter_on_peak"]
    assert t.export_credit == {"summer_super_off_peak": 0.03}
    assert t.export_rate("summer_super_off_peak") == 0.03 and t.export_rate("summer_on_peak") == 0.0


def _broken(urdb_raw: dict, **changes) -> dict:
    item = copy.deepcopy(urdb_raw)
    for key, value in changes.items():
        if value is None:
            del item[key]
        else:
            item[key] = value
    return item


@pytest.mark.parametrize(("changes", "message"), [
    ({"energyratestructure": None}, "energyratestructure: missing"),
    ({"energyweekdayschedule": [[9] * 24] * 12}, r"energyweekdayschedule\[0\]\[0\]: period 9"),
    ({"energyweekendschedule": [[0] * 23] * 12}, r"energyweekendschedule\[0\]: expected 24"),
    ({"demandrateunit": "kVA"}, "demandrateunit: 'kVA'"),
    ({"demandwindow": 30}, "demandwindow: 30"),
    ({"fixedchargeunits": "$/year"}, "fixedchargeunits: '\\$/year'"),
    ({"energyratestructure": [[{"rate": "cheap"}]] * 6}, r"energyratestructure\[0\]\[0\]\.rate"),
    ({"demandratestructure": [[{"rate": 25}], [{"rate": 5}], [{"rate": 2}]]}, "month 1 has 2 different TOU demand"),
    ({"demandweekdayschedule": [[2] * 16 + ([0] * 5 if 6 <= m <= 10 else [1] * 2 + [2] * 3) + [2] * 3
                                for m in range(1, 13)]}, "month 1 the TOU demand hours cut through energy period 3"),
])
def test_broken_urdb_items_raise_naming_the_field(urdb_raw, changes, message):
    with pytest.raises(TariffError, match=message) as exc:
        tariff_from_urdb(_broken(urdb_raw, **changes))
    assert "00000000000000000000a170" in str(exc.value)


def test_broken_urdb_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(TariffError, match=r"broken\.json is not valid JSON"):
        load_tariff(path)


# --- broken YAML --------------------------------------------------------------------------------
def _shipped() -> dict:
    return yaml.safe_load((SHIPPED_DIR / "sdge_al_tou.yaml").read_text())


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "tariff.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.mark.parametrize(("edit", "message"), [
    (lambda d: d.update(windwos={}), "windwos: unknown field"),
    (lambda d: d["demand"].update(max_demnd=30), "demand.max_demnd: unknown field"),
    (lambda d: d.pop("rates_illustrative"), "rates_illustrative: required field is missing"),
    (lambda d: d["windows"]["summer"]["weekday"].update(on_peek=["16:00-21:00"]),
     "windows.summer.weekday.on_peek: unknown period 'on_peek'"),
    (lambda d: d["windows"]["summer"]["weekday"].update(on_peak=["16-21"]), "'16-21' is not a range"),
    (lambda d: d["windows"]["summer"]["weekday"].update(on_peak=["05:00-21:00"]), "overlaps super_off_peak"),
    (lambda d: d["windows"]["summer"]["weekday"].update(on_peak=["21:00-16:00"]), "wraps past midnight"),
    (lambda d: d["windows"]["summer"]["weekday"].update(on_peak=["16:10-21:00"]), ":00, :15, :30 or :45"),
    (lambda d: d["seasons"].update(winter=[11, 12, 1, 2, 3, 4]), r"seasons: months \[5\] belong to no season"),
    (lambda d: d["seasons"].update(winter=[11, 12, 1, 2, 3, 4, 5, 6]), "seasons.winter: month 6 is also in"),
    (lambda d: d["periods"].update(on_peak={"summer": 0.3}), "periods.on_peak: no rate for season winter"),
    (lambda d: d["periods"].update(on_peak={"summer": -0.3, "winter": 0.2}), "periods.on_peak"),
    (lambda d: d["demand"].update(on_peak_demand={"summer": 25}), r"demand.on_peak_demand: no value for season"),
    (lambda d: d.update(holidays=["Presidents' Day"]), "holidays: \\[\"Presidents' Day\"\\] not known"),
    (lambda d: d.update(timezone="America/San_Diego"), "timezone: 'America/San_Diego'"),
    (lambda d: d.update(default_period=None), "06:00 is in no window and default_period gives no period for season"),
    (lambda d: d["overrides"][0].update(months=[13]), "overrides.0.months.0"),
])
def test_broken_yaml_raises_naming_file_and_field(tmp_path, edit, message):
    data = _shipped()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(TariffError, match=message) as exc:
        load_tariff(path)
    assert str(path) in str(exc.value)


def test_unreadable_tariffs(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    with pytest.raises(TariffError, match=r"bad\.yaml is not valid YAML"):
        load_tariff(bad)
    with pytest.raises(TariffError, match="no shipped tariff of that name"):
        load_tariff("pge-b19")
    with pytest.raises(TariffError, match="does not exist"):
        load_tariff(tmp_path / "missing.yaml")
    with pytest.raises(TariffError, match="must be a mapping"):
        parse_tariff(["a"], "list.yaml")


# --- CLI ----------------------------------------------------------------------------------------
def test_cli_show_import_and_bill(tmp_path, sdge):
    runner = CliRunner()
    shown = runner.invoke(tariff_app, ["show", "sdge-al-tou"], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    assert "RATES ILLUSTRATIVE" in shown.output and "on_peak 16:00-21:00" in shown.output
    assert "super_off_peak 10:00-14:00" in shown.output  # Mar/Apr weekdays

    out = tmp_path / "imported.yaml"
    imported = runner.invoke(tariff_app, ["import-urdb", str(FIXTURE), "--out", str(out)])
    assert imported.exit_code == 0, imported.output
    assert load_tariff(out) == load_tariff(FIXTURE)
    again = runner.invoke(tariff_app, ["import-urdb", str(FIXTURE), "--out", str(out)])
    assert again.exit_code == 2

    start = local(2025, 6, 10)
    rows = ["time,kw"]
    for i in range(96):
        t = (start.astimezone(UTC) + timedelta(minutes=15 * i)).astimezone(LA)
        if i != 5:  # a missing row becomes a gap
            rows.append(f"{t.isoformat()},{300 if i == 70 else 100}")
    csv_path = tmp_path / "poi.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    billed = runner.invoke(tariff_app, ["bill", "sdge-al-tou", "--csv", str(csv_path), "--json"])
    assert billed.exit_code == 0, billed.output
    result = json.loads(billed.output)
    june = result["months"]["2025-06"]
    assert june["gap_intervals"] == 1 and june["incomplete"] is True
    kw = np.full(96, 100.0)
    kw[5], kw[70] = np.nan, 300.0
    assert result["total"] == pytest.approx(compute_bill(sdge, start, kw).total)
    table = runner.invoke(tariff_app, ["bill", "sdge-al-tou", "--csv", str(csv_path)], terminal_width=200)
    assert table.exit_code == 0 and "INCOMPLETE" in table.output and "max demand" in table.output

    naive = tmp_path / "naive.csv"
    naive.write_text("time,kw\n2025-06-10T00:00:00,100\n2025-06-10T00:15:00,100\n")
    refused = runner.invoke(tariff_app, ["bill", "sdge-al-tou", "--csv", str(naive)])
    assert refused.exit_code == 2 and "no UTC offset" in refused.output
