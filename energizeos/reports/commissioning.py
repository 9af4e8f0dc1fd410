"""The PDF report of a commissioning run inside its evidence package, laid out by the same renderer as the
daily and monthly reports (title block, tables, audit head in every footer).

It is drawn from the package's own ``run.json`` and ``audit.json``, so the report shows exactly what the
package holds. Times are UTC, as in ``run.json``: the package is read far from the site.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from energizeos.reports.document import ReportDoc, Table

SHORT = 16  # hex digits of a hash shown in a table; the full ones are in the package's JSON files


def _time(text: str | None) -> str:
    if not text:
        return "not recorded"
    return datetime.fromisoformat(text).astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _short(digest: str) -> str:
    return digest[:SHORT] + "…" if len(digest) > SHORT else digest


MEASURED_CHARS = 700  # a table row cannot span pages: the PDF shows this much, run.json holds everything
VALUE_CHARS = 160


def measured_text(measured: Any, measured_json: str) -> str:
    """The measured values for a table cell, shortened when long (every value is in run.json)."""
    if not isinstance(measured, dict):
        text = measured_json if measured is None else json.dumps(measured)
        return text if len(text) <= MEASURED_CHARS else text[:MEASURED_CHARS] + " ... (in full in run.json)"
    parts: list[str] = []
    used = 0
    for shown, (name, value) in enumerate(measured.items()):
        value_text = str(value)
        if len(value_text) > VALUE_CHARS:
            value_text = value_text[:VALUE_CHARS] + " ..."
        part = f"{name} = {value_text}"
        if parts and used + len(part) > MEASURED_CHARS:
            return "; ".join(parts) + f"; ... {len(measured) - shown} more value(s) in run.json"
        parts.append(part)
        used += len(part) + 2
    return "; ".join(parts) or "(none)"


def _run_table(run: dict[str, Any], signoff_seq: int, signoff_hash: str) -> Table:
    witness = run.get("witness") or "not witnessed"
    rows: list[list[Any]] = [
        ["Run", str(run["id"])], ["Procedure", run["procedure"]], ["Site", run["site"]],
        ["Status", run["status"]], ["Operator", run.get("operator") or "not recorded"],
        ["Started", _time(run["started_at"])], ["Finished", _time(run["finished_at"])],
        ["Witness", witness], ["Witness organisation", run.get("witness_organisation") or "not recorded"],
        ["Witnessed", _time(run.get("witnessed_at"))],
        ["Sign-off audit entry", f"{signoff_seq} (hash {_short(signoff_hash)}, in full below)"],
    ]
    return Table("Run", ["Field", "Value"], rows)


def _steps_table(steps: list[dict[str, Any]]) -> Table:
    rows = [[s["number"], s["name"], s["verdict"] or "not finished", measured_text(s.get("measured"),
             s["measured_json"]), s["acceptance"], _time(s["finished_at"])] for s in steps]
    verdicts = [s["verdict"] for s in steps]
    note = (f"{len(steps)} step(s): {verdicts.count('pass')} pass, {verdicts.count('fail')} fail, "
            f"{len(steps) - verdicts.count('pass') - verdicts.count('fail')} skipped or not finished.")
    return Table("Steps", ["#", "Step", "Verdict", "Measured", "Acceptance", "Finished"], rows, note)


def _evidence_table(items: list[dict[str, Any]]) -> Table:
    rows = [[e["filename"], e["kind"], _short(e["sha256"]), e["added_by"], _time(e["recorded_at"])] for e in items]
    return Table("Settings and evidence files", ["File", "Kind", "SHA-256", "Added by", "Recorded"], rows,
                 "Each file is in the package under evidence/; its full SHA-256 is in manifest.json and run.json.")


def _audit_table(audit_doc: dict[str, Any]) -> Table:
    full = [e for e in audit_doc["chain"] if "payload_json" in e]
    rows = [[e["seq"], e["kind"], e["actor"], e["subject"], _short(e["entry_hash"])] for e in full]
    between = len(audit_doc["chain"]) - len(full)
    return Table("Audit entries about this run", ["Seq", "Kind", "Actor", "Subject", "Entry hash"], rows,
                 f"In audit.json in full, with the hash links of the {between} entries between them.")


def report_doc(run_doc: dict[str, Any], audit_doc: dict[str, Any], signoff_seq: int, signoff_hash: str,
               generated_at: datetime) -> ReportDoc:
    run = run_doc["run"]
    start = datetime.fromisoformat(run["started_at"])
    end = datetime.fromisoformat(run["finished_at"]) if run["finished_at"] else start
    head = audit_doc.get("head") or {"seq": 0, "entry_hash": "(empty chain)"}
    notes = [f"Witness sign-off: audit entry {signoff_seq}, entry hash {signoff_hash}."]
    if run_doc["run_sha256"] != run_doc["signed_run_sha256"]:
        notes.append(f"The run as recorded when packaged (SHA-256 {run_doc['run_sha256']}) is NOT what the witness "
                     "signed: the run or a step changed after the sign-off.")
    notes.append("This report is part of an evidence package: 'energizeos evidence verify' checks every file "
                 "against manifest.json, run.json against the witness's sign-off, and the audit entries' hashes.")
    tables = [_run_table(run, signoff_seq, signoff_hash), _steps_table(run_doc["steps"])]
    if run_doc["evidence"]:
        tables.append(_evidence_table(run_doc["evidence"]))
    tables.append(_audit_table(audit_doc))
    return ReportDoc(kind="commissioning", site=run["site"], period_label=f"run {run['id']} · {run['procedure']}",
                     period_start=start.astimezone(UTC), period_end=end.astimezone(UTC), timezone="UTC",
                     generated_at=generated_at.astimezone(UTC),
                     audit_head=f"seq {head['seq']} · {head['entry_hash']}",
                     figures_sha256=run_doc["signed_run_sha256"], digest_label="Run SHA-256 (signed)",
                     has_data=True, notes=notes, tables=tables)


def render_report(run_doc: dict[str, Any], audit_doc: dict[str, Any], signoff_seq: int, signoff_hash: str,
                  generated_at: datetime) -> bytes:
    from energizeos.reports.render.pdf import render_pdf  # reportlab is heavy: imported when a report is made

    return render_pdf(report_doc(run_doc, audit_doc, signoff_seq, signoff_hash, generated_at))
