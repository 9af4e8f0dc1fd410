"""The report charts, drawn with matplotlib: the day profile, the monthly peaks and the savings waterfall.

Figures are built with ``matplotlib.figure.Figure`` on an explicit Agg canvas, never through pyplot:
pyplot keeps global state (current figure, backend selection), which is neither thread-safe nor headless-safe
in a server. No rcParams are changed either; all styling is set on the artists.
Each chart is available as PNG bytes (for the PDF) and as SVG text (inline in the HTML)."""

from __future__ import annotations

import io
import math
import re
import textwrap
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, tzinfo
from html import escape

import matplotlib.dates as mdates
import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter

from energizeos.reports.document import DayProfile, MonthlyPeaks, ReportDoc, Waterfall

# Sized for the text width of an A4 or Letter page (about 6.9 in with ~18 mm margins), drawn 1:1.
WIDTH_IN = 7.0
HEIGHT_IN = 3.5
PNG_DPI = 200

# Okabe-Ito based palette: distinguishable for colour-blind readers.
LOAD = "#3d3d3d"
POI = "#0072B2"
BESS = "#CC79A7"  # not orange: the threshold is vermillion
SOC = "#009E73"
THRESHOLD = "#D55E00"
GAP = "#9e9e9e"
WITHOUT = "#a6a6a6"
WITH = "#0072B2"
TOTAL = "#51657a"
SAVING = "#2e8b57"
COST = "#c0392b"
GRID = "#dddddd"
MUTED = "#666666"

TITLE_SIZE = 11
LABEL_SIZE = 9
TICK_SIZE = 8

_SVG_METADATA = {"Date": None, "Type": None, "Format": None, "Creator": None}  # deterministic, no URLs
_SVG_REF = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


@dataclass(frozen=True)
class Chart:
    key: str  # "profile" | "monthly_peaks" | "waterfall": stable, used to prefix SVG ids
    title: str  # a short caption, e.g. for alt text
    figure: Callable[[], Figure]


def charts_for(doc: ReportDoc) -> list[Chart]:
    """The charts a report shows, in order: only those whose data is present, and none without data."""
    if not doc.has_data:
        return []
    charts = []
    if doc.profile is not None and doc.profile.times:
        profile = doc.profile
        charts.append(Chart("profile", "Day profile", lambda: day_profile_figure(profile)))
    if doc.monthly_peaks is not None and doc.monthly_peaks.days:
        peaks = doc.monthly_peaks
        charts.append(Chart("monthly_peaks", "Daily peak demand", lambda: monthly_peaks_figure(peaks)))
    if doc.waterfall is not None and doc.waterfall.steps:
        waterfall = doc.waterfall
        charts.append(Chart("waterfall", "Savings waterfall", lambda: waterfall_figure(waterfall)))
    return charts


# --- output -------------------------------------------------------------------------------------------


def to_png(fig: Figure, dpi: int = PNG_DPI) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, facecolor="white")
    return buf.getvalue()


def to_svg(fig: Figure, id_prefix: str, label: str = "") -> str:
    """An ``<svg>`` element ready to inline in HTML: no XML prolog, no metadata, and ids renamed to
    ``<id_prefix>-<n>`` so several charts in one page do not clash (matplotlib's ids are salted at random)."""
    buf = io.StringIO()
    fig.savefig(buf, format="svg", metadata=_SVG_METADATA, facecolor="white")
    svg = buf.getvalue()
    svg = svg[svg.index("<svg") :]
    svg = _renumber_ids(svg, id_prefix)
    if label:
        svg = svg.replace("<svg ", f'<svg role="img" aria-label="{escape(label)}" ', 1)
    return svg.strip()


def _renumber_ids(svg: str, prefix: str) -> str:
    new_ids: dict[str, str] = {}
    for old in re.findall(r'\bid="([^"]+)"', svg):
        new_ids.setdefault(old, f"{prefix}-{len(new_ids) + 1}")
    return _SVG_REF.sub(lambda m: m.group(1) + new_ids.get(m.group(2), m.group(2)), svg)


def day_profile_png(profile: DayProfile) -> bytes:
    return to_png(day_profile_figure(profile))


def day_profile_svg(profile: DayProfile) -> str:
    return to_svg(day_profile_figure(profile), "profile", "Day profile")


def monthly_peaks_png(peaks: MonthlyPeaks) -> bytes:
    return to_png(monthly_peaks_figure(peaks))


