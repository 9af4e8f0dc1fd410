"""The assistant's documents as retrieval chunks: the alarm catalogue (one chunk per alarm), the written
procedures and standards notes (one chunk per ``##`` section), and incident records from the database
(one chunk per alarm occurrence with its cause chain), each with the id it is cited by and metadata
(doc, section, alarm codes, device)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from energizeos.knowledge.catalogue import PRIORITY_NAMES, Catalogue, load_catalogue

KNOWLEDGE_DIR = Path(__file__).resolve().parent
DOC_DIRS = ("procedures", "standards")
CODE_RE = re.compile(r"\b[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)+\b")


@dataclass(frozen=True)
class Chunk:
    cite: str  # how an answer cites it: "procedures/bms-thermal.md#response", "alarms.yaml#BMS_RACK_OVERTEMP"
    title: str
    text: str
    doc: str  # "procedures/bms-thermal.md", "alarms.yaml", "records"
    section: str = ""
    codes: tuple[str, ...] = ()
    devices: tuple[str, ...] = ()
    extra: dict = field(default_factory=dict, compare=False)

    def metadata(self) -> dict:
        """Flat metadata for the vector store (Chroma takes str/int/float/bool values)."""
        return {"cite": self.cite, "doc": self.doc, "section": self.section, "codes": ",".join(self.codes),
                "devices": ",".join(self.devices), "title": self.title}


def anchor(heading: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", heading.lower()).strip("-")


class DocumentError(ValueError):
    """A knowledge document that cannot be used (no front matter, missing fields)."""


def document_chunks(path: Path) -> list[Chunk]:
    """One chunk per ``##`` section of a Markdown document with YAML front matter."""
    text = path.read_text(encoding="utf-8")
    rel = f"{path.parent.name}/{path.name}"
    m = re.match(r"^---\n(.*?)\n---\n(.*)$", text, re.S)
    if not m:
        raise DocumentError(f"{rel}: no YAML front matter (--- title, family, devices, codes ---)")
    meta = yaml.safe_load(m.group(1)) or {}
    missing = [k for k in ("title", "devices", "codes") if k not in meta]
    if missing:
        raise DocumentError(f"{rel}: front matter lacks {', '.join(missing)}")
    chunks = []
    for section in re.split(r"\n(?=## )", m.group(2)):
        if not section.startswith("## "):
            continue
        heading, _, body = section[3:].partition("\n")
        body = body.strip()
        codes = tuple(dict.fromkeys([*CODE_RE.findall(body)] or meta["codes"]))
        chunks.append(Chunk(cite=f"{rel}#{anchor(heading)}", title=f"{meta['title']}: {heading.strip()}",
                            text=body, doc=rel, section=heading.strip(), codes=codes,
                            devices=tuple(meta["devices"])))
    return chunks


def catalogue_chunks(catalogue: Catalogue) -> list[Chunk]:
    out = []
    for a in catalogue.alarms:
        text = (f"{a.code} ({a.title}), {a.device}, priority {a.priority} {PRIORITY_NAMES[a.priority]}. "
                f"Meaning: {a.meaning} Causes: {'; '.join(a.causes)}. Consequences: {a.consequences} "
                f"Response: {' '.join(f'{i}. {s}' for i, s in enumerate(a.response, 1))}")
        out.append(Chunk(cite=f"alarms.yaml#{a.code}", title=f"{a.code}: {a.title}", text=text, doc="alarms.yaml",
                         section=a.code, codes=(a.code,), devices=(a.device,),
                         extra={"references": list(a.references)}))
    return out


def incident_chunks(engine, tz: str, after_id: int = 0) -> list[Chunk]:
    """One chunk per alarm occurrence in the records (its raise, cause and clear), cited as the record:
    "has this happened before?" then finds past incidents by what they were about."""
    from zoneinfo import ZoneInfo

    from sqlmodel import Session, select

    from energizeos.records.models import AlarmEvent
    from energizeos_msgs.msg import Alarm

    zone = ZoneInfo(tz)
    with Session(engine) as session:
        rows = session.exec(select(AlarmEvent).where(AlarmEvent.event == Alarm.EVENT_RAISE,
                                                     AlarmEvent.id > after_id).order_by(AlarmEvent.id)).all()
        causes = {r.alarm_id: r.code for r in rows}
    out = []
    for r in rows:
        cause = f" Caused by {causes.get(r.cause_alarm_id, f'alarm {r.cause_alarm_id}')}." if r.cause_alarm_id else ""
        out.append(Chunk(cite=f"alarm {r.alarm_id}", title=f"incident: {r.code} at "
                         f"{r.time.astimezone(zone):%Y-%m-%d %H:%M:%S}", text=f"{r.code} from {r.source}: {r.message}."
                         f"{cause}", doc="records", section=str(r.id), codes=(r.code,), extra={"row_id": r.id}))
    return out


def knowledge_chunks(directory: Path = KNOWLEDGE_DIR) -> list[Chunk]:
    """Every shipped chunk: the catalogue, then the procedures and standards notes."""
    chunks = catalogue_chunks(load_catalogue(directory / "alarms.yaml"))
    for sub in DOC_DIRS:
        for path in sorted((directory / sub).glob("*.md")):
            chunks += document_chunks(path)
    return chunks
