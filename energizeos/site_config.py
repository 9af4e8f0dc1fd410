"""The site configuration an integrator edits: device endpoints, nameplates, simulation settings.

One YAML file, validated with pydantic; a mistake is reported with the file and the field path
(``devices.meter.port: Input should be less than or equal to 65535``) before any process starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from energizeos.remote.config import UplinkSettings
from energizeos.yaml_file import read_yaml, validated

Port = Annotated[int, Field(ge=1, le=65535)]
# = energizeos.runtime.MIN_RATE_HZ (one per hour), written out so this module stays free of the runtime imports
MIN_RATE_HZ = 1.0 / 3600.0


class SiteConfigError(ValueError):
    """A broken site configuration file."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")  # a misspelt key is an error, not a silent default


class DeviceEndpoint(_Strict):
    host: str = "127.0.0.1"
    port: Port
    device_id: int = Field(1, ge=0, le=247)
    poll_hz: float = Field(5.0, ge=MIN_RATE_HZ, le=50.0)
    timeout_s: float = Field(0.25, ge=0.02, le=2.0)


class MeterEndpoint(DeviceEndpoint):
    nameplate_ctr: float = Field(400.0, gt=0, description="installed CT ratio, e.g. 400 for 2000:5")
    nameplate_ptr: float = Field(4.0, gt=0, description="installed PT ratio, e.g. 4 for 480:120")
    nominal_ln_v: float = Field(277.0, gt=0)


class Devices(_Strict):
    meter: MeterEndpoint = MeterEndpoint(port=15021)
    relay: DeviceEndpoint = DeviceEndpoint(port=15022)
    bms: DeviceEndpoint = DeviceEndpoint(port=15023, poll_hz=2.0)
    pcs: DeviceEndpoint = DeviceEndpoint(port=15024)


class Simulation(_Strict):
    load_profile: str = ""  # "" = the LargeOffice profile shipped in sim/data/loads
    annual_kwh: float = Field(4_000_000.0, gt=0)
    pv_kw_peak: float = Field(0.0, ge=0)
    step_hz: float = Field(10.0, ge=MIN_RATE_HZ, le=100.0)
    seed: int = 1


class Dispatch(_Strict):
    mode: str = Field("peak_shaving", pattern="^(standby|export_limit|peak_shaving|plan|manual|threshold)$")
    control_rate_hz: float = Field(1.0, ge=MIN_RATE_HZ, le=20.0)
    event_driven: bool = False  # also a request on every POI reading
    peak_threshold_kw: float = Field(500.0, ge=0)
    recharge_below_kw: float = Field(350.0, ge=0)
    recharge_max_kw: float = Field(250.0, ge=0)
    recharge_windows: str = "0-6,10-14"
    export_limit_kw: float = Field(0.0, ge=0)
    export_margin_kw: float = Field(10.0, ge=0)  # the most import kept against export (all of it for the first day)
    export_margin_min_kw: float = Field(5.0, ge=0)  # the least: the margin follows the site load's largest drops

    @model_validator(mode="after")
    def _margins_in_order(self) -> Dispatch:
        if self.export_margin_min_kw > self.export_margin_kw:
            raise ValueError(f"export_margin_min_kw ({self.export_margin_min_kw:g}) is above export_margin_kw "
                             f"({self.export_margin_kw:g}): the least margin cannot exceed the most")
        return self


class SafetyLimits(_Strict):
    """Arbiter limits (nodes/arbiter_rules.Limits); unset ones keep their documented defaults."""

    meter_watchdog_s: float = Field(1.0, gt=0)
    bms_watchdog_s: float = Field(2.0, gt=0)
    relay_watchdog_s: float = Field(1.0, gt=0)
    pcs_watchdog_s: float = Field(2.0, gt=0)
    meter_failsafe_s: float = Field(5.0, ge=0)
    min_site_load_kw: float = Field(100.0, ge=0)
    soc_min_pct: float = Field(10.0, ge=0, le=100)
    soc_reserve_pct: float = Field(5.0, ge=0, le=100)
    soc_max_pct: float = Field(95.0, ge=0, le=100)
    pcs_rated_kw: float = Field(500.0, gt=0)
    ramp_kw_per_s: float = Field(250.0, gt=0)
    export_limit_kw: float = Field(0.0, ge=0)
    es_delay_s: float = Field(300.0, ge=0)
    es_ramp_s: float = Field(300.0, ge=0)


