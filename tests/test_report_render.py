"""The report renderers on synthetic reports: the PDF reads back (text, page numbers, every page drawn), the HTML
is self-contained and escaped, the CSV round-trips its numbers, and files are written atomically."""

from __future__ import annotations

import csv
import hashlib
import io
import math
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pypdfium2 as pdfium
import pytest
from pypdf import PdfReader

from energizeos.reports.document import DayProfile, MonthlyPeaks, ReportDoc, Table, Waterfall
from energizeos.reports.render import FORMATS, charts, render, render_bytes
from energizeos.reports.render.csv import PROFILE_HEADER

TZ = ZoneInfo("America/Los_Angeles")
AUDIT_HASH = hashlib.sha256(b"audit chain head").hexdigest()
FIGURES_HASH = hashlib.sha256(b"figures").hexdigest()
SCRIPT_NOTE = "Operator remark: <script>alert('x')</script> & more"
GAP = slice(600, 645)  # 10:00-10:45 local: no data


def _profile(day: date) -> DayProfile:
    start = datetime(day.year, day.month, day.day, tzinfo=TZ)
    times = [start + timedelta(minutes=i) for i in range(1440)]
    hours = np.arange(1440) / 60
    load = 900 + 600 * np.exp(-(((hours - 15) / 3.5) ** 2)) + 40 * np.sin(hours * 3)
    threshold = np.where(hours >= 6, 1250.0, np.nan)
    threshold[hours >= 20] = 1400.0
    bess = np.clip(load - threshold, 0, None)
    bess = np.where(np.isnan(threshold), -150.0 * ((hours > 1) & (hours < 5)), bess)
    soc = np.clip(40 + np.cumsum(-bess) / 60 / 20, 5, 95)
    series = [load, load - bess, bess, soc]
    for s in series:
        s[GAP] = np.nan
    return DayProfile(times, series[0], series[1], series[2], series[3], threshold)


def daily_doc() -> ReportDoc:
    day = date(2025, 7, 15)
    start = datetime(2025, 7, 15, tzinfo=TZ)
    return ReportDoc(
        kind="daily",
        site="Riverside Plant",
        period_label="2025-07-15",
        period_start=start,
        period_end=start + timedelta(days=1),
        timezone="America/Los_Angeles",
        generated_at=datetime(2025, 7, 16, 2, 5, 9, tzinfo=UTC),
        audit_head=f"seq 1234 · {AUDIT_HASH}",
        figures_sha256=FIGURES_HASH,
        has_data=True,
        notes=["Data gap 10:00-10:45: no POI or BESS measurements; energy figures exclude it.", SCRIPT_NOTE],
        tables=[
            Table(
                "Peak demand and energy",
                ["Figure", "Without battery", "With battery", "Change"],
                [
                    ["Peak demand (kW)", 1523.4, 1250.25, -273.15],
                    ["Energy (kWh)", 24567.891, 24612.5, 44.609],
                    ["Bill ($)", 4321.5, None, None],
                    ["Intervals", 96, 96, 0],
                ],
                note="Peak: highest 15-minute average at the POI. The bill with battery is n/a: no tariff plan.",
            ),
            Table("Availability", ["Device", "Available (%)"], [["BESS", 99.31], ["PV inverter", 0.0012]]),
        ],
        figures={"peak_without_kw": 1523.4, "peak_with_kw": 1250.25, "bill_with": None, "intervals": 96},
        profile=_profile(day),
        waterfall=Waterfall(
            [
                ("Bill without battery", 4321.5),
                ("Demand charge savings", -812.4),
                ("Energy arbitrage", -95.25),
                ("Battery losses", 12.3),
                ("Bill with battery", 3426.15),
            ]
        ),
    )


def monthly_doc() -> ReportDoc:
    days = [date(2025, 7, d) for d in range(1, 32)]
    rng = np.random.default_rng(7)
    without = 1400 + 250 * rng.random(31)
    with_ = without - 150 - 100 * rng.random(31)
    without[[5, 19]] = np.nan
    with_[[5, 19]] = np.nan
    start = datetime(2025, 7, 1, tzinfo=TZ)
    daily_rows = [
        [d.isoformat(), None if math.isnan(w) else round(float(w), 3), None if math.isnan(b) else round(float(b), 3)]
        for d, w, b in zip(days, without, with_, strict=True)
    ]
    intervals = [[f"2025-07-{1 + i // 4:02d} interval {i % 4 + 1}", float(i) * 10.5, i] for i in range(120)]
    return ReportDoc(
        kind="monthly",
        site="Riverside Plant",
        period_label="2025-07",
        period_start=start,
        period_end=datetime(2025, 8, 1, tzinfo=TZ),
        timezone="America/Los_Angeles",
        generated_at=datetime(2025, 8, 1, 9, 0, tzinfo=UTC),
        audit_head=f"seq 98765 · {AUDIT_HASH}",
        figures_sha256=FIGURES_HASH,
        has_data=True,
        notes=["No data on 2025-07-06 and 2025-07-20 (historian outage)."],
        tables=[
            Table("Daily peaks", ["Day", "Peak without battery (kW)", "Peak with battery (kW)"], daily_rows),
            Table("Intervals", ["Interval", "Energy (kWh)", "Count"], intervals, note="A long table: it must split."),
        ],
        monthly_peaks=MonthlyPeaks(days, without, with_),
        waterfall=Waterfall([("Bill without battery", 98765.4), ("Demand", -10234.5), ("Bill with battery", 88530.9)]),
    )


