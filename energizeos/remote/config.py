"""Settings of both ends of the remote link, validated with pydantic (a misspelt key is an error).

The edge reads ``remote:`` from its site config (``UplinkSettings``); the aggregator reads its own
file (``ServerSettings``, ``energizeos remote serve --config FILE``). Relative paths in the server
file are taken from the file's folder, so a fleet folder can be moved as a whole.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from energizeos.remote.requests import Grant
from energizeos.yaml_file import read_yaml, validated

SITE_ID = r"^[a-z0-9][a-z0-9-]{0,39}$"  # it becomes a key-expression chunk: no '/', '*', '$'
ENDPOINT = re.compile(r"^(tls|tcp|quic)/[^/\s]+:\d{1,5}$")


class RemoteConfigError(ValueError):
    """A remote-link or fleet file that is missing, malformed or inconsistent; the text says what."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _check_endpoint(value: str) -> str:
    if not ENDPOINT.match(value):
        raise ValueError(f"{value!r} is not an endpoint like 'tls/fleet.example.com:7450'")
    return value


class TlsFiles(_Strict):
    """PEM files. ``ca`` verifies the other end; ``cert``/``key`` are this end's own identity."""

    ca: Path
    cert: Path | None = None
    key: Path | None = None
    mutual: bool = True  # the router asks every client for a certificate signed by ``ca``

    @model_validator(mode="after")
    def _pair(self) -> TlsFiles:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both cert and key, or neither")
        return self

    def resolved(self, base: Path) -> TlsFiles:
        def fix(p: Path | None) -> Path | None:
            return None if p is None or p.is_absolute() else base / p
        return TlsFiles(ca=fix(self.ca) or self.ca, cert=fix(self.cert) or self.cert,
                        key=fix(self.key) or self.key, mutual=self.mutual)

    def missing(self) -> list[str]:
        return [f"{name} {path}" for name, path in (("ca", self.ca), ("cert", self.cert), ("key", self.key))
                if path is not None and not Path(path).is_file()]


class UplinkSettings(_Strict):
    """The edge side (site config ``remote:``): where the aggregator is and how this site proves who it is."""

    enabled: bool = True
    site_id: str = Field(pattern=SITE_ID)
    endpoint: str  # the aggregator's router, e.g. tls/fleet.example.com:7450
    user: str = Field(min_length=1)
    password_file: Path  # one line: the password (kept out of the site config, which is shared)
    tls: TlsFiles | None = None
    outbox: Path | None = None  # default $ENERGIZEOS_HOME/remote/outbox.db
    send_period_s: float = Field(0.2, gt=0, le=10)
    max_batch_records: int = Field(500, ge=1, le=10_000)
    window_records: int = Field(5000, ge=1, le=1_000_000)  # sent but not yet acknowledged
    resend_after_s: float = Field(3.0, gt=0, le=300)  # no acknowledgement for this long: send again
    retention_days: float = Field(2.0, gt=0, le=3650)  # acknowledged records are kept this long
    telemetry_period_s: float = Field(1.0, ge=0, le=3600)  # one sample per topic per period (0: every one)
    lease_s: float = Field(3.0, ge=1, le=60)  # a silent link is declared dead after this
    # remote parties' alarm requests this edge acts on (none unless listed; energizeos/remote/requests.py)
    grants: list[Grant] = Field(default_factory=list)
    max_request_age_s: float = Field(30.0, gt=0, le=600)  # an older request arrived late: refused
    # report files forwarded with their announcement (checked against its SHA-256 first); [] for none
    report_formats: list[Literal["pdf", "html", "csv"]] = Field(default_factory=lambda: ["pdf"])
    max_report_file_mb: float = Field(10.0, gt=0, le=200)  # a larger file stays at the site (logged)

    _check = field_validator("endpoint")(_check_endpoint)

    @model_validator(mode="after")
    def _tls_for_tls(self) -> UplinkSettings:
        if self.endpoint.startswith(("tls/", "quic/")) and self.tls is None:
            raise ValueError(f"endpoint {self.endpoint} needs a tls: section (ca, and cert/key for mutual TLS)")
        parties = [g.party for g in self.grants]
        doubled = sorted({p for p in parties if parties.count(p) > 1})
        if doubled:
            raise ValueError(f"grants: party {', '.join(doubled)} listed twice (give each party one grant)")
        if self.user in parties:
            raise ValueError(f"grants: party {self.user} is this edge itself")
        return self

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise RemoteConfigError(f"remote.password_file {self.password_file}: {exc.strerror}") from exc


class PartySettings(_Strict):
    """A remote party's own file (``energizeos remote request --config FILE``): how it reaches the router."""

    endpoint: str
    user: str = Field(min_length=1)
    password_file: Path
    tls: TlsFiles | None = None
    lease_s: float = Field(3.0, ge=1, le=60)

    _check = field_validator("endpoint")(_check_endpoint)

    def password(self) -> str:
        try:
            return self.password_file.read_text().strip()
        except OSError as exc:
            raise RemoteConfigError(f"password_file {self.password_file}: {exc.strerror}") from exc