def monthly_peaks_svg(peaks: MonthlyPeaks) -> str:
    return to_svg(monthly_peaks_figure(peaks), "monthly_peaks", "Daily peak demand")


def waterfall_png(waterfall: Waterfall) -> bytes:
    return to_png(waterfall_figure(waterfall))


def waterfall_svg(waterfall: Waterfall) -> str:
    return to_svg(waterfall_figure(waterfall), "waterfall", "Savings waterfall")


# --- common styling -----------------------------------------------------------------------------------


def _new_figure(height_in: float = HEIGHT_IN) -> Figure:
    fig = Figure(figsize=(WIDTH_IN, height_in), layout="constrained", facecolor="white")
    FigureCanvasAgg(fig)  # explicit Agg canvas: no backend selection, no display needed
    return fig


def _style(ax: Axes, title: str, ylabel: str, xlabel: str = "") -> None:
    ax.set_title(title, loc="left", fontsize=TITLE_SIZE, fontweight="bold", color="#222222", pad=8)
    ax.set_ylabel(ylabel, fontsize=LABEL_SIZE)
    if xlabel:
        ax.set_xlabel(xlabel, fontsize=LABEL_SIZE)
    ax.tick_params(labelsize=TICK_SIZE, color=MUTED, labelcolor="#333333")
    ax.grid(True, axis="y", color=GRID, linewidth=0.6)
    ax.set_axisbelow(True)
    ax.yaxis.set_major_formatter(FuncFormatter(_thousands))
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color(MUTED)


def _thousands(value: float, _pos: object = None) -> str:
    """Tick labels like the tables: 1,500 (not 1500), 0.25 where the scale is small, never "-0"."""
    return f"{value + 0.0:,.6g}" if abs(value) < 1e6 else f"{value:,.0f}"


def _no_data(ax: Axes, keep_x: bool = False) -> None:
    ax.text(0.5, 0.5, "No data", transform=ax.transAxes, ha="center", va="center", fontsize=LABEL_SIZE, color=MUTED,
            bbox={"facecolor": "white", "edgecolor": "none", "pad": 4}, zorder=5)
    ax.set_yticks([])
    if not keep_x:
        ax.set_xticks([])


def _plain(text: str) -> str:
    """Report text shown literally: matplotlib would read a pair of "$" as mathematics (and may fail on it)."""
    return text.replace("$", r"\$")


def _finite(values: np.ndarray) -> np.ndarray:
    return np.isfinite(np.asarray(values, dtype=float))


def _money(amount: float, signed: bool = False, digits: int | None = None) -> str:
    if not math.isfinite(amount):
        return "n/a"
    if digits is None:
        digits = 0 if abs(amount) >= 100 else 2  # cents only matter on small amounts
    text = f"${abs(amount):,.{digits}f}"
    if amount < 0:
        return "\u2212" + text  # a true minus sign, as wide as the plus
    return "+" + text if signed and amount > 0 else text


# --- 1. day profile -----------------------------------------------------------------------------------


def day_profile_figure(profile: DayProfile) -> Figure:
    """Load, POI and BESS power (left, kW) and SOC (right, %) over the day, with the peak-shaving threshold.
    NaN samples break the lines; spans where any measured series is missing are shaded as "data gap"."""
    fig = _new_figure()
    ax = fig.add_subplot()
    _style(ax, "Day profile: power and state of charge", "Power (kW)", "Local time")
    if not profile.times:
        _no_data(ax)
        return fig
    x = np.asarray(mdates.date2num(profile.times), dtype=float)
    step = float(np.median(np.diff(x))) if len(x) > 1 else 1 / 1440
    soc_ax = ax.twinx()
    handles = _plot_power(ax, x, profile) + _plot_soc(soc_ax, x, profile)
    gap = _shade_gaps(ax, x, step, profile)
    if gap is not None:
        handles.append(gap)
    ax.axhline(0, color=MUTED, linewidth=0.6, zorder=1)
    if not any(_finite(s).any() for s in (profile.load_kw, profile.poi_kw, profile.bess_kw)):
        _no_data(ax, keep_x=True)  # the day is still drawn: all of it a gap
    ax.set_xlim(x[0], x[-1] + step)
    _time_axis(ax, profile.times[0].tzinfo, x[-1] + step - x[0])
    fig.legend(handles=handles, loc="outside lower center", ncol=len(handles), frameon=False, fontsize=TICK_SIZE)
    return fig


