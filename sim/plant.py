"""Physics of the simulated site: facility load, BESS (SOC, racks, thermal), PCS (lag, ramp,
reversion), POI relay (IEEE 1547-2018 trip elements, 86 lockout), revenue meter (CT/PT ratios,
wiring faults), grid voltage and frequency.

Pure and clock-injected: ``Plant.step(t_s)`` advances to plant time ``t_s`` (seconds since the
simulation start); nothing here reads the wall clock, so a run is reproducible for a given seed.
Sign conventions: BESS/PCS power > 0 discharges; POI power > 0 imports from the grid.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from energizeos.loads import profile_day

LOADS_DIR = Path(__file__).resolve().parent / "data" / "loads"
DEFAULT_PROFILE = LOADS_DIR / "crb8760_norm_LosAngeles_LargeOffice.dat"

# IEEE 1547-2018 default trip settings (pu or Hz, clearing time s), DESIGN.md section 8.
TRIP_SETTINGS = {
    "II": {"OV2": (1.20, 0.16), "OV1": (1.10, 2.0), "UV1": (0.70, 10.0), "UV2": (0.45, 0.16),
           "OF2": (62.0, 0.16), "OF1": (61.2, 300.0), "UF1": (58.5, 300.0), "UF2": (56.5, 0.16)},
    "III": {"OV2": (1.20, 0.16), "OV1": (1.10, 13.0), "UV1": (0.88, 21.0), "UV2": (0.50, 2.0),
            "OF2": (62.0, 0.16), "OF1": (61.2, 300.0), "UF1": (58.5, 300.0), "UF2": (56.5, 0.16)},
}


def load_profile(path: Path) -> list[float]:
    """8,760 hourly values normalised to sum 1 (NREL REopt.jl DOE reference buildings)."""
    if not path.is_file():
        raise FileNotFoundError(f"load profile {path} does not exist")
    values = [float(line) for line in path.read_text().split()]
    if len(values) != 8760:
        raise ValueError(f"load profile {path} has {len(values)} values, expected 8760 hourly values")
    return values


@dataclass
class PlantConfig:
    start: datetime = datetime(2025, 7, 15, tzinfo=UTC)
    profile: Path = DEFAULT_PROFILE
    annual_kwh: float = 4_000_000.0  # about 460 kW average, 900 kW peak with the LargeOffice shape
    load_noise_pct: float = 1.5
    load_pf: float = 0.95
    pv_kw_peak: float = 0.0  # optional rooftop PV behind the POI (clear-sky bell, 06:00-18:00 local solar time)
    utc_offset_h: float = -8.0  # site standard time (Pacific) for the load profile and the sun
    seed: int = 1
    align_weekdays: bool = False  # map profile days (2017 calendar) onto the same weekdays of the simulated year
    # battery
    bess_kwh: float = 1000.0
    n_racks: int = 8
    cells_in_series: int = 240  # per rack string, ~768 V nominal
    eff_charge: float = 0.96
    eff_discharge: float = 0.96
    initial_soc_pct: float = 50.0
    ambient_c: float = 25.0
    # PCS
    pcs_kw: float = 500.0
    pcs_lag_s: float = 0.2  # first-order response time constant
    pcs_ramp_kw_per_s: float = 500.0
    pcs_reversion_s: float = 10.0  # default WSetRvrtTms: 0 kW when the EMS stops refreshing
    # grid and POI
    v_nominal_ln: float = 277.0  # 480 V line-to-line
    f_nominal: float = 60.0
    ct_ratio: float = 400.0  # 2000:5
    pt_ratio: float = 4.0  # 480:120 (277:69.3 line-to-neutral)
    relay_category: str = "II"
    # longest physics sub-step: 1 s resolves the PCS lag and ramp and the relay clearing times. A
    # coarse savings simulation may raise it to its step (every sub-step costs the same CPU time).
    max_substep_s: float = 1.0


@dataclass
class Rack:
    soc_offset_pct: float
    temp_c: float
    extra_heat_c: float = 0.0  # fault injection: over-temperature
    connected: bool = True


@dataclass
class GridEvent:
    kind: str  # "voltage" (pu) or "frequency" (Hz)
    value: float
    until_s: float


@dataclass
class Plant:
    config: PlantConfig = field(default_factory=PlantConfig)
    t_s: float = 0.0

    def __post_init__(self) -> None:
        cfg = self.config
        if not cfg.max_substep_s > 0:
            raise ValueError(f"max_substep_s must be > 0 s, got {cfg.max_substep_s}")
        self._profile = load_profile(cfg.profile)
        self._rng = random.Random(cfg.seed)
        self._noise = 0.0
        self._noise_dt = math.nan  # the dt _noise_alpha/_noise_gain were computed for (the same every sub-step)
        self._noise_alpha = self._noise_gain = 0.0
        self._year_starts: dict[tuple[int, object], datetime] = {}  # 1 January 00:00 local, by year
        self._day_index: dict[date, int] = {}  # simulated local day -> profile day (align_weekdays)
        self.load_kw = self._profile_kw(0.0)
        self.load_override_kw: float | None = None
        self.pv_kw = 0.0
        # BESS
        self.soc_pct = cfg.initial_soc_pct
        self.racks = [Rack(self._rng.uniform(-0.4, 0.4), cfg.ambient_c + self._rng.uniform(0, 1.0))
                      for _ in range(cfg.n_racks)]
        self.contactors_closed = True
        self.contactor_fault = False
        self.bms_standby = False  # fault injection: the BMS drops its ready signal (standby, contactors closed)
        self.soc_reading_override: float | None = None  # fault injection: the SOC the BMS reports (test mode)
        self.soh_pct = 97.0
        # PCS
        self.pcs_p_kw = 0.0
        self.pcs_q_kvar = 0.0
        self.pcs_enabled = False
        self.pcs_setpoint_kw = 0.0
        self.pcs_fault = False
        self.pcs_ignore_reversion = False  # fault injection for commissioning: a PCS that never reverts
        self.pcs_reversion_s = cfg.pcs_reversion_s
        self._setpoint_refreshed_s = -math.inf
        self.pcs_reverted = False
        # grid
        self.v_pu = 1.0
        self.f_hz = cfg.f_nominal
        self.grid_events: list[GridEvent] = []
        # relay
        self.breaker_closed = True
        self.trip = False
        self.lockout_86 = False
        self.last_trip_cause = ""
        self.relay_settings = dict(TRIP_SETTINGS[cfg.relay_category])
        self._element_timers: dict[str, float] = dict.fromkeys(self.relay_settings, 0.0)
        self.active_elements: list[str] = []
        self.relay_latches_86 = True  # fault injection: a relay whose 86 does not latch
        # meter
        self.installed_ct_ratio = cfg.ct_ratio  # physical CT; the meter is configured with config.ct_ratio
        self.ct_polarity = {"A": 1.0, "B": 1.0, "C": 1.0}
        self.pt_fuse_blown = {"A": False, "B": False, "C": False}
        self.energy_delivered_kwh = 0.0
        self.energy_received_kwh = 0.0
        self.demand_15min_kw = 0.0
        self._demand_acc = 0.0
        self._demand_start_s = 0.0

    # --- time ---------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.config.start + timedelta(seconds=self.t_s)

    def _local(self, t_s: float) -> datetime:
        return self.config.start + timedelta(seconds=t_s, hours=self.config.utc_offset_h)

    def _pv_kw(self, t_s: float) -> float:
        """Clear-sky PV: a half-sine between 06:00 and 18:00 local time, with the same cloud noise as load."""
        if self.config.pv_kw_peak <= 0:
            return 0.0
        when = self._local(t_s)
        hour = when.hour + when.minute / 60 + when.second / 3600
        if not 6.0 <= hour <= 18.0:
            return 0.0
        return self.config.pv_kw_peak * math.sin(math.pi * (hour - 6.0) / 12.0)

    def expected_load_kw(self, t_s: float) -> float:
        """The profile's load at plant time ``t_s`` (may be before the start), without noise: what the
        site's utility interval data would have shown."""
        return self._profile_kw(t_s)

    def _profile_kw(self, t_s: float) -> float:
        """Hourly profile (local standard time), linearly interpolated, scaled to the annual energy."""
        when = self._local(t_s)
        key = (when.year, when.tzinfo)
        year_start = self._year_starts.get(key)
        if year_start is None:  # cached: this runs every physics sub-step
            year_start = self._year_starts[key] = datetime(when.year, 1, 1, tzinfo=when.tzinfo)
        if self.config.align_weekdays:  # weekends stay weekends whatever the year
            day = when.date()
            index = self._day_index.get(day)
            if index is None:
                index = self._day_index[day] = profile_day(day, align_weekday=True)
            hour = index * 24 + (when - when.replace(hour=0, minute=0, second=0, microsecond=0)).total_seconds() / 3600
        else:
            hour = (when - year_start).total_seconds() / 3600.0
        i = int(hour) % 8760
        frac = hour - int(hour)
        share = self._profile[i] * (1 - frac) + self._profile[(i + 1) % 8760] * frac
        return share * self.config.annual_kwh  # share of a year's kWh in one hour = average kW

    # --- derived BESS quantities --------------------------------------------------------------
    @property
    def rack_soc(self) -> list[float]:
        return [min(100.0, max(0.0, self.soc_pct + r.soc_offset_pct)) for r in self.racks]

    def cell_voltage(self, soc_pct: float, current_a: float = 0.0) -> float:
        """LFP-like open-circuit curve plus IR drop (discharge current > 0 lowers it)."""
        s = soc_pct / 100.0
        ocv = 3.0 + 0.25 * s + 0.05 * math.tanh((s - 0.05) * 20) + 0.1 * max(0.0, s - 0.95) * 20
        return ocv - 0.00025 * current_a / max(1, self.config.n_racks)  # ~0.25 mOhm per cell, per rack current

    @property
    def dc_voltage(self) -> float:
        return self.cell_voltage(self.soc_pct, self.dc_current) * self.config.cells_in_series

    @property
    def dc_current(self) -> float:
        nominal_v = 3.2 * self.config.cells_in_series
        return self.pcs_p_kw * 1000.0 / nominal_v

    @property
    def temp_max(self) -> float:
        return max([r.temp_c for r in self.racks])

    def current_limits(self) -> tuple[float, float]:
        """(max charge A, max discharge A) derated by temperature and SOC, as a BMS does."""
        nominal_v = 3.2 * self.config.cells_in_series
        base = self.config.pcs_kw * 1000.0 / nominal_v * 1.1
        t = self.temp_max
        # = not self.bms_permissive, with the temperature taken once (this runs every physics sub-step)
        if not self.contactors_closed or self.contactor_fault or t >= 60.0 or self.bms_standby:
            return 0.0, 0.0
        temp_factor = 1.0 if t <= 45.0 else max(0.0, (55.0 - t) / 10.0)
        charge = base * temp_factor * (1.0 if self.soc_pct <= 90 else max(0.0, (98.0 - self.soc_pct) / 8.0))
        discharge = base * temp_factor * (1.0 if self.soc_pct >= 10 else max(0.0, (self.soc_pct - 3.0) / 7.0))
        return charge, discharge

    @property
    def bms_fault(self) -> bool:
        return self.contactor_fault or self.temp_max >= 60.0

    @property
    def bms_permissive(self) -> bool:
        return self.contactors_closed and not self.bms_fault and not self.bms_standby

    @property
    def reported_soc_pct(self) -> float:
        """The SOC the BMS reports: the model's, unless a test forces the reading."""
        return self.soc_reading_override if self.soc_reading_override is not None else self.soc_pct

    @property
    def grid_ok(self) -> bool:
        return self.breaker_closed and not self.trip

    # --- commands (from device registers) -----------------------------------------------------
    def command_pcs(self, setpoint_kw: float | None = None, enabled: bool | None = None) -> None:
        """A set-point or enable write; either refreshes the reversion timer."""
        if setpoint_kw is not None:
            self.pcs_setpoint_kw = setpoint_kw
        if enabled is not None:
            self.pcs_enabled = enabled
        self._setpoint_refreshed_s = self.t_s
        self.pcs_reverted = False

    def relay_close(self, permissive_input: bool) -> bool:
        """Relay logic supervising a remote close: refused while tripped, locked out or not permitted."""
        if self.trip or self.lockout_86 or not permissive_input:
            return False
        self.breaker_closed = True
        return True

    def relay_open(self) -> None:
        self.breaker_closed = False
        self.last_trip_cause = "REMOTE_OPEN"

    def relay_reset(self) -> bool:
        """Reset the 86 latch and the trip output, only once no element is picked up."""
        if self.active_elements:
            return False
        self.lockout_86 = False
        self.trip = False
        return True

    # --- stepping -----------------------------------------------------------------------------
    def step(self, t_s: float) -> None:
        """Advance to plant time ``t_s``; long gaps are integrated in sub-steps of at most
        ``config.max_substep_s`` (1 s by default)."""
        max_dt = self.config.max_substep_s
        while self.t_s < t_s - 1e-9:
            self._advance(min(max_dt, t_s - self.t_s))

    def _advance(self, dt: float) -> None:
        self.t_s += dt
        self._update_grid()
        self._update_relay(dt)
        self._update_load(dt)
        self._update_pcs(dt)
        self._update_bess(dt)
        self._update_meter(dt)

    def _update_grid(self) -> None:
        if self.grid_events:
            self.grid_events = [e for e in self.grid_events if e.until_s > self.t_s]
            v = next((e.value for e in self.grid_events if e.kind == "voltage"), 1.0)
            f = next((e.value for e in self.grid_events if e.kind == "frequency"), self.config.f_nominal)
        else:  # no grid event (nearly always): nominal, without building the generators
            v, f = 1.0, self.config.f_nominal
        self.v_pu = v + 0.002 * math.sin(self.t_s / 37.0)
        self.f_hz = f + 0.005 * math.sin(self.t_s / 23.0)

    def _update_relay(self, dt: float) -> None:
        measured = {"OV": self.v_pu, "UV": self.v_pu, "OF": self.f_hz, "UF": self.f_hz}
        active = []
        for name, (pickup, clearing) in self.relay_settings.items():
            value = measured[name[:2]]
            picked = value > pickup if name[0] == "O" else value < pickup
            self._element_timers[name] = self._element_timers[name] + dt if picked else 0.0
            if picked:
                active.append(name)
                if self._element_timers[name] >= clearing - 1e-9 and self.breaker_closed:
                    self.trip_breaker(name)
        self.active_elements = active

    def trip_breaker(self, cause: str) -> None:
        self.breaker_closed = False
        self.trip = True
        self.lockout_86 = self.lockout_86 or self.relay_latches_86
        self.last_trip_cause = cause

    def _update_load(self, dt: float) -> None:
        # AR(1) noise: realistic short-term wander around the profile, reproducible by seed.
        if dt != self._noise_dt:  # the coefficients depend on dt only, which is the same nearly every sub-step
            alpha = math.exp(-dt / 60.0)
            self._noise_dt, self._noise_alpha, self._noise_gain = dt, alpha, math.sqrt(1 - alpha * alpha)
        sigma = self.config.load_noise_pct / 100.0
        self._noise = self._noise_alpha * self._noise + self._noise_gain * self._rng.gauss(0.0, sigma)
        if self.load_override_kw is not None:  # a forced load step (scenario tests, commissioning)
            self.load_kw = self.load_override_kw
        else:
            self.load_kw = max(0.0, self._profile_kw(self.t_s) * (1.0 + self._noise))
        self.pv_kw = self._pv_kw(self.t_s)

    def _update_pcs(self, dt: float) -> None:
        cfg = self.config
        expired = self.t_s - self._setpoint_refreshed_s > self.pcs_reversion_s
        if expired and not self.pcs_ignore_reversion and (self.pcs_setpoint_kw or self.pcs_enabled):
            self.pcs_reverted = True
        target = self.pcs_setpoint_kw if self.pcs_enabled and not self.pcs_reverted else 0.0
        if self.pcs_fault or not self.grid_ok or not self.contactors_closed:
            target = 0.0  # anti-islanding and DC isolation: no power without grid and contactors
        charge_a, discharge_a = self.current_limits()
        v = self.dc_voltage
        target = max(-min(cfg.pcs_kw, charge_a * v / 1000.0), min(cfg.pcs_kw, discharge_a * v / 1000.0, target))
        response = (target - self.pcs_p_kw) * (1.0 - math.exp(-dt / cfg.pcs_lag_s))
        max_step = cfg.pcs_ramp_kw_per_s * dt
        self.pcs_p_kw += max(-max_step, min(max_step, response))
        if self.pcs_fault or not self.grid_ok:
            self.pcs_p_kw = 0.0  # trips off at once rather than ramping

    @property
    def pcs_state(self) -> str:
        if self.pcs_fault:
            return "fault"
        if not self.grid_ok:
            return "off"
        return "running" if self.pcs_enabled and not self.pcs_reverted else "standby"

    def _update_bess(self, dt: float) -> None:
        cfg = self.config
        p = self.pcs_p_kw
        energy_kwh = p * dt / 3600.0
        delta = -energy_kwh / cfg.eff_discharge if p > 0 else -energy_kwh * cfg.eff_charge
        self.soc_pct = min(100.0, max(0.0, self.soc_pct + 100.0 * delta / cfg.bess_kwh))
        heat = (p / cfg.pcs_kw) ** 2 * 8.0  # °C rise at full power in steady state
        approach = 1.0 - math.exp(-dt / 300.0)  # the same for every rack
        for rack in self.racks:
            target = cfg.ambient_c + heat + rack.extra_heat_c
            rack.temp_c += (target - rack.temp_c) * approach
        if self.contactor_fault:
            self.contactors_closed = False

    def _update_meter(self, dt: float) -> None:
        p_poi = self.load_kw - self.pv_kw - self.pcs_p_kw if self.breaker_closed else 0.0
        measured = self._meter(False)  # = meter_secondary()["p_kw_primary_as_configured"]
        self.poi_true_kw = p_poi
        energy = measured * dt / 3600.0
        if energy >= 0:
            self.energy_delivered_kwh += energy
        else:
            self.energy_received_kwh -= energy
        self._demand_acc += measured * dt
        if self.t_s - self._demand_start_s >= 900.0 - 1e-9:
            self.demand_15min_kw = self._demand_acc / (self.t_s - self._demand_start_s)
            self._demand_acc = 0.0
            self._demand_start_s = self.t_s

    # --- the meter's view ---------------------------------------------------------------------
    def meter_secondary(self) -> dict:
        """What the meter measures on its secondary terminals, per phase, and the totals it derives.

        Physical truth passes through the installed CTs and PTs (with any wiring fault); the meter
        converts back with its *configured* ratios, so a wrong CT ratio or a reversed CT shows up in
        the reported values exactly as in the field.
        """
        return self._meter(True)

    def _meter(self, full: bool) -> Any:
        """``meter_secondary()``; with ``full`` False only its ``p_kw_primary_as_configured``, by the
        same arithmetic without Q or the per-phase dicts (the energy registers need it every sub-step)."""
        cfg = self.config
        closed = self.breaker_closed
        p_kw = (self.load_kw - self.pv_kw - self.pcs_p_kw) if closed else 0.0
        q_kvar = (self.load_kw * math.tan(math.acos(cfg.load_pf)) - self.pcs_q_kvar) if closed else 0.0
        v_ln = cfg.v_nominal_ln * self.v_pu
        phi = math.atan2(q_kvar, p_kw) if (p_kw or q_kvar) else 0.0
        i_primary = math.hypot(p_kw, q_kvar) * 1000.0 / (3.0 * v_ln) if v_ln else 0.0
        phi_deg = math.degrees(phi)
        i_sec = i_primary / self.installed_ct_ratio
        phases = {}
        p_total = q_total = 0.0
        for name, v_angle in (("A", 0.0), ("B", -120.0), ("C", 120.0)):
            v_sec = 0.0 if self.pt_fuse_blown[name] else v_ln / cfg.pt_ratio
            i_angle = v_angle - phi_deg + (180.0 if self.ct_polarity[name] < 0 else 0.0)
            i_angle = (i_angle + 180.0) % 360.0 - 180.0
            rel = math.radians(v_angle - i_angle)
            p_total += v_sec * i_sec * math.cos(rel)
            if full:
                q_total += v_sec * i_sec * math.sin(rel)
                phases[name] = {"v": v_sec, "v_angle": v_angle, "i": i_sec, "i_angle": i_angle}
        scale = cfg.ct_ratio * cfg.pt_ratio / 1000.0  # secondary W -> primary kW with configured ratios
        if not full:
            return p_total * scale
        return {"phases": phases, "p_w": p_total, "q_var": q_total,
                "s_va": math.hypot(p_total, q_total), "f_hz": self.f_hz,
                "p_kw_primary_as_configured": p_total * scale}

    # --- fault injection ----------------------------------------------------------------------
    def inject(self, fault: str, **params: float | str) -> None:
        """Plant-side faults (comms loss and stuck values live on the device registers)."""
        if fault == "rack_overtemp":
            self.racks[int(params.get("rack", 0))].extra_heat_c = float(params.get("delta_c", 30.0))
        elif fault == "contactor_fault":
            self.contactor_fault = True
        elif fault == "pcs_fault":
            self.pcs_fault = True
        elif fault == "bms_not_ready":
            self.bms_standby = True
        elif fault == "soc_reading":
            pct = float(params.get("pct", 5.0))
            if not 0.0 <= pct <= 100.0:
                raise ValueError(f"soc_reading: pct {pct} is outside 0..100 %")
            self.soc_reading_override = pct
        elif fault == "pcs_ignores_reversion":
            self.pcs_ignore_reversion = True
        elif fault == "ct_polarity":
            for phase in str(params.get("phases", "ABC")):
                self.ct_polarity[phase] = -1.0
        elif fault == "ct_ratio":
            self.installed_ct_ratio = float(params.get("actual_ratio", self.config.ct_ratio * 1.5))
        elif fault == "pt_fuse":
            self.pt_fuse_blown[str(params.get("phase", "A"))] = True
        elif fault == "relay_trip":
            self.trip_breaker("EXTERNAL")
        elif fault == "relay_no_86":
            self.relay_latches_86 = False
        elif fault == "load_step":
            self.load_override_kw = float(params.get("kw", 150.0))
        elif fault == "voltage_sag":
            self.grid_events.append(GridEvent("voltage", float(params.get("pu", 0.6)),
                                              self.t_s + float(params.get("duration_s", 1.0))))
        elif fault == "frequency_excursion":
            self.grid_events.append(GridEvent("frequency", float(params.get("hz", 61.5)),
                                              self.t_s + float(params.get("duration_s", 1.0))))
        else:
            raise ValueError(f"unknown plant fault {fault!r}; known: {', '.join(PLANT_FAULTS)}")

    def clear(self, fault: str) -> None:
        if fault == "rack_overtemp":
            for rack in self.racks:
                rack.extra_heat_c = 0.0
        elif fault == "contactor_fault":
            self.contactor_fault = False
            self.contactors_closed = True
        elif fault == "pcs_fault":
            self.pcs_fault = False
        elif fault == "bms_not_ready":
            self.bms_standby = False
        elif fault == "soc_reading":
            self.soc_reading_override = None
        elif fault == "pcs_ignores_reversion":
            self.pcs_ignore_reversion = False
        elif fault == "ct_polarity":
            self.ct_polarity = {"A": 1.0, "B": 1.0, "C": 1.0}
        elif fault == "ct_ratio":
            self.installed_ct_ratio = self.config.ct_ratio
        elif fault == "pt_fuse":
            self.pt_fuse_blown = {"A": False, "B": False, "C": False}
        elif fault == "relay_trip":
            pass  # a trip is cleared by the 86 reset through the relay, as in the field
        elif fault == "relay_no_86":
            self.relay_latches_86 = True
        elif fault == "load_step":
            self.load_override_kw = None
        elif fault in ("voltage_sag", "frequency_excursion"):
            kind = "voltage" if fault == "voltage_sag" else "frequency"
            self.grid_events = [e for e in self.grid_events if e.kind != kind]
        else:
            raise ValueError(f"unknown plant fault {fault!r}; known: {', '.join(PLANT_FAULTS)}")


PLANT_FAULTS = ("load_step", "rack_overtemp", "contactor_fault", "bms_not_ready", "soc_reading", "pcs_fault",
                "pcs_ignores_reversion", "ct_polarity", "ct_ratio", "pt_fuse", "relay_trip", "relay_no_86",
                "voltage_sag", "frequency_excursion")
