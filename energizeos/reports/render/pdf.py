"""The PDF report, laid out with reportlab platypus: title block, notes, tables, charts, and on every page a
header (site · period) and a footer (audit head, "page X of Y").

The output depends only on the ``ReportDoc``: reportlab runs in invariant mode (fixed document id) and the
PDF's creation date is ``doc.generated_at``, so rendering the same report twice gives the same bytes.
Text is set in DejaVu Sans, taken from matplotlib's bundled fonts and embedded (subset): unlike the PDF base
fonts (Windows-1252 only) it covers e.g. Polish, Greek or Cyrillic site names, and it matches the charts."""

from __future__ import annotations

import io
from collections.abc import Callable
from datetime import UTC
from functools import lru_cache
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import matplotlib
from reportlab.lib import colors
from reportlab.lib.enums import TA_LEFT, TA_RIGHT
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.lib.utils import ImageReader
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.pdfgen.canvas import Canvas
from reportlab.platypus import (
    CondPageBreak,
    Flowable,
    Image,
    KeepTogether,
    Paragraph,
    SimpleDocTemplate,
    Spacer,
    TableStyle,
)
from reportlab.platypus import (
    Table as RLTable,
)

from energizeos.reports.document import ReportDoc, Table
from energizeos.reports.render import charts
from energizeos.reports.render._format import (
    format_cell,
    header_rows,
    kind_label,
    numeric_columns,
    padded_row,
    short_hashes,
)

MARGIN_X = 18 * mm
MARGIN_TOP = 22 * mm
MARGIN_BOTTOM = 20 * mm
FRAME_PAD = 6  # SimpleDocTemplate's frame pads its content by 6 pt on every side
KEEP_WHOLE = 0.5  # tables up to this share of a page move to the next page whole rather than split
MIN_TABLE_START = 45 * mm  # a table that will split starts only with room for its heading and a few rows

INK = colors.HexColor("#222222")
MUTED = colors.HexColor("#666666")
RULE = colors.HexColor("#c8ced6")
HEAD_BG = colors.HexColor("#2f3e4e")
ZEBRA = colors.HexColor("#f3f5f8")
ALERT = colors.HexColor("#b3261e")
ALERT_BG = colors.HexColor("#fdecea")


# --- fonts and styles ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _fonts() -> dict[str, str]:
    """Register DejaVu from matplotlib's data (always installed with it); fall back to the base-14 fonts."""
    ttf = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    files = {
        "sans": "DejaVuSans.ttf",
        "bold": "DejaVuSans-Bold.ttf",
        "italic": "DejaVuSans-Oblique.ttf",
        "mono": "DejaVuSansMono.ttf",
    }
    try:
        names = {}
        for role, file in files.items():
            name = f"EOS-{file.removesuffix('.ttf')}"
            if name not in pdfmetrics.getRegisteredFontNames():
                pdfmetrics.registerFont(TTFont(name, str(ttf / file)))
            names[role] = name
        pdfmetrics.registerFontFamily(names["sans"], normal=names["sans"], bold=names["bold"],
                                      italic=names["italic"], boldItalic=names["bold"])
        return names
    except Exception:  # fonts missing or unreadable: a report in Helvetica beats no report
        return {"sans": "Helvetica", "bold": "Helvetica-Bold", "italic": "Helvetica-Oblique", "mono": "Courier"}