def empty_doc() -> ReportDoc:
    doc = daily_doc()
    doc.has_data = False
    doc.notes = ["The historian holds no records for 2025-07-15."]
    doc.tables = [Table("Peak demand and energy", ["Figure", "Value"], [["Peak demand (kW)", None]])]
    return doc


def _pdf_text(data: bytes) -> tuple[str, int]:
    reader = PdfReader(io.BytesIO(data))
    return "\n".join(page.extract_text() for page in reader.pages), len(reader.pages)


# --- PDF ----------------------------------------------------------------------------------------------


def test_the_pdf_reads_back_with_title_block_figures_and_page_numbers():
    text, pages = _pdf_text(render_bytes(daily_doc(), "pdf"))
    assert "Riverside Plant" in text and "2025-07-15" in text
    assert AUDIT_HASH in text and FIGURES_HASH in text  # the full hashes, once, in the title block
    for figure in ("1,523.40", "1,250.25", "-273.15", "24,567.89", "4,321.50", "n/a", "99.31", "0.0012"):
        assert figure in text, figure
    assert f"page 1 of {pages}" in text and f"page {pages} of {pages}" in text
    assert "America/Los_Angeles" in text and "2025-07-16 02:05:09 UTC" in text
    assert "<script>alert('x')</script>" in text  # markup in a note is text, not reportlab markup


def test_every_pdf_page_is_drawn_and_a_long_table_runs_over_pages():
    data = render_bytes(monthly_doc(), "pdf")
    pdf = pdfium.PdfDocument(data)
    assert len(pdf) > 1
    for i in range(len(pdf)):
        pixels = pdf[i].render(scale=0.5).to_numpy()
        assert (pixels < 200).any(), f"page {i + 1} is blank"
    text, pages = _pdf_text(data)
    assert text.count("Interval") >= 3  # header row repeated on the following pages
    assert "interval 4" in text and f"page {pages} of {pages}" in text


def test_charts_are_in_the_pdf_only_when_there_is_data():
    with_data = PdfReader(io.BytesIO(render_bytes(daily_doc(), "pdf")))
    assert sum(len(page.images) for page in with_data.pages) == 2  # day profile and waterfall
    empty = render_bytes(empty_doc(), "pdf")
    text, _ = _pdf_text(empty)
    assert "No recorded data for this period" in text
    assert sum(len(page.images) for page in PdfReader(io.BytesIO(empty)).pages) == 0


def test_the_pdf_depends_on_the_report_not_on_the_clock():
    assert render_bytes(daily_doc(), "pdf") == render_bytes(daily_doc(), "pdf")
    assert PdfReader(io.BytesIO(render_bytes(daily_doc(), "pdf"))).metadata["/CreationDate"].startswith(
        "D:20250716020509"
    )


# --- HTML ---------------------------------------------------------------------------------------------


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [v or "" for k, v in attrs if k in ("src", "href", "xlink:href", "action")]


def test_the_html_is_self_contained_and_escaped():
    page = render_bytes(daily_doc(), "html").decode("utf-8")
    parser = _Collector()
    parser.feed(page)
    parser.close()
    assert page.count("<svg") == 2 and "table" in parser.tags and "script" not in parser.tags
    assert all(url.startswith("#") for url in parser.urls)  # only in-page references (SVG <use>)
    assert 'src="http' not in page and 'href="http' not in page and "url(http" not in page and "@import" not in page
    for text in ("Riverside Plant", "2025-07-15", AUDIT_HASH, "1,523.40", "24,567.89", "n/a"):
        assert text in page
    assert "<script>" not in page and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; more" in page


def test_the_html_says_so_when_there_is_no_data_and_draws_no_chart():
    page = render_bytes(empty_doc(), "html").decode("utf-8")
    assert "No recorded data for this period" in page and "<svg" not in page


def test_svg_ids_are_unique_per_chart_and_stable():
    doc = daily_doc()
    svgs = [charts.to_svg(chart.figure(), chart.key) for chart in charts.charts_for(doc)]
    assert svgs[0].startswith("<svg") and 'id="profile-1"' in svgs[0] and 'id="waterfall-1"' in svgs[1]
    assert charts.day_profile_svg(doc.profile) == charts.day_profile_svg(doc.profile)
    assert charts.day_profile_png(doc.profile).startswith(b"\x89PNG")