def _plot_power(ax: Axes, x: np.ndarray, profile: DayProfile) -> list:
    handles = [
        ax.plot(x, profile.load_kw, color=LOAD, linewidth=1.1, label="Site load")[0],
        ax.plot(x, profile.poi_kw, color=POI, linewidth=1.1, label="POI")[0],
        ax.plot(x, profile.bess_kw, color=BESS, linewidth=1.0, label="BESS (+ discharge)")[0],
    ]
    if _finite(profile.threshold_kw).any():  # no line (and no legend entry) if no threshold was in force
        handles.append(
            ax.step(x, profile.threshold_kw, where="post", color=THRESHOLD, linestyle="--", linewidth=1.1,
                    label="Peak threshold")[0]
        )
    return handles


def _plot_soc(ax: Axes, x: np.ndarray, profile: DayProfile) -> list:
    (line,) = ax.plot(x, profile.soc_pct, color=SOC, linewidth=1.0, linestyle=":", label="SOC (right)")
    ax.set_ylim(0, 100)
    ax.set_ylabel("SOC (%)", fontsize=LABEL_SIZE, color=SOC)
    ax.tick_params(labelsize=TICK_SIZE, colors=SOC)
    for side in ("top", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.spines["right"].set_color(SOC)
    return [line]


def gap_spans(mask: np.ndarray) -> list[tuple[int, int]]:
    """Runs of True in ``mask`` as half-open index ranges [start, end)."""
    edges = np.diff(np.concatenate(([0], mask.astype(np.int8), [0])))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist(), strict=True))


def _shade_gaps(ax: Axes, x: np.ndarray, step: float, profile: DayProfile) -> Patch | None:
    measured = (profile.load_kw, profile.poi_kw, profile.bess_kw, profile.soc_pct)
    missing = np.logical_or.reduce([~_finite(series) for series in measured])
    spans = gap_spans(missing)
    for start, end in spans:
        ax.axvspan(x[start], x[end - 1] + step, color=GAP, alpha=0.25, linewidth=0, zorder=0)
    return Patch(color=GAP, alpha=0.4, linewidth=0, label="data gap") if spans else None


def _time_axis(ax: Axes, tz: tzinfo | None, span_days: float) -> None:
    # Times are site-local: tick and label in the site's zone, not in matplotlib's default UTC.
    if span_days <= 1.5:
        ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3), tz=tz))
        ax.xaxis.set_minor_locator(mdates.HourLocator(tz=tz))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=tz))
    else:
        ax.xaxis.set_major_locator(mdates.AutoDateLocator(tz=tz))
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=tz))
    ax.grid(True, axis="x", which="major", color=GRID, linewidth=0.6)


# --- 2. monthly peaks ---------------------------------------------------------------------------------


def monthly_peaks_figure(peaks: MonthlyPeaks) -> Figure:
    """Each day's peak 15-minute POI demand without and with the battery, as grouped bars."""
    fig = _new_figure()
    ax = fig.add_subplot()
    _style(ax, "Daily peak demand (15-minute POI)", "Peak demand (kW)", _month_label(peaks.days))
    if not peaks.days:
        _no_data(ax)
        return fig
    x = np.arange(len(peaks.days))
    width = 0.4
    ax.bar(x - width / 2, peaks.peak_without_kw, width, color=WITHOUT, label="Without battery")
    ax.bar(x + width / 2, peaks.peak_with_kw, width, color=WITH, label="With battery")
    _mark_missing_days(ax, x, peaks)
    ax.set_xticks(x, [str(d.day) for d in peaks.days], fontsize=TICK_SIZE if len(x) <= 16 else 7)
    ax.tick_params(axis="x", length=0)
    ax.set_xlim(-0.6, len(x) - 0.4)
    fig.legend(loc="outside lower center", ncol=2, frameon=False, fontsize=TICK_SIZE)
    return fig


def _month_label(days: Sequence[date]) -> str:
    if not days:
        return "Day of month"
    months = sorted({(d.year, d.month) for d in days})
    first = date(*months[0], 1)
    return f"Day of {first:%B %Y}" if len(months) == 1 else "Day of month"