def _styles() -> dict[str, ParagraphStyle]:
    f = _fonts()
    base = ParagraphStyle("base", fontName=f["sans"], fontSize=9, leading=12, textColor=INK)
    return {
        "base": base,
        "title": ParagraphStyle("title", base, fontName=f["bold"], fontSize=20, leading=24, spaceAfter=2),
        "subtitle": ParagraphStyle("subtitle", base, fontSize=12.5, leading=16, textColor=MUTED, spaceAfter=10),
        "h2": ParagraphStyle("h2", base, fontName=f["bold"], fontSize=12, leading=15, spaceBefore=12, spaceAfter=5,
                             keepWithNext=1),
        # Table headings are kept with their table explicitly (see _table_block), not by keepWithNext.
        "h2_table": ParagraphStyle("h2_table", base, fontName=f["bold"], fontSize=12, leading=15, spaceBefore=12,
                                   spaceAfter=5),
        "key": ParagraphStyle("key", base, fontName=f["bold"], fontSize=8.5, leading=11, textColor=MUTED),
        "value": ParagraphStyle("value", base, fontSize=8.5, leading=11),
        "mono": ParagraphStyle("mono", base, fontName=f["mono"], fontSize=7.5, leading=11),
        "note": ParagraphStyle("note", base, fontName=f["italic"], fontSize=8, leading=10.5, textColor=MUTED,
                               spaceBefore=3),
        "bullet": ParagraphStyle("bullet", base, leftIndent=12, bulletIndent=2, spaceAfter=2),
        "alert": ParagraphStyle("alert", base, fontName=f["bold"], fontSize=15, leading=19, textColor=ALERT),
        "alert_sub": ParagraphStyle("alert_sub", base, textColor=ALERT),
        "th": ParagraphStyle("th", base, fontName=f["bold"], fontSize=8.5, leading=10.5, textColor=colors.white),
        "th_num": ParagraphStyle("th_num", base, fontName=f["bold"], fontSize=8.5, leading=10.5,
                                 textColor=colors.white, alignment=TA_RIGHT),
        "td": ParagraphStyle("td", base, fontSize=8.5, leading=10.5, alignment=TA_LEFT),
        "td_num": ParagraphStyle("td_num", base, fontSize=8.5, leading=10.5, alignment=TA_RIGHT),
    }


def _p(text: str, style: ParagraphStyle) -> Paragraph:
    """A paragraph of plain text: reportlab parses markup, so data must be escaped."""
    return Paragraph(escape(text), style)


# --- the document -------------------------------------------------------------------------------------


def render_pdf(doc: ReportDoc, pagesize: tuple[float, float] = A4) -> bytes:
    """The report as PDF bytes (A4 by default; pass ``reportlab.lib.pagesizes.letter`` for Letter)."""
    styles = _styles()
    buf = io.BytesIO()
    template = SimpleDocTemplate(
        buf,
        pagesize=pagesize,
        leftMargin=MARGIN_X,
        rightMargin=MARGIN_X,
        topMargin=MARGIN_TOP,
        bottomMargin=MARGIN_BOTTOM,
        title=doc.title,
        author="EnergizeOS",
        creator="EnergizeOS",
        subject=f"{kind_label(doc)} {doc.period_label}",
        invariant=True,  # fixed document id: the bytes depend on the report, not on when it was rendered
    )
    story = _story(doc, styles, template.width - 2 * FRAME_PAD, template.height - 2 * FRAME_PAD)
    template.build(story, canvasmaker=_canvas_maker(doc))
    return buf.getvalue()


def _story(doc: ReportDoc, styles: dict[str, ParagraphStyle], width: float, height: float) -> list[Flowable]:
    story: list[Flowable] = _title_block(doc, styles, width)
    if not doc.has_data:
        story += _no_data_block(styles, width)
    if doc.notes:
        story.append(_p("Notes", styles["h2"]))
        story += [Paragraph(escape(note), styles["bullet"], bulletText="•") for note in doc.notes]
    for table in doc.tables:
        story += _table_block(table, styles, width, height)
    for i, chart in enumerate(charts.charts_for(doc)):
        heading = [_p("Charts", styles["h2"])] if i == 0 else []  # never left alone at the foot of a page
        story.append(KeepTogether([*heading, _chart_image(chart, width), Spacer(1, 8)]))
    return story