def test_charts_render_the_same_from_several_threads():
    doc = daily_doc()
    with ThreadPoolExecutor(max_workers=4) as pool:
        pngs = list(pool.map(lambda _: charts.day_profile_png(doc.profile), range(4)))
        svgs = list(pool.map(lambda _: charts.waterfall_svg(doc.waterfall), range(4)))
    assert len(set(pngs)) == 1 and len(set(svgs)) == 1


def test_only_charts_with_data_are_drawn():
    doc = monthly_doc()
    assert [c.key for c in charts.charts_for(doc)] == ["monthly_peaks", "waterfall"]
    doc.waterfall = Waterfall([])
    doc.monthly_peaks = MonthlyPeaks([], np.array([]), np.array([]))
    assert charts.charts_for(doc) == []
    doc = daily_doc()
    doc.profile.load_kw[:] = doc.profile.poi_kw[:] = doc.profile.bess_kw[:] = np.nan
    assert charts.day_profile_png(doc.profile).startswith(b"\x89PNG")  # all gap: still a chart of the day


# --- CSV ----------------------------------------------------------------------------------------------


def _csv_blocks(data: bytes) -> tuple[list[list[str]], list[list[str]]]:
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    blank = rows.index([]) if [] in rows else len(rows)
    return rows[:blank], rows[blank + 1 :]


def test_the_csv_is_long_form_and_numbers_round_trip():
    doc = daily_doc()
    facts, profile = _csv_blocks(render_bytes(doc, "csv"))
    assert facts[0] == ["section", "name", "value", "unit"] and all(len(r) == 4 for r in facts)
    report = {name: value for section, name, value, _ in facts if section == "report"}
    assert report["site"] == "Riverside Plant" and report["period"] == "2025-07-15"
    assert report["audit_head"] == doc.audit_head and report["figures_sha256"] == FIGURES_HASH
    assert report["has_data"] == "true" and report["timezone"] == "America/Los_Angeles"
    assert datetime.fromisoformat(report["period_start"]) == doc.period_start
    cells = {(s, n): (v, u) for s, n, v, u in facts[1:]}
    assert cells["Peak demand and energy", "Peak demand (kW) / Without battery"] == ("1523.4", "kW")
    assert float(cells["Peak demand and energy", "Energy (kWh) / Change"][0]) == 44.609
    assert float(cells["Peak demand and energy", "Peak demand (kW) / With battery"][0]) == 1250.25
    assert cells["Peak demand and energy", "Bill ($) / With battery"] == ("", "$")
    assert cells["Peak demand and energy", "Intervals / Without battery"][0] == "96"
    assert cells["Availability", "PV inverter / Available (%)"] == ("0.0012", "%")
    assert cells["figures", "peak_with_kw"][0] == "1250.25" and cells["figures", "bill_with"][0] == ""
    assert [v for s, _, v, _ in facts if s == "notes"] == doc.notes
    assert profile[0] == list(PROFILE_HEADER) and len(profile) == 1 + 1440
    assert profile[1][0] == "2025-07-15T00:00:00-07:00"
    gap_row = profile[1 + GAP.start]
    assert gap_row[1:5] == ["", "", "", ""] and float(gap_row[5]) == 1250.0
    assert float(profile[1 + 30][1]) == pytest.approx(doc.profile.load_kw[30], abs=0)


def test_csv_text_cannot_turn_into_a_spreadsheet_formula():
    doc = daily_doc()
    doc.notes = ["=HYPERLINK(\"x\")", "-12.5"]
    facts, _ = _csv_blocks(render_bytes(doc, "csv"))
    assert [v for s, _, v, _ in facts if s == "notes"] == ["'=HYPERLINK(\"x\")", "-12.5"]


# --- dispatch and files -------------------------------------------------------------------------------


def test_an_unknown_format_is_refused_by_name(tmp_path: Path):
    with pytest.raises(ValueError, match=r"'docx'.*pdf, html, csv"):
        render(daily_doc(), "docx", tmp_path / "report.docx")
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("fmt", FORMATS)
def test_render_writes_the_file_atomically(tmp_path: Path, fmt: str):
    target = tmp_path / "reports" / "2025" / f"daily.{fmt}"  # parents do not exist yet
    assert render(daily_doc(), fmt, target) == target
    assert target.read_bytes() == render_bytes(daily_doc(), fmt)
    assert [p.name for p in target.parent.iterdir()] == [target.name]  # no temp file left behind


def test_a_failed_write_leaves_the_old_report_and_no_temp_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "daily.csv"
    target.write_text("old report")

    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr("energizeos.reports.render.os.replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        render(daily_doc(), "csv", target)
    assert target.read_text() == "old report" and [p.name for p in tmp_path.iterdir()] == ["daily.csv"]