class Alarms(_Strict):
    """Alarm manager settings; the alarm definitions themselves are the catalogue (knowledge/alarms.yaml)."""

    catalogue: str = ""  # "" = the shipped catalogue
    chatter_raises: int = Field(5, ge=2, le=100)
    chatter_window_s: float = Field(60.0, ge=1.0)
    max_shelve_s: float = Field(8 * 3600.0, ge=60.0)


class Planning(_Strict):
    """The day-ahead planner (nodes/planner.py); battery power and SOC limits come from ``safety``."""

    tariff: str = "sdge-al-tou"  # a shipped tariff name, or a YAML / OpenEI URDB JSON file
    approval: str = Field("auto", pattern="^(auto|manual)$")  # auto: a plan that passes the gate is approved
    plan_hour: int = Field(17, ge=0, le=23)  # site hour when tomorrow is planned
    bess_kwh: float = Field(1000.0, gt=0)  # usable energy
    terminal_soc_pct: float = Field(50.0, ge=0, le=100)
    replan_deviation_pct: float = Field(0.0, ge=0)  # 0: re-plan every interval (rolling horizon)
    replan_soc_deviation_pct: float = Field(0.0, ge=0)
    bias_decay_intervals: float = Field(0.0, ge=0)  # a re-plan's load correction fades (e-folding); 0: holds all day
    # the POI threshold the dispatcher holds is planned for a load this much above the forecast (0: the forecast's own)
    threshold_margin_pct: float = Field(0.0, ge=0, le=50)
    # the same for the on-peak thresholds alone (the larger margin applies there)
    on_peak_margin_pct: float = Field(2.0, ge=0, le=50)
    # the month's non-coincident peak is planned as at least the highest peak the day plan would have set on
    # the measured load of this many recent days (energizeos/planning/demand_floor.py); 0: off
    demand_floor_days: int = Field(14, ge=0, le=42)
    # the floor's plans span this many consecutive days: a battery large next to the load carries a light day's
    # energy into a heavy one (a weekend into the week), which a day plan alone cannot credit. 0: 7 when the
    # battery's usable energy is at least 0.15 of the site's mean day, else 1 (demand_floor.auto_window_days)
    demand_floor_window_days: int = Field(0, ge=0, le=7)
    # a month's measured peak at most this much above the highest threshold the followed plans held is planned
    # as that threshold: the billed 15-minute mean's small overshoot does not ratchet the month's peak up
    peak_noise_pct: float = Field(1.0, ge=0, le=5)
    # once a day the planner plans this many days ahead (to the month's end at most) and every plan ends at that
    # week plan's SOC, a kWh short costing what the week plan says it is worth; 0: plans end at terminal_soc_pct
    week_plan_days: int = Field(7, ge=0, le=14)
    # every plan's LP also sees this many 15-minute intervals of the next day's forecast; 0: the day alone
    lookahead_intervals: int = Field(96, ge=0, le=96)


class Ems(_Strict):
    dispatch: Dispatch = Dispatch()
    safety: SafetyLimits = SafetyLimits()
    alarms: Alarms = Alarms()
    planning: Planning = Planning()


class Records(_Strict):
    """Where records go. Empty ``db_url``: $ENERGIZEOS_DB_URL, else SQLite under $ENERGIZEOS_HOME.
    Prefer the environment variable for a PostgreSQL URL with a password."""

    db_url: str = Field("", pattern=r"^(|sqlite:///.+|postgresql(\+psycopg)?://.+)$")
    flush_period_s: float = Field(1.0, ge=0.05, le=60.0)
    retry_period_s: float = Field(2.0, ge=0.1, le=300.0)