def _title_block(doc: ReportDoc, styles: dict[str, ParagraphStyle], width: float) -> list[Flowable]:
    rows = []
    for key, value in header_rows(doc):
        mono = key in ("Audit head", doc.digest_label)  # hashes in a fixed-width font, on one line
        rows.append([_p(key, styles["key"]), _p(value, styles["mono" if mono else "value"])])
    info = RLTable(rows, colWidths=[32 * mm, width - 32 * mm], hAlign="LEFT")
    info.setStyle(
        TableStyle([
            ("VALIGN", (0, 0), (-1, -1), "TOP"),
            ("LEFTPADDING", (0, 0), (-1, -1), 0),
            ("TOPPADDING", (0, 0), (-1, -1), 1.5),
            ("BOTTOMPADDING", (0, 0), (-1, -1), 1.5),
            ("LINEBELOW", (0, -1), (-1, -1), 0.8, RULE),
            ("BOTTOMPADDING", (0, -1), (-1, -1), 8),
        ])
    )
    return [
        _p(doc.site, styles["title"]),
        _p(f"{kind_label(doc)} · {doc.period_label}", styles["subtitle"]),
        info,
        Spacer(1, 6),
    ]


def _no_data_block(styles: dict[str, ParagraphStyle], width: float) -> list[Flowable]:
    box = RLTable(
        [[_p("No recorded data for this period", styles["alert"])],
         [_p("The records hold no measurements for this period: figures are n/a and no charts are drawn.",
             styles["alert_sub"])]],
        colWidths=[width],
    )
    box.setStyle(
        TableStyle([
            ("BOX", (0, 0), (-1, -1), 1.2, ALERT),
            ("BACKGROUND", (0, 0), (-1, -1), ALERT_BG),
            ("LEFTPADDING", (0, 0), (-1, -1), 10),
            ("TOPPADDING", (0, 0), (-1, 0), 9),
            ("BOTTOMPADDING", (0, -1), (-1, -1), 9),
        ])
    )
    return [Spacer(1, 4), box, Spacer(1, 6)]


# --- tables -------------------------------------------------------------------------------------------


def _table_block(table: Table, styles: dict[str, ParagraphStyle], width: float, height: float) -> list[Flowable]:
    """Heading, table and note. A short table moves to the next page whole; a long one starts where there is
    room for a few rows and splits, repeating its header row on each page."""
    numeric = numeric_columns(table)
    ncols = len(table.columns)
    header = [_p(c, styles["th_num" if numeric[j] else "th"]) for j, c in enumerate(table.columns)]
    body = [
        [_p(format_cell(v), styles["td_num" if numeric[j] else "td"]) for j, v in enumerate(padded_row(row, ncols))]
        for row in table.rows
    ]
    rl_table = RLTable([header, *body], colWidths=_column_widths(table, width), repeatRows=1, hAlign="LEFT")
    rl_table.setStyle(_table_style())
    flowables: list[Flowable] = [_p(table.title, styles["h2_table"]), rl_table]
    if table.note:
        flowables.append(_p(table.note, styles["note"]))
    _, table_height = rl_table.wrap(width, height)
    if table_height <= KEEP_WHOLE * height:
        return [KeepTogether(flowables)]
    return [CondPageBreak(MIN_TABLE_START), *flowables]


def _table_style() -> TableStyle:
    return TableStyle([
        ("BACKGROUND", (0, 0), (-1, 0), HEAD_BG),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 3),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 3),
        ("LEFTPADDING", (0, 0), (-1, -1), 5),
        ("RIGHTPADDING", (0, 0), (-1, -1), 5),
        ("LINEBELOW", (0, 1), (-1, -1), 0.4, RULE),
        ("ROWBACKGROUNDS", (0, 1), (-1, -1), [colors.white, ZEBRA]),  # zebra rows: easier to follow long rows
    ])


