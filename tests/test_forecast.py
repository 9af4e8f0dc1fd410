"""Load forecast, site load history from the records DB, and the shared load profile reader."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import insert

from energizeos.loads import profile_date, read_profile, scaled_series
from energizeos.planning.forecast import (
    OFF,
    SATURDAY,
    WEEKDAY,
    ForecastError,
    day_grid,
    day_kind,
    evaluate,
    federal_holidays,
    forecast_day,
)
from energizeos.planning.history import BESS_POINT, POI_POINT, LoadHistory, site_load_history
from energizeos.records.models import Telemetry

TZ = "America/Los_Angeles"
LOADS = Path("/work/shared/data/loads")
SLOT = np.arange(96)
WEEKDAY_KW = 300 + 200 * np.exp(-(((SLOT - 56) / 18.0) ** 2))  # afternoon peak near 14:00
SATURDAY_KW = 250 + 80 * np.exp(-(((SLOT - 48) / 12.0) ** 2))
SUNDAY_KW = 200 + 10 * np.cos(SLOT / 96 * 2 * np.pi)
MEMORIAL_DAY = date(2025, 5, 26)


def synthetic(first: date, days: int, holidays: set[date] | None = None,
              kinds: dict[str, np.ndarray] | None = None) -> tuple[np.ndarray, datetime]:
    """15-minute series from local midnight of ``first``: each day its kind's profile on the local clock."""
    kinds = kinds or {WEEKDAY: WEEKDAY_KW, SATURDAY: SATURDAY_KW, OFF: SUNDAY_KW}
    holidays = federal_holidays([first.year, first.year + 1]) if holidays is None else holidays
    start = day_grid(first, TZ, 900)[0]
    parts = []
    for k in range(days):
        d = first + timedelta(days=k)
        parts.append(kinds[day_kind(d, holidays)][day_grid(d, TZ, 900)[1]])
    return np.concatenate(parts), start


def history_until(first: date, end: date, **kw) -> LoadHistory:
    series, start = synthetic(first, (end - first).days, **kw)
    return LoadHistory(start, 900, series)


# --- forecast: exact small cases --------------------------------------------------------------------
def test_every_weekday_the_same_gives_exactly_that_weekday():
    fc = forecast_day(history_until(date(2025, 4, 1), date(2025, 6, 3)), date(2025, 6, 3), TZ)
    assert fc.method == "similar-day"
    assert fc.start == datetime(2025, 6, 3, 7, tzinfo=UTC) and fc.interval_s == 900 and fc.n_intervals == 96
    np.testing.assert_allclose(fc.values, WEEKDAY_KW, rtol=1e-12)
    assert fc.used_days == [date(2025, 5, 27), date(2025, 5, 28), date(2025, 5, 29), date(2025, 5, 30),
                            date(2025, 6, 2)]  # Memorial Day (26 May) is not a weekday here
    assert not any("only" in n or "fell back" in n for n in fc.notes)


def test_saturday_and_sunday_are_forecast_from_their_own_days():
    history = history_until(date(2025, 4, 1), date(2025, 6, 7))
    np.testing.assert_allclose(forecast_day(history, date(2025, 6, 7), TZ).values, SATURDAY_KW, rtol=1e-12)
    history = history_until(date(2025, 4, 1), date(2025, 6, 8))
    np.testing.assert_allclose(forecast_day(history, date(2025, 6, 8), TZ).values, SUNDAY_KW, rtol=1e-12)


def test_weekday_vs_weekend_only_mixes_saturday_and_sunday():
    history = history_until(date(2025, 4, 1), date(2025, 6, 8))
    fc = forecast_day(history, date(2025, 6, 8), TZ, separate_saturday=False, level_gain=0)
    assert np.all(fc.values > SUNDAY_KW.min()) and not np.allclose(fc.values, SUNDAY_KW)


def test_a_holiday_monday_uses_the_sunday_holiday_profile():
    history = history_until(date(2025, 4, 1), MEMORIAL_DAY)
    fc = forecast_day(history, MEMORIAL_DAY, TZ)  # default: US federal holidays
    np.testing.assert_allclose(fc.values, SUNDAY_KW, rtol=1e-12)
    assert fc.used_days[-1] == date(2025, 5, 25)
    plain = forecast_day(history, MEMORIAL_DAY, TZ, holidays=set())
    np.testing.assert_allclose(plain.values, WEEKDAY_KW, rtol=1e-12)