class Reports(_Strict):
    """The reporter (nodes/reporter.py): daily and monthly reports from the records. See docs/reports.md."""

    formats: list[str] = Field(["pdf", "html", "csv"], min_length=1)
    max_hold_s: float = Field(5.0, gt=0, le=3600.0)  # a recorded sample stands for at most this long
    export_deadband_kw: float = Field(1.0, ge=0)  # export within this of the limit is meter noise, not an event
    adherence_tolerance_kw: float = Field(25.0, ge=0)  # an interval within this of its plan follows it
    settle_s: float = Field(300.0, ge=0, le=86400.0)  # wait after a day ends so its last records are in
    catch_up_days: int = Field(7, ge=1, le=366)  # missed days (the node was down) made up at start

    @field_validator("formats")
    @classmethod
    def _known_formats(cls, value: list[str]) -> list[str]:
        unknown = [f for f in value if f not in ("pdf", "html", "csv")]
        if unknown:
            raise ValueError(f"unknown report format(s) {unknown}; formats: pdf, html, csv")
        return value


class AssistantSettings(_Strict):
    """The assistant (nodes/assistant.py). No LLM by default: the deterministic composer answers."""

    llm_base_url: str = ""  # an OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1
    llm_model: str = ""
    llm_api_key_env: str = "ENERGIZEOS_LLM_API_KEY"  # the environment variable holding the key
    llm_timeout_s: float = Field(20.0, gt=0, le=300)
    retrieval: str = Field("hybrid", pattern="^(hybrid|dense|bm25)$")


class AccessPolicy(_Strict):
    """Logins to the app (energizeos/access/accounts.py)."""

    session_idle_min: float = Field(30.0, gt=0, le=24 * 60)
    session_max_h: float = Field(12.0, gt=0, le=7 * 24)
    lockout_after: int = Field(5, ge=1, le=100)  # wrong passwords in a row
    lockout_min: float = Field(15.0, gt=0, le=24 * 60)
    min_password_length: int = Field(12, ge=8, le=128)


class UiSettings(_Strict):
    """The Streamlit app: where it listens (loopback unless a TLS proxy is in front, see docs/ui.md)."""

    address: str = "127.0.0.1"
    port: Port = 8501
    refresh_s: float = Field(2.0, ge=0.5, le=60.0)  # live values on the Overview page


class SiteConfig(_Strict):
    site: str = "reference-plant"
    timezone: str = "America/Los_Angeles"
    devices: Devices = Devices()
    ems: Ems = Ems()
    records: Records = Records()
    reports: Reports = Reports()
    assistant: AssistantSettings = AssistantSettings()
    access: AccessPolicy = AccessPolicy()
    ui: UiSettings = UiSettings()
    remote: UplinkSettings | None = None  # forwarding to a fleet aggregator (docs/remote.md); none by default
    simulation: Simulation | None = Simulation()


def load_site_config(path: str | Path) -> SiteConfig:
    path = Path(path)
    data = read_yaml(path, "site config", SiteConfigError)
    config = validated(SiteConfig, data, f"site config {path}", SiteConfigError)
    if config.remote is not None:  # its files are named relative to the site config's folder
        base = path.resolve().parent
        if not config.remote.password_file.is_absolute():
            config.remote.password_file = base / config.remote.password_file
        if config.remote.outbox is not None and not config.remote.outbox.is_absolute():
            config.remote.outbox = base / config.remote.outbox
        if config.remote.tls is not None:
            config.remote.tls = config.remote.tls.resolved(base)
    return config


