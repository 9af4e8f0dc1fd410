"""Render a ``ReportDoc`` as PDF, HTML or CSV. Every format shows the same figures; this module only picks
the renderer and writes the file atomically, so a reader (a mail job, a web server) never sees half a report."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from energizeos.reports.document import ReportDoc

FORMATS = ("pdf", "html", "csv")


def _pdf(doc: ReportDoc) -> bytes:
    from energizeos.reports.render.pdf import render_pdf  # imported on use: reportlab is heavy

    return render_pdf(doc)


def _html(doc: ReportDoc) -> bytes:
    from energizeos.reports.render.html import render_html

    return render_html(doc).encode("utf-8")


def _csv(doc: ReportDoc) -> bytes:
    from energizeos.reports.render.csv import render_csv

    # The BOM makes Excel read UTF-8 ("·", accented site names) instead of the local code page.
    return render_csv(doc).encode("utf-8-sig")


_RENDERERS: dict[str, Callable[[ReportDoc], bytes]] = {"pdf": _pdf, "html": _html, "csv": _csv}


def render_bytes(doc: ReportDoc, fmt: str) -> bytes:
    """The report in ``fmt`` as the bytes of the file ``render`` would write."""
    try:
        renderer = _RENDERERS[fmt]
    except KeyError:
        raise ValueError(f"unknown report format {fmt!r}: expected one of {', '.join(FORMATS)}") from None
    return renderer(doc)


def render(doc: ReportDoc, fmt: str, path: Path) -> Path:
    """Write the report in ``fmt`` ("pdf", "html" or "csv") to ``path`` and return it. Parent directories are
    created; the file appears complete or not at all (written to a temporary file beside it, then renamed)."""
    data = render_bytes(doc, fmt)  # render first: a failure leaves nothing behind
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, data)
    return path


def write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` in one step: same-directory temp file (same filesystem, so the rename is
    atomic), fsync, then ``os.replace``. The temp file is removed if anything fails."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report is meant to be read by others
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
