"""Settings read-back: the relay's active protection settings, read over Modbus with its own map,
against the approved settings file (every value, the relay's checksum and a checksum computed from
the registers read); the PCS ratings and enter-service settings over SunSpec; the meter's CT/PT
ratios. The approved file and the read-back are kept as evidence with their SHA-256."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, field_validator

from energizeos.commissioning.actions.points import read_sunspec
from energizeos.commissioning.context import StepContext
from energizeos.commissioning.driver import Sleep, StepFailed, Steps
from energizeos.commissioning.registry import Params, action
from energizeos.nodes.device_link import LinkError
from energizeos.sim.maps.sel import load_map

APPROVED_DIR = Path(__file__).resolve().parents[1] / "approved"


class ApprovedParams(Params):
    approved: str = Field(description="approved settings file in energizeos/commissioning/approved/")

    @field_validator("approved")
    @classmethod
    def _exists(cls, name: str) -> str:
        if "/" in name or not (APPROVED_DIR / name).is_file():
            raise ValueError(f"no approved settings file {name!r}; files: "
                             f"{', '.join(sorted(p.name for p in APPROVED_DIR.glob('*.yaml')))}")
        return name


def approved_file(name: str) -> tuple[bytes, dict[str, Any]]:
    data = (APPROVED_DIR / name).read_bytes()
    return data, yaml.safe_load(data)


def compare(read: dict[str, Any], approved: dict[str, Any], resolution: dict[str, float]) -> list[str]:
    """Pure: every approved value against the one read, within half the register's resolution."""
    found = []
    for name, expected in sorted(approved.items()):
        value = read.get(name)
        tolerance = resolution.get(name, 0.0) / 2.0 + 1e-9
        if not isinstance(value, int | float) or not math.isclose(float(value), float(expected), abs_tol=tolerance):
            found.append(f"{name}: read {value}, approved {expected}")
    return found


def _keep(ctx: StepContext, name: str, data: bytes, kind: str, note: str) -> dict[str, Any]:
    if ctx.keep_file is None:
        return {"sha256": hashlib.sha256(data).hexdigest(), "evidence_id": None}
    return ctx.keep_file(name, data, kind, note)


@action("relay_settings", ApprovedParams, ("settings_read", "mismatches", "mismatch_count", "crc_reported",
                                           "crc_computed", "crc_approved", "crc_consistent", "crc_as_approved",
                                           "approved_sha256", "readback_sha256", "approved_evidence_id",
                                           "readback_evidence_id"))
def relay_settings(ctx: StepContext, p: ApprovedParams) -> Steps:
    """Read the relay's settings group and checksum over Modbus and compare with the approved file."""
    yield Sleep(0.0)
    dmap = load_map("sel700g")
    start, count = dmap.checksum_span
    crc_point = dmap.point(dmap.checksum_point or "settings_crc")
    try:
        words = ctx.io.read("relay", start, count)
        reported = dmap.decode(ctx.io.read("relay", crc_point.address, crc_point.count), crc_point.address)
    except LinkError as exc:
        raise StepFailed(f"the relay does not answer: {exc}") from exc
    settings = dmap.decode(words, start)
    raw, approved = approved_file(p.approved)
    resolution = {pt.name: float(pt.scale) for pt in dmap.group_points(dmap.checksum_group)}
    mismatches = compare(settings, approved["settings"], resolution)
    unapproved = sorted(set(settings) - set(approved["settings"]))
    mismatches += [f"{name}: read {settings[name]}, not in the approved file" for name in unapproved]
    readback = json.dumps({"device": "sel700g", "registers": [start, count], "words": words, "settings": settings,
                           "settings_crc": reported.get("settings_crc")}, sort_keys=True, indent=1).encode()
    kept_approved = _keep(ctx, p.approved, raw, "protection-settings", "approved relay settings")
    kept_readback = _keep(ctx, "sel700g_settings_readback.json", readback, "protection-settings",
                          "relay settings as read back at commissioning")
    computed, crc = dmap.checksum_words(words), reported.get("settings_crc")
    ctx.measure(settings_read=len(settings), mismatches=mismatches, mismatch_count=len(mismatches),
                crc_reported=crc, crc_computed=computed, crc_approved=approved.get("settings_crc"),
                crc_consistent=crc == computed, crc_as_approved=crc == approved.get("settings_crc"),
                approved_sha256=kept_approved["sha256"],
                readback_sha256=kept_readback["sha256"], approved_evidence_id=kept_approved["evidence_id"],
                readback_evidence_id=kept_readback["evidence_id"])


@action("pcs_settings", ApprovedParams, ("settings_read", "mismatches", "mismatch_count", "approved_sha256",
                                         "approved_evidence_id"))
def pcs_settings(ctx: StepContext, p: ApprovedParams) -> Steps:
    """Read the PCS's SunSpec models and compare the approved ratings and enter-service settings."""
    yield Sleep(0.0)
    try:
        values = read_sunspec(ctx, "pcs")
    except LinkError as exc:
        raise StepFailed(f"the PCS does not answer: {exc}") from exc
    raw, approved = approved_file(p.approved)
    wanted = approved["settings"]
    mismatches = compare(values, wanted, {name: 0.001 for name in wanted})  # 703 V and Hz: SF -3
    kept = _keep(ctx, p.approved, raw, "protection-settings", "approved PCS settings")
    ctx.measure(settings_read=sum(1 for name in wanted if name in values), mismatches=mismatches,
                mismatch_count=len(mismatches), approved_sha256=kept["sha256"],
                approved_evidence_id=kept["evidence_id"])


class NoParams(Params):
    pass


@action("meter_settings", NoParams, ("ctr", "ptr", "nameplate_ctr", "nameplate_ptr", "mismatch_count"))
def meter_settings(ctx: StepContext, p: NoParams) -> Steps:
    """The meter's CTR and PTR registers against the CT and PT nameplates in the site configuration."""
    yield Sleep(0.0)
    dmap = load_map("sel735")
    ctr_point, ptr_point = dmap.point("ctr"), dmap.point("ptr")
    first, last = min(ctr_point.address, ptr_point.address), max(ctr_point.end, ptr_point.end)
    try:
        values = dmap.decode(ctx.io.read("meter", first, last - first), first)
    except LinkError as exc:
        raise StepFailed(f"the meter does not answer: {exc}") from exc
    s = ctx.settings
    wrong = sum(1 for name, plate in (("ctr", s.nameplate_ctr), ("ptr", s.nameplate_ptr))
                if values.get(name) is None or abs(float(values[name]) - plate) > 1e-9)
    ctx.measure(ctr=values.get("ctr"), ptr=values.get("ptr"), nameplate_ctr=s.nameplate_ctr,
                nameplate_ptr=s.nameplate_ptr, mismatch_count=wrong)