def test_a_gap_in_history_is_ignored_not_read_as_zero():
    series, start = synthetic(date(2025, 4, 1), (date(2025, 6, 3) - date(2025, 4, 1)).days)
    i_last_monday = int((day_grid(date(2025, 6, 2), TZ, 900)[0] - start).total_seconds() // 900)
    series[i_last_monday + 40: i_last_monday + 60] = np.nan
    fc = forecast_day(LoadHistory(start, 900, series), date(2025, 6, 3), TZ)
    np.testing.assert_allclose(fc.values, WEEKDAY_KW, rtol=1e-12)
    assert date(2025, 6, 2) in fc.used_days


def test_a_slot_missing_in_every_similar_day_is_filled_and_said():
    series, start = synthetic(date(2025, 4, 1), (date(2025, 6, 3) - date(2025, 4, 1)).days)
    for k in range(63):  # 03:00-03:15 local missing on every day
        i = int((day_grid(date(2025, 4, 1) + timedelta(days=k), TZ, 900)[0] - start).total_seconds() // 900)
        series[i + 12] = np.nan
    fc = forecast_day(LoadHistory(start, 900, series), date(2025, 6, 3), TZ)
    assert np.isfinite(fc.values).all()
    assert "1 interval(s) had no data in any recent day: interpolated between neighbours" in fc.notes
    np.testing.assert_allclose(fc.values[12], (WEEKDAY_KW[11] + WEEKDAY_KW[13]) / 2, rtol=1e-9)


def test_few_similar_days_and_fallbacks_are_said_in_notes():
    history = history_until(date(2025, 6, 2), date(2025, 6, 5))  # Mon..Wed only
    fc = forecast_day(history, date(2025, 6, 5), TZ)
    assert fc.method == "similar-day" and any("only 3 similar day(s)" in n for n in fc.notes)
    np.testing.assert_allclose(fc.values, WEEKDAY_KW, rtol=1e-12)

    sunday = forecast_day(history, date(2025, 6, 8), TZ)  # no Sunday/holiday, no weekend day at all
    assert sunday.method == "recent-mean"
    assert any(n.startswith("fell back to the mean profile of the last 3 usable day(s)") for n in sunday.notes)
    np.testing.assert_allclose(sunday.values, WEEKDAY_KW, rtol=1e-12)

    sundays_only = history_until(date(2025, 6, 1), date(2025, 6, 2))
    saturday = forecast_day(sundays_only, date(2025, 6, 7), TZ)
    assert any("no Saturday" in n for n in saturday.notes)
    np.testing.assert_allclose(saturday.values, SUNDAY_KW, rtol=1e-12)


def test_no_usable_history_raises_forecast_error():
    empty = LoadHistory(datetime(2025, 6, 1, 7, tzinfo=UTC), 900, np.array([]))
    with pytest.raises(ForecastError, match="no usable load history for 2025-06-05"):
        forecast_day(empty, date(2025, 6, 5), TZ)
    all_nan = LoadHistory(datetime(2025, 6, 1, 7, tzinfo=UTC), 900, np.full(96 * 3, np.nan))
    with pytest.raises(ForecastError):
        forecast_day(all_nan, date(2025, 6, 5), TZ)
    later = history_until(date(2025, 6, 10), date(2025, 6, 20))  # nothing before the day: no peeking
    with pytest.raises(ForecastError):
        forecast_day(later, date(2025, 6, 5), TZ)
    assert issubclass(ForecastError, ValueError)


@pytest.mark.parametrize(("day", "n", "start_utc_hour"), [
    (date(2025, 3, 9), 92, 8), (date(2025, 11, 2), 100, 7), (date(2025, 11, 3), 96, 8)])
def test_dst_days_have_their_real_length(day, n, start_utc_hour):
    history = history_until(date(2025, 1, 1), day)
    fc = forecast_day(history, day, TZ)
    assert fc.n_intervals == n and len(fc.values) == n
    assert fc.start == datetime(day.year, day.month, day.day, start_utc_hour, tzinfo=UTC)
    assert fc.end == day_grid(day + timedelta(days=1), TZ, 900)[0]
    expected = {92: np.r_[0:8, 12:96], 100: np.r_[0:8, 4:96], 96: SLOT}[n]
    profile = SUNDAY_KW if day.weekday() == 6 else WEEKDAY_KW
    np.testing.assert_allclose(fc.values, profile[expected], rtol=1e-12)
    if n != 96:
        assert any(note.startswith(f"DST day: {n} intervals") for note in fc.notes)


def test_a_history_off_the_local_interval_grid_is_refused():
    history = LoadHistory(datetime(2025, 6, 1, 7, 5, tzinfo=UTC), 900, np.ones(96 * 3))
    with pytest.raises(ValueError, match="not on the 900 s grid"):
        forecast_day(history, date(2025, 6, 5), TZ)


def test_evaluate_is_exact_on_a_periodic_series_and_never_peeks():
    series, start = synthetic(date(2025, 4, 1), 70)
    days = [date(2025, 6, 2), date(2025, 6, 7), date(2025, 6, 8)]
    clean = evaluate(series, start, 900, days, TZ)
    assert clean["n_days"] == 3 and clean["n_intervals"] == 3 * 96
    assert clean["mape_pct"] == pytest.approx(0, abs=1e-9) and clean["peak_error_kw"] == pytest.approx(0, abs=1e-9)
    i = int((day_grid(date(2025, 6, 2), TZ, 900)[0] - start).total_seconds() // 900)
    series[i: i + 96] *= 2  # the test day doubles: the forecast must not have seen it
    doubled = evaluate(series, start, 900, days[:1], TZ)
    assert doubled["mape_pct"] == pytest.approx(50.0)
    day0 = doubled["days"][0]
    assert day0["peak_error_kw"] == pytest.approx(-WEEKDAY_KW.max())
    assert day0["peak_error_pct"] == pytest.approx(-50.0)
    assert doubled["peak_error_pct"] == pytest.approx(50.0)  # mean of |error|


# --- history from the records database ---------------------------------------------------------------
@pytest.fixture
def engine(migrated_engine):
    return migrated_engine


def test_site_load_history_is_15_minute_means_of_poi_plus_bess_with_gaps(engine):
    t0 = datetime(2025, 6, 1, 7, tzinfo=UTC)
    rows = []
    for k in range(0, 3600, 10):  # one hour, a sample every 10 s
        t = t0 + timedelta(seconds=k)
        bucket = k // 900
        rows.append({"point": POI_POINT, "time": t, "value": 100.0 * (bucket + 1) + (k % 900) / 90, "quality": 0})
        if bucket != 2:  # BESS silent for the third quarter hour: that interval is a gap
            rows.append({"point": BESS_POINT, "time": t, "value": -50.0, "quality": 0})
    rows.append({"point": POI_POINT, "time": t0 + timedelta(seconds=5), "value": 1e6, "quality": 1})  # invalid
    rows.append({"point": POI_POINT, "time": t0 + timedelta(seconds=7), "value": 1e6, "quality": 2})  # stale
    rows.append({"point": POI_POINT, "time": t0 + timedelta(seconds=1801, microseconds=250), "value": None,
                 "quality": 0})
    rows.append({"point": POI_POINT, "time": t0 + timedelta(seconds=899, microseconds=999_999), "value": 59.5,
                 "quality": 0})  # the last microsecond of the first interval
    rows.append({"point": POI_POINT, "time": t0 - timedelta(seconds=1), "value": 1e6, "quality": 0})  # before
    rows.append({"point": "/site/poi/meter/q_kvar", "time": t0, "value": 1e6, "quality": 0})  # another point
    with engine.begin() as conn:
        conn.execute(insert(Telemetry.__table__), rows)

    history = site_load_history(engine, t0, t0 + timedelta(hours=1, minutes=30))
    assert history.start == t0 and history.interval_s == 900 and len(history.values) == 6
    first_poi = (sum(100.0 + k / 90 for k in range(0, 900, 10)) + 59.5) / 91
    ramp = np.mean([k / 90 for k in range(0, 900, 10)])
    np.testing.assert_allclose(history.values[:2], [first_poi - 50, 200 + ramp - 50], rtol=1e-12)
    assert np.isnan(history.values[2])  # BESS missing: not read as a battery at rest
    assert history.values[3] == pytest.approx(400 + ramp - 50)
    assert np.isnan(history.values[4:]).all()  # no data at all after the hour
    assert history.coverage == pytest.approx(3 / 6)


def test_site_load_history_refuses_naive_times(engine):
    with pytest.raises(ValueError, match="aware"):
        site_load_history(engine, datetime(2025, 6, 1), datetime(2025, 6, 2))


# --- the shared load profiles ----------------------------------------------------------------------------
def write_profile(path: Path, values: list[str]) -> Path:
    path.write_text("\n".join(values) + "\n")
    return path


def test_read_profile_names_the_file_and_line_of_a_bad_value(tmp_path):
    good = [repr(1 / 8760)] * 8760
    assert read_profile(write_profile(tmp_path / "ok.dat", good)).sum() == pytest.approx(1.0)
    bad = good.copy()
    bad[2] = "0.0001x"
    with pytest.raises(ValueError, match=r"bad\.dat:3: '0\.0001x' is not a number"):
        read_profile(write_profile(tmp_path / "bad.dat", bad))
    for text, why in [("nan", "not finite"), ("-1e-4", "negative")]:
        bad[2] = text
        with pytest.raises(ValueError, match=rf"bad\.dat:3: .*{why}"):
            read_profile(write_profile(tmp_path / "bad.dat", bad))
    with pytest.raises(ValueError, match=r"short\.dat: 8759 values, expected 8760"):
        read_profile(write_profile(tmp_path / "short.dat", good[:-1]))
    with pytest.raises(ValueError, match=r"scaled\.dat: values sum to 2\.000000"):
        read_profile(write_profile(tmp_path / "scaled.dat", [repr(2 / 8760)] * 8760))
    with pytest.raises(FileNotFoundError):
        read_profile(tmp_path / "missing.dat")


@pytest.mark.skipif(not LOADS.is_dir(), reason="shared load profiles not present")
def test_scaled_series_keeps_every_hour_mean_and_the_annual_energy():
    path = LOADS / "crb8760_norm_LosAngeles_LargeOffice.dat"
    annual = json.loads((LOADS / "total_electric_annual_kwh.json").read_text())["LosAngeles"]["largeoffice"]
    start = datetime(2017, 1, 1, 8, tzinfo=UTC)  # local standard midnight on the profile's own calendar
    kw = scaled_series(path, annual, start, 365, 900)
    assert len(kw) == 35040 and (kw >= 0).all()
    assert kw.sum() * 0.25 == pytest.approx(annual, rel=1e-9)
    np.testing.assert_allclose(kw.reshape(-1, 4).mean(axis=1), read_profile(path) * annual, rtol=1e-9)
    leap = scaled_series(path, annual, datetime(2024, 2, 29, 8, tzinfo=UTC), 2, 3600)
    feb28 = read_profile(path)[58 * 24: 59 * 24] * annual
    np.testing.assert_allclose(leap[:24], feb28)  # 29 February reuses 28 February
    np.testing.assert_allclose(leap[24:], read_profile(path)[59 * 24: 60 * 24] * annual)  # 1 March is 1 March
    assert profile_date(date(2025, 5, 26), align_weekday=True) == date(2017, 5, 29)  # Monday to Monday
    with pytest.raises(ValueError, match="not on the 900 s grid"):
        scaled_series(path, annual, start + timedelta(minutes=7), 1, 900)


def test_the_level_of_the_latest_day_carries_over_damped_and_only_when_recent():
    series, start = synthetic(date(2025, 4, 1), (date(2025, 6, 3) - date(2025, 4, 1)).days)
    i = int((day_grid(date(2025, 6, 2), TZ, 900)[0] - start).total_seconds() // 900)
    series[i: i + 96] *= 1.2  # Monday 2 June ran 20 % high
    fc = forecast_day(LoadHistory(start, 900, series), date(2025, 6, 3), TZ)
    weights = 0.8 ** np.arange(5)
    shape = (1.2 * weights[0] + weights[1:].sum()) / weights.sum()
    np.testing.assert_allclose(fc.values, WEEKDAY_KW * shape * (1 + 0.25 * 0.2), rtol=1e-12)
    assert "level x1.050 from 2025-06-02" in fc.notes
    stale = forecast_day(LoadHistory(start, 900, series), date(2025, 6, 9), TZ)  # 7 days later: no level
    assert not any(n.startswith("level") for n in stale.notes)
    np.testing.assert_allclose(stale.values, WEEKDAY_KW * shape, rtol=1e-12)