def _mark_missing_days(ax: Axes, x: np.ndarray, peaks: MonthlyPeaks) -> None:
    missing = ~_finite(peaks.peak_without_kw) & ~_finite(peaks.peak_with_kw)
    for i in np.flatnonzero(missing):
        ax.annotate("n/a", (x[i], 0), xycoords=ax.get_xaxis_transform(), xytext=(0, 3), textcoords="offset points",
                    ha="center", va="bottom", rotation=90, fontsize=6.5, color=MUTED)


# --- 3. savings waterfall -----------------------------------------------------------------------------


def waterfall_figure(waterfall: Waterfall) -> Figure:
    """From the bill without the battery (a total) through each saving or cost (floating) to the bill with it
    (a total). Savings are green and lower the running amount, costs red."""
    fig = _new_figure()
    ax = fig.add_subplot()
    _style(ax, "Bill without battery to bill with battery", "Amount ($)")
    steps = [(label, math.nan if amount is None else float(amount)) for label, amount in waterfall.steps]
    if not steps:
        _no_data(ax)
        return fig
    bottoms, heights, colors = _waterfall_bars(steps)
    x = np.arange(len(steps))
    # Edge in the bar's own colour: a step too small for the scale still shows as a thin line.
    ax.bar(x, heights, 0.6, bottom=bottoms, color=colors, edgecolor=colors, linewidth=0.8)
    _connectors(ax, x, bottoms, heights)
    _waterfall_labels(ax, x, steps, bottoms, heights)
    ax.axhline(0, color=MUTED, linewidth=0.6)
    ax.set_xticks(x, [_plain(textwrap.fill(label, 16)) for label, _ in steps], fontsize=TICK_SIZE)
    ax.tick_params(axis="x", length=0)
    low, high = _waterfall_range(bottoms, heights)
    ax.set_ylim(low, high)  # explicit: bars floating at the top are sticky edges that defeat margins
    digits = 2 if high - low < 20 else 0  # one format for all ticks: no "$0.00" under "$500"
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: _money(v, digits=digits)))
    fig.legend(handles=_waterfall_legend(colors), loc="outside lower center", ncol=3, frameon=False,
               fontsize=TICK_SIZE)
    return fig


def _waterfall_range(bottoms: list[float], heights: list[float]) -> tuple[float, float]:
    """The y range: zero (totals stand on it), every bar end, and room above (and below) for the labels."""
    ends = [0.0, *bottoms, *(b + h for b, h in zip(bottoms, heights, strict=True))]
    low, high = min(ends), max(ends)
    pad = 0.12 * (high - low) or 1.0
    return (low - pad if low < 0 else 0.0), high + pad


def _waterfall_bars(steps: list[tuple[str, float]]) -> tuple[list[float], list[float], list[str]]:
    """Bar bottoms, heights and colours: totals stand on zero, the steps between float on the running sum."""
    bottoms, heights, colors = [], [], []
    running = 0.0
    last = len(steps) - 1
    for i, (_label, amount) in enumerate(steps):
        value = amount if math.isfinite(amount) else 0.0  # a missing amount draws as nothing, labelled n/a
        if i in (0, last):
            bottoms.append(0.0)
            heights.append(value)
            colors.append(TOTAL)
            running = value
        else:
            bottoms.append(running)
            heights.append(value)
            colors.append(GAP if not math.isfinite(amount) else SAVING if value < 0 else COST)
            running += value
    return bottoms, heights, colors


def _connectors(ax: Axes, x: np.ndarray, bottoms: list[float], heights: list[float]) -> None:
    for i in range(len(x) - 1):
        level = bottoms[i] + heights[i]
        ax.plot([x[i] + 0.3, x[i + 1] - 0.3], [level, level], color=MUTED, linewidth=0.6, linestyle=(0, (2, 2)))


def _waterfall_labels(ax: Axes, x: np.ndarray, steps: list[tuple[str, float]], bottoms: list[float],
                      heights: list[float]) -> None:
    last = len(steps) - 1
    for i, (_label, amount) in enumerate(steps):
        top = max(bottoms[i], bottoms[i] + heights[i])
        text = _money(amount, signed=i not in (0, last))
        ax.annotate(text, (x[i], top), xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                    fontsize=TICK_SIZE, color="#222222")


def _waterfall_legend(colors: list[str]) -> list:
    names = {TOTAL: "Total", SAVING: "Saving", COST: "Cost"}
    return [Patch(color=c, label=names[c]) for c in names if c in colors]
