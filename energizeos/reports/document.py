"""What a rendered report contains: the period, its provenance (audit head, figures digest), tables
of figures and the data of its charts. Figures are computed elsewhere (``figures.py``); the renderers
(``render/``) only lay this out as PDF, HTML or CSV, so every format shows the same numbers."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import numpy as np

Cell = str | float | int | None


@dataclass
class Table:
    """One section of figures. ``rows`` hold plain values; ``None`` renders as "n/a" (no data)."""

    title: str
    columns: list[str]
    rows: list[list[Cell]]
    note: str = ""  # one line under the table: what the figures mean, where a gap left something out


@dataclass
class DayProfile:
    """The day chart: site load, POI, BESS power and SOC with the peak-shaving threshold.
    Times are site-local, one per minute; NaN is a data gap and must be drawn as a gap."""

    times: list[datetime]
    load_kw: np.ndarray
    poi_kw: np.ndarray
    bess_kw: np.ndarray  # + discharge, - charge
    soc_pct: np.ndarray
    threshold_kw: np.ndarray  # NaN where no threshold was in force


@dataclass
class MonthlyPeaks:
    """Each day's highest 15-minute POI demand, with and without the battery (NaN: no data that day)."""

    days: list[date]
    peak_without_kw: np.ndarray
    peak_with_kw: np.ndarray


@dataclass
class Waterfall:
    """From the bill without the battery to the bill with it: the first and last steps are totals,
    the ones between are the savings by kind (negative amounts lower the bill)."""

    steps: list[tuple[str, float]]  # ($ label, amount)


@dataclass
class ReportDoc:
    kind: str  # "daily" | "monthly"
    site: str
    period_label: str  # "2025-07-15" or "2025-07"
    period_start: datetime  # aware, site-local
    period_end: datetime  # exclusive
    timezone: str
    generated_at: datetime  # aware UTC
    audit_head: str  # "seq 1234 · <sha256>": the chain head the report was computed against
    figures_sha256: str  # SHA-256 of the canonical JSON of ``figures``
    has_data: bool  # False: the period has no recorded data, and the report says so
    notes: list[str] = field(default_factory=list)  # data gaps, missing plans, fallbacks, in plain words
    tables: list[Table] = field(default_factory=list)
    figures: dict = field(default_factory=dict)  # flat name -> value (numbers, strings, None), for CSV/JSON
    profile: DayProfile | None = None
    monthly_peaks: MonthlyPeaks | None = None
    waterfall: Waterfall | None = None
    digest_label: str = "Figures SHA-256"  # what ``figures_sha256`` is a hash of (a commissioning run: the run)

    @property
    def title(self) -> str:
        return f"{self.site}: {self.kind} report {self.period_label}"
