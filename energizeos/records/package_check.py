"""Check an evidence package (``package.py``) on any machine, without the database.

Every problem found is named, not just the first: a file missing, changed or added after packaging,
run.json no longer what the witness signed, an audit entry edited or out of its chain, an evidence
file that differs from its recorded SHA-256. The package holds its own hashes, so someone who rewrites
all of it consistently is caught only by an anchor kept elsewhere: the sign-off entry's hash, shown to
the witness when they sign (``expect_signoff``).
"""

from __future__ import annotations

import hashlib
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from energizeos.records.audit import GENESIS, entry_digest
from energizeos.records.package import MANIFEST, MANIFEST_FORMAT
from energizeos.records.signoff import KIND, RUN_FIELDS, STEP_FIELDS, part_hashes, record_sha256, subject

MAX_MEMBER = 512 * 1024 * 1024  # a member claiming more than this is refused, not read into memory


@dataclass
class Report:
    ok: bool = True
    readable: bool = True  # False: not a readable zip at all
    problems: list[str] = field(default_factory=list)
    summary: list[str] = field(default_factory=list)

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)


def _read_members(zf: zipfile.ZipFile, report: Report) -> dict[str, bytes]:
    names = [i.filename for i in zf.infolist()]
    for name in sorted({n for n in names if names.count(n) > 1}):
        report.fail(f"{name} appears {names.count(name)} times in the archive (a second copy was added)")
    members: dict[str, bytes] = {}
    for info in zf.infolist():
        path = PurePosixPath(info.filename)
        if path.is_absolute() or ".." in path.parts or "\\" in info.filename:
            report.fail(f"{info.filename!r}: a path outside the package (not written by EnergizeOS)")
            continue
        if info.file_size > MAX_MEMBER:
            report.fail(f"{info.filename}: {info.file_size} bytes, more than a package member may hold")
            continue
        try:
            members[info.filename] = zf.read(info)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError) as exc:
            report.fail(f"{info.filename}: unreadable in the archive ({exc})")
    return members


def _json(members: dict[str, bytes], name: str, report: Report) -> dict[str, Any] | None:
    if name not in members:
        return None  # named already as missing (or unreadable)
    try:
        doc = json.loads(members[name])
    except ValueError as exc:
        report.fail(f"{name}: not valid JSON ({exc})")
        return None
    if not isinstance(doc, dict):
        report.fail(f"{name}: not a JSON object")
        return None
    return doc


def _check_files(manifest: dict[str, Any], members: dict[str, bytes], report: Report) -> None:
    listed: set[str] = set()
    files = manifest.get("files")
    if not isinstance(files, list) or not all(isinstance(e, dict) for e in files):
        report.fail(f"{MANIFEST}: no list of files")
        files = []
    for entry in files:
        name = str(entry.get("path", ""))
        listed.add(name)
        if name not in members:
            report.fail(f"{name}: listed in the manifest but missing from the package")
            continue
        data = members[name]
        if len(data) != entry.get("size") or hashlib.sha256(data).hexdigest() != entry.get("sha256"):
            report.fail(f"{name}: changed after packaging (SHA-256 {hashlib.sha256(data).hexdigest()}, "
                        f"{len(data)} bytes; the manifest says {entry.get('sha256')}, {entry.get('size')} bytes)")
    for name in sorted(set(members) - listed - {MANIFEST}):
        report.fail(f"{name}: in the package but not in the manifest (added after packaging)")


def _record(run_doc: dict[str, Any]) -> dict[str, Any]:
    """The signed record rebuilt from run.json (the fields ``signoff.run_record`` hashes)."""
    return {"run": {k: run_doc["run"][k] for k in RUN_FIELDS},
            "steps": [{k: s[k] for k in STEP_FIELDS} for s in run_doc["steps"]]}


def _changes(record: dict[str, Any], signed_parts: Any) -> list[str]:
    """What differs from the signed record, part by part (empty when the sign-off kept no part hashes)."""
    if not isinstance(signed_parts, dict) or not isinstance(signed_parts.get("steps"), dict):
        return []
    now = part_hashes(record)
    found = ["the run's own fields (status, times, operator, procedure or site)"] \
        if now["run"] != signed_parts.get("run") else []
    signed_steps = signed_parts["steps"]
    for step_id, (number, name, digest) in now["steps"].items():
        if step_id not in signed_steps:
            found.append(f"step {number} ({name}) was added")
        elif signed_steps[step_id][2] != digest:
            found.append(f"step {number} ({name})")
    for step_id, value in signed_steps.items():
        if step_id not in now["steps"] and isinstance(value, list) and len(value) == 3:
            found.append(f"step {value[0]} ({value[1]}) was removed")
    return found