def _column_widths(table: Table, width: float) -> list[float]:
    """Widths from the content: what each column wants, scaled to the text width. A column never gets less than
    its longest word (headers wrap at spaces), so numbers are never broken."""
    font = _fonts()
    pad = 12
    wants, mins = [], []
    for j, header in enumerate(table.columns):
        cells = [format_cell(padded_row(row, len(table.columns))[j]) for row in table.rows]
        cell_w = max((pdfmetrics.stringWidth(c, font["sans"], 8.5) for c in cells), default=0)
        word_w = max((pdfmetrics.stringWidth(w, font["bold"], 8.5) for w in header.split()), default=0)
        head_w = pdfmetrics.stringWidth(header, font["bold"], 8.5)
        wants.append(max(cell_w, head_w) + pad)
        mins.append(min(max(cell_w, word_w), width / 3) + pad)  # very long text may wrap too
    return _fit(wants, mins, width)


def _fit(wants: list[float], mins: list[float], width: float) -> list[float]:
    total = sum(wants)
    if not wants:
        return []
    if total <= width:  # spread the slack so every table spans the full text width
        return [w * width / total for w in wants]
    floor = sum(mins)
    if floor >= width:  # narrow columns keep their minimum (a short header must not break); wide ones share the rest
        share = width / len(mins)
        narrow = sum(m for m in mins if m <= share)
        wide = sum(m for m in mins if m > share)
        if not wide or narrow >= width:
            return [m * width / floor for m in mins]
        return [m if m <= share else m * (width - narrow) / wide for m in mins]
    ratio = (width - floor) / (total - floor)
    return [m + (w - m) * ratio for w, m in zip(wants, mins, strict=True)]


# --- charts -------------------------------------------------------------------------------------------


def _chart_image(chart: charts.Chart, width: float) -> Image:
    png = charts.to_png(chart.figure())
    px_w, px_h = ImageReader(io.BytesIO(png)).getSize()
    return Image(io.BytesIO(png), width=width, height=width * px_h / px_w)


# --- header, footer, "page X of Y" ----------------------------------------------------------------------


def _canvas_maker(doc: ReportDoc) -> Callable[..., Canvas]:
    """A canvas that holds back its pages until the end, so each one can say how many pages there are."""
    header_left = f"{doc.site} · {doc.period_label}"
    header_right = kind_label(doc)
    footer_left = f"Audit {short_hashes(doc.audit_head)}"
    pdf_date = f"D:{doc.generated_at.astimezone(UTC):%Y%m%d%H%M%S}+00'00'"

    class _NumberedCanvas(Canvas):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._pages: list[dict] = []
            self.setDateFormatter(lambda *_ymdhms: pdf_date)  # the report's time, not the render's

        def showPage(self) -> None:
            self._pages.append(dict(self.__dict__))
            self._startPage()

        def save(self) -> None:
            for number, state in enumerate(self._pages, start=1):
                self.__dict__.update(state)
                self._decorate(number, len(self._pages))
                super().showPage()
            super().save()

        def _decorate(self, number: int, total: int) -> None:
            fonts = _fonts()
            page_w, page_h = self._pagesize
            left, right = MARGIN_X + FRAME_PAD, page_w - MARGIN_X - FRAME_PAD  # aligned with the text
            self.saveState()
            self.setStrokeColor(RULE)
            self.setLineWidth(0.6)
            top = page_h - 13 * mm
            self.setFillColor(INK)
            self.setFont(fonts["bold"], 8.5)
            self.drawString(left, top, header_left)
            self.setFillColor(MUTED)
            self.setFont(fonts["sans"], 8.5)
            self.drawRightString(right, top, header_right)
            self.line(left, top - 2.5 * mm, right, top - 2.5 * mm)
            bottom = 11 * mm
            self.line(left, bottom + 4 * mm, right, bottom + 4 * mm)
            self.setFont(fonts["sans"], 7.5)
            self.drawString(left, bottom, footer_left)
            self.drawRightString(right, bottom, f"page {number} of {total}")
            self.restoreState()

    return _NumberedCanvas
