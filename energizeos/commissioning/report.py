"""The commissioning run as a report document (the reports' PDF renderer lays it out): the run, its
witness, and one table per procedure with each step's verdict and criteria against the measured values."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from energizeos.reports.document import ReportDoc, Table


def _when(value: Any, zone: ZoneInfo) -> datetime:
    when = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return when.astimezone(zone)


def report_doc(body: dict[str, Any], audit_head: str, timezone: str, generated_at: datetime) -> ReportDoc:
    """``body``: run.json's content (``package.collect``)."""
    run, zone = body["run"], ZoneInfo(timezone)
    start = _when(run["started_at"], zone)
    end = _when(run["finished_at"], zone) if run["finished_at"] else start
    signoff = body.get("signoff")
    if signoff:
        witness = (f"Witness: {signoff['witness']} ({signoff['organisation'] or 'no organisation'}, "
                   f"{signoff['role']}), signed off at {signoff['witnessed_at']}: {signoff['statement']}")
    else:
        witness = f"Witness: {run['witness'] or 'none named'}, not signed off"
    notes = [f"Status: {run['status']}. Operator: {run['operator']}. Procedures: {', '.join(run['procedures'])}.",
             witness]
    tables: dict[str, Table] = {}
    for step in body["steps"]:
        detail = step["body"]
        procedure = detail.get("procedure", step["name"].split("/")[0])
        table = tables.setdefault(procedure, Table(procedure, ["#", "step", "verdict", "acceptance: measured"], []))
        checks = "; ".join(f"{c['measure']} = {c['value']} ({c['criterion'][len(c['measure']):].strip()}"
                           f"{'' if c['ok'] else ': NOT MET'})" for c in detail.get("acceptance", []))
        table.rows.append([step["number"], detail.get("title", step["name"]), step["verdict"],
                           checks or detail.get("reason", "")])
    figures = json.dumps(body, sort_keys=True, default=str).encode()
    return ReportDoc(kind="commissioning", site=run["site"], period_label=f"run {run['id']}", period_start=start,
                     period_end=end, timezone=timezone, generated_at=generated_at, audit_head=audit_head,
                     figures_sha256=hashlib.sha256(figures).hexdigest(), has_data=bool(body["steps"]), notes=notes,
                     tables=list(tables.values()))