def device_node_parameters(config: SiteConfig) -> dict[str, dict]:
    """Parameters of every node the site config describes: the simulated plant (if any), the
    device nodes, the safety arbiter, the dispatcher, the historian and the alarm manager."""
    d = config.devices
    params: dict[str, dict] = {}
    if config.simulation is not None:  # first: the devices should exist before their nodes poll
        sim = config.simulation.model_dump()
        if not sim["load_profile"]:
            del sim["load_profile"]
        ports = {f"{name}_port": getattr(d, name).port for name in ("meter", "relay", "bms", "pcs")}
        params["sim_plant"] = {**sim, **ports}
    params.update({f"{name}_node": getattr(d, name).model_dump() for name in ("meter", "relay", "bms", "pcs")})
    params["safety_arbiter"] = config.ems.safety.model_dump()
    params["dispatcher"] = {**config.ems.dispatch.model_dump(), "export_limit_kw": config.ems.safety.export_limit_kw}
    params["historian"] = config.records.model_dump()
    params["alarm_manager"] = {**config.ems.alarms.model_dump(), "db_url": config.records.db_url}
    s, pl = config.ems.safety, config.ems.planning
    params["planner"] = {"tariff": pl.tariff, "approval": pl.approval, "plan_hour": pl.plan_hour,
                         "bess_kwh": pl.bess_kwh, "terminal_soc_pct": pl.terminal_soc_pct,
                         "replan_deviation_pct": pl.replan_deviation_pct,
                         "replan_soc_deviation_pct": pl.replan_soc_deviation_pct,
                         "bias_decay_intervals": pl.bias_decay_intervals,
                         "threshold_margin_pct": pl.threshold_margin_pct,
                         "on_peak_margin_pct": pl.on_peak_margin_pct,
                         "demand_floor_days": pl.demand_floor_days,
                         "demand_floor_window_days": pl.demand_floor_window_days,
                         "peak_noise_pct": pl.peak_noise_pct,
                         "week_plan_days": pl.week_plan_days,
                         "lookahead_intervals": pl.lookahead_intervals,
                         "bess_kw": s.pcs_rated_kw,
                         "soc_min_pct": s.soc_min_pct, "soc_reserve_pct": s.soc_reserve_pct,
                         "soc_max_pct": s.soc_max_pct, "export_limit_kw": s.export_limit_kw,
                         "site": config.site, "timezone": config.timezone, "db_url": config.records.db_url}
    r = config.reports
    params["reporter"] = {"site": config.site, "timezone": config.timezone, "db_url": config.records.db_url,
                          "tariff": pl.tariff, "bess_kwh": pl.bess_kwh, "pcs_kw": s.pcs_rated_kw,
                          "export_limit_kw": s.export_limit_kw, "formats": ",".join(r.formats),
                          **r.model_dump(exclude={"formats"})}
    params["assistant"] = {"db_url": config.records.db_url, "timezone": config.timezone,
                           **config.assistant.model_dump()}
    if config.remote is not None and config.remote.enabled:
        params["uplink"] = uplink_parameters(config.remote)
    return params


def uplink_parameters(remote: UplinkSettings) -> dict:
    """The uplink node's parameters (flat: node parameters are scalars)."""
    params = remote.model_dump(exclude={"enabled", "tls", "outbox", "password_file", "grants"})
    params["grants"] = [g.as_parameter() for g in remote.grants]  # a string array: parameters are flat
    params["password_file"] = str(remote.password_file)
    params["outbox"] = str(remote.outbox or "")
    tls = remote.tls
    params.update(tls_ca=str(tls.ca) if tls else "", tls_cert=str(tls.cert or "") if tls else "",
                  tls_key=str(tls.key or "") if tls else "", tls_mutual=tls.mutual if tls else True)
    return params


def report_settings(config: SiteConfig):
    """The settings a report is computed with, from the site config (the CLI and the node agree)."""
    from energizeos.reports.figures import ReportSettings

    s, r = config.ems.safety, config.reports
    return ReportSettings(site=config.site, timezone=config.timezone, tariff=config.ems.planning.tariff,
                          bess_kwh=config.ems.planning.bess_kwh, pcs_kw=s.pcs_rated_kw,
                          export_limit_kw=s.export_limit_kw, export_deadband_kw=r.export_deadband_kw,
                          max_hold_s=r.max_hold_s, adherence_tolerance_kw=r.adherence_tolerance_kw)