def _check_run(run_doc: dict[str, Any], signed: str, signed_parts: Any, report: Report) -> str:
    try:
        record = _record(run_doc)
    except (KeyError, TypeError, AttributeError) as exc:
        report.fail(f"run.json: not a commissioning run document (missing or malformed {exc})")
        return ""
    computed = record_sha256(record)
    if computed != signed:
        changed = _changes(record, signed_parts)
        what = f"; changed: {', '.join(changed)}" if changed else ""
        report.fail(f"run.json is not what the witness signed: its run and steps hash to {computed}, the "
                    f"sign-off signed {signed} (the run or a step changed after the sign-off, or run.json was "
                    f"edited){what}")
    for step in run_doc["steps"]:
        try:
            recorded = json.loads(step["measured_json"] or "{}")
        except (ValueError, TypeError):
            recorded = None
        if step.get("measured") != recorded:
            report.fail(f"run.json step {step.get('number')}: the measured values shown differ from those "
                        "recorded (measured_json)")
    return computed


def _check_chain(chain: list[Any], report: Report) -> dict[int, dict[str, Any]]:
    """Each full entry's hash recomputes; each entry links to the one before. Returns the full entries."""
    full: dict[int, dict[str, Any]] = {}
    prev: dict[str, Any] | None = None
    for i, e in enumerate(chain):
        try:
            seq = int(e["seq"])
            if prev is None:
                if seq == 1 and e["prev_hash"] != GENESIS:
                    report.fail("audit entry 1 does not start from the genesis hash")
            elif seq != prev["seq"] + 1:
                report.fail(f"audit.json: entry {seq} follows entry {prev['seq']}: the entries between are missing")
            elif e["prev_hash"] != prev["entry_hash"]:
                report.fail(f"audit entry {seq} does not follow entry {prev['seq']} (its previous-hash differs: "
                            "entries re-ordered, inserted or replaced)")
            if "payload_json" in e:
                digest = entry_digest(seq, int(e["recorded_ns"]), e["kind"], e["actor"], e["subject"],
                                      e["payload_json"], e["prev_hash"])
                if digest != e["entry_hash"]:
                    report.fail(f"audit entry {seq} was edited (its content no longer matches its hash)")
                full[seq] = e
            prev = {"seq": seq, "entry_hash": e["entry_hash"]}
        except (KeyError, TypeError, ValueError) as exc:
            report.fail(f"audit.json: chain item {i} is malformed ({type(exc).__name__}: {exc})")
            return full
    return full