def load_party_settings(path: str | Path) -> PartySettings:
    path = Path(path)
    settings = validated(PartySettings, read_yaml(path, "remote party config", RemoteConfigError),
                         f"remote party config {path}", RemoteConfigError)
    base = path.resolve().parent
    if not settings.password_file.is_absolute():
        settings.password_file = base / settings.password_file
    if settings.tls is not None:
        settings.tls = settings.tls.resolved(base)
        missing = settings.tls.missing()
        if missing:
            raise RemoteConfigError(f"remote party config {path}: file(s) not found: {'; '.join(missing)}")
    return settings


class Party(_Strict):
    """One remote user of the aggregator's router and what the access-control list lets it do.

    - ``site``: an edge; publishes only its own ``fleet/<site>/batch|status``, hears only its acks.
    - ``viewer``: subscribes to the status and records of ``sites``; sends nothing.
    - ``operator``: a viewer that may also ask its sites for alarm actions: it puts only on
      ``fleet/<site>/request/<its user>`` and hears only ``fleet/<site>/reply/<its user>``; each edge
      then decides by its own grants (energizeos/remote/requests.py).
    """

    user: str = Field(pattern=r"^[A-Za-z0-9_.@-]{1,64}$")
    role: Literal["site", "viewer", "operator"]
    sites: list[str] = Field(min_length=1)  # site ids, or ["*"] for every site (not for role site)

    @model_validator(mode="after")
    def _sites(self) -> Party:
        for site in self.sites:
            if site != "*" and not re.match(SITE_ID, site):
                raise ValueError(f"site {site!r} is not a site id (lower-case letters, digits, '-')")
        if self.role == "site" and (len(self.sites) != 1 or self.sites[0] == "*"):
            raise ValueError(f"party {self.user}: a site party names exactly its own site")
        return self


class ServerSettings(_Strict):
    """The aggregator (``energizeos remote serve``): its router, its parties and its database."""

    listen: list[str] = Field(default_factory=lambda: ["tls/0.0.0.0:7450"], min_length=1)
    tls: TlsFiles | None = None
    credentials_file: Path  # "user:password" per line, the form Zenoh's user/password check reads
    parties: list[Party] = Field(min_length=1)
    db_url: str = ""  # empty: $ENERGIZEOS_DB_URL or the SQLite file under $ENERGIZEOS_HOME
    site_names: dict[str, str] = Field(default_factory=dict)  # site id -> name shown in the fleet view
    lease_s: float = Field(3.0, ge=1, le=60)
    offline_after_s: float = Field(10.0, gt=0, le=3600)  # a site silent for this long shows as offline

    @field_validator("listen")
    @classmethod
    def _endpoints(cls, values: list[str]) -> list[str]:
        return [_check_endpoint(v) for v in values]

    @model_validator(mode="after")
    def _consistent(self) -> ServerSettings:
        needs_tls = any(e.startswith(("tls/", "quic/")) for e in self.listen)
        if needs_tls and (self.tls is None or self.tls.cert is None):
            raise ValueError("a tls/ or quic/ listen endpoint needs tls: ca, cert and key")
        users = [p.user for p in self.parties]
        doubled = sorted({u for u in users if users.count(u) > 1})
        if doubled:
            raise ValueError(f"party user(s) listed twice: {', '.join(doubled)}")
        sites = [p.sites[0] for p in self.parties if p.role == "site"]
        if len(sites) != len(set(sites)):
            raise ValueError("two site parties claim the same site id")
        return self

    def site_users(self) -> dict[str, str]:
        """site id -> the only user allowed to speak for it."""
        return {p.sites[0]: p.user for p in self.parties if p.role == "site"}


def load_server_settings(path: str | Path) -> ServerSettings:
    path = Path(path)
    data = read_yaml(path, "fleet server config", RemoteConfigError)
    settings = validated(ServerSettings, data, f"fleet server config {path}", RemoteConfigError)
    base = path.resolve().parent
    if not settings.credentials_file.is_absolute():
        settings.credentials_file = base / settings.credentials_file
    if settings.tls is not None:
        settings.tls = settings.tls.resolved(base)
    problems = [f"credentials_file {settings.credentials_file}"] if not settings.credentials_file.is_file() else []
    problems += settings.tls.missing() if settings.tls else []
    if problems:
        raise RemoteConfigError(f"fleet server config {path}: file(s) not found: {'; '.join(problems)}")
    known = set(read_credentials(settings.credentials_file))
    unknown = sorted(p.user for p in settings.parties if p.user not in known)
    if unknown:
        raise RemoteConfigError(f"fleet server config {path}: no password in {settings.credentials_file} "
                                f"for party {', '.join(unknown)}")
    return settings


def read_credentials(path: Path) -> dict[str, str]:
    """The ``user:password`` lines (blank lines and ``#`` comments skipped)."""
    out: dict[str, str] = {}
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, password = line.partition(":")
        if not sep or not user or not password:
            raise RemoteConfigError(f"{path} line {number}: expected 'user:password'")
        out[user] = password
    return out
