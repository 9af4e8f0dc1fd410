"""The site settings a procedure's acceptance limits may name (``min: es_delay_s``), taken from the
site configuration, so a criterion states the standard's number and the site's setting alike."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from energizeos.site_config import SiteConfig


@dataclass(frozen=True)
class SiteSettings:
    es_delay_s: float = 300.0
    es_ramp_s: float = 300.0
    pcs_rated_kw: float = 500.0
    export_limit_kw: float = 0.0
    soc_min_pct: float = 10.0
    soc_reserve_pct: float = 5.0
    soc_max_pct: float = 95.0
    meter_watchdog_s: float = 1.0
    meter_failsafe_s: float = 5.0
    min_site_load_kw: float = 100.0
    nameplate_ctr: float = 400.0
    nameplate_ptr: float = 4.0
    nominal_ln_v: float = 277.0
    pcs_reversion_s: float = 5.0  # what the safety arbiter gives the PCS with every command (its default)

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


SETTING_NAMES = frozenset(SiteSettings.__dataclass_fields__)


def from_site_config(config: SiteConfig) -> SiteSettings:
    s, m = config.ems.safety, config.devices.meter
    return SiteSettings(es_delay_s=s.es_delay_s, es_ramp_s=s.es_ramp_s, pcs_rated_kw=s.pcs_rated_kw,
                        export_limit_kw=s.export_limit_kw, soc_min_pct=s.soc_min_pct,
                        soc_reserve_pct=s.soc_reserve_pct, soc_max_pct=s.soc_max_pct,
                        meter_watchdog_s=s.meter_watchdog_s, meter_failsafe_s=s.meter_failsafe_s,
                        min_site_load_kw=s.min_site_load_kw, nameplate_ctr=m.nameplate_ctr,
                        nameplate_ptr=m.nameplate_ptr, nominal_ln_v=m.nominal_ln_v)