def _payload(entry: dict[str, Any]) -> dict[str, Any]:
    try:
        payload = json.loads(entry["payload_json"])
    except (ValueError, TypeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _check_signoff(manifest: dict[str, Any], run_doc: dict[str, Any] | None, full: dict[int, dict[str, Any]],
                   expect: str, report: Report) -> dict[str, Any]:
    ref = manifest.get("signoff")
    ref = ref if isinstance(ref, dict) else {}
    entry = full.get(ref.get("audit_seq"))  # type: ignore[arg-type]
    run_id = manifest.get("run_id")
    if entry is None or entry.get("kind") != KIND or entry.get("subject") != subject(run_id or 0):
        report.fail(f"audit.json: the witness sign-off (audit entry {ref.get('audit_seq')}, kind {KIND}, "
                    f"subject {subject(run_id or 0)}) is not in the package")
        return {}
    payload = _payload(entry)
    if entry["entry_hash"] != ref.get("entry_hash"):
        report.fail(f"manifest.json names sign-off hash {ref.get('entry_hash')}, the entry's hash is "
                    f"{entry['entry_hash']}")
    if expect and entry["entry_hash"] != expect:
        report.fail(f"the sign-off entry's hash is {entry['entry_hash']}, not the expected {expect}")
    if payload.get("run_sha256") != manifest.get("run_sha256"):
        report.fail(f"manifest.json's run SHA-256 {manifest.get('run_sha256')} is not the one the sign-off "
                    f"(audit entry {entry['seq']}) signed: {payload.get('run_sha256')}")
    if run_doc is not None:
        run = run_doc.get("run") or {}
        shown = (run.get("id"), run.get("witness"), run.get("witness_organisation"), run.get("witnessed_at"))
        signed = (payload.get("run_id"), payload.get("witness"), payload.get("organisation"),
                  payload.get("witnessed_at"))
        if shown != signed:
            report.fail(f"run.json shows run {shown[0]} witnessed by {shown[1]!r} ({shown[2]!r}) at {shown[3]}; "
                        f"the sign-off is for run {signed[0]} by {signed[1]!r} ({signed[2]!r}) at {signed[3]}")
    return payload


def _check_evidence(run_doc: dict[str, Any], payload: dict[str, Any], full: dict[int, dict[str, Any]],
                    members: dict[str, bytes], report: Report) -> None:
    items = {e.get("id"): e for e in run_doc.get("evidence") or [] if isinstance(e, dict)}
    for item in items.values():
        label = f"evidence {item.get('id')} ({item.get('filename')})"
        data = members.get(str(item.get("path")))
        if data is None:
            report.fail(f"{label}: its file {item.get('path')} is not in the package")
        elif hashlib.sha256(data).hexdigest() != item.get("sha256"):
            report.fail(f"{label}: the file in the package does not match the SHA-256 recorded for it")
        recorded = full.get(item.get("audit_seq"))  # type: ignore[arg-type]
        if recorded is not None and _payload(recorded).get("sha256") != item.get("sha256"):
            report.fail(f"{label}: its SHA-256 differs from the one on the audit chain (entry {recorded['seq']})")
    signed_items = [s for s in payload.get("evidence") or [] if isinstance(s, dict)]
    for signed in signed_items:
        item = items.get(signed.get("id"))
        if item is None or item.get("sha256") != signed.get("sha256"):
            report.fail(f"evidence {signed.get('id')} ({signed.get('filename')}) was signed by the witness but is "
                        f"{'missing from' if item is None else 'different in'} the package")
    later = [f"{i.get('id')} ({i.get('filename')})" for k, i in items.items()
             if k not in {s.get("id") for s in signed_items}]
    if later:
        report.summary.append("evidence added after the sign-off (not witnessed): " + ", ".join(later))


def verify_package(path: Path, expect_signoff: str = "") -> Report:
    """Check the package at ``path``; ``report.ok`` False with every problem named otherwise."""
    report = Report()
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            members = _read_members(zf, report)
    except FileNotFoundError:
        report.readable = False
        report.fail(f"{path}: no such file")
        return report
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        report.readable = False
        report.fail(f"{path} is not a readable zip archive ({exc})")
        return report
    manifest = _json(members, MANIFEST, report)
    if manifest is None:
        if MANIFEST not in members:
            report.fail(f"{MANIFEST} is missing: nothing to check the files against")
        return report
    if manifest.get("format") != MANIFEST_FORMAT:
        report.fail(f"{MANIFEST}: format {manifest.get('format')!r}, expected {MANIFEST_FORMAT!r}")
        return report
    _check_files(manifest, members, report)
    run_doc = _json(members, "run.json", report)
    audit_doc = _json(members, "audit.json", report)
    chain = audit_doc.get("chain") if audit_doc else None
    full = _check_chain(chain, report) if isinstance(chain, list) else {}
    if audit_doc is not None and not isinstance(chain, list):
        report.fail("audit.json: no chain of entries")
    payload = _check_signoff(manifest, run_doc, full, expect_signoff, report)
    computed = _check_run(run_doc, str(manifest.get("run_sha256")), payload.get("parts"), report) if run_doc else ""
    if run_doc is not None and payload:
        _check_evidence(run_doc, payload, full, members, report)
    if report.ok:
        _summarise(manifest, run_doc or {}, audit_doc or {}, payload, computed, report)
    return report


def _summarise(manifest: dict[str, Any], run_doc: dict[str, Any], audit_doc: dict[str, Any],
               payload: dict[str, Any], computed: str, report: Report) -> None:
    run, steps, chain = run_doc["run"], run_doc["steps"], audit_doc["chain"]
    verdicts = [s["verdict"] for s in steps]
    org = f" ({payload.get('organisation')})" if payload.get("organisation") else ""
    ref = manifest["signoff"]
    head = audit_doc.get("head") or {}
    report.summary[:0] = [
        f"run {run['id']} ({run['procedure']}, {run['status']}) at {run['site']}: {len(steps)} step(s), "
        f"{verdicts.count('pass')} pass, {verdicts.count('fail')} fail",
        f"witnessed by {payload.get('witness')}{org} at {payload.get('witnessed_at')}",
        f"{len(manifest['files'])} file(s) match the manifest; run SHA-256 {computed} is the one signed",
        f"sign-off: audit entry {ref['audit_seq']}, hash {ref['entry_hash']}",
        f"{sum(1 for e in chain if 'payload_json' in e)} audit entries about the run recompute and "
        f"{len(chain)} entries chain correctly (seq {chain[0]['seq']}..{chain[-1]['seq']}); chain head when "
        f"packaged: seq {head.get('seq')} {head.get('entry_hash')}",
    ]
