"""A fleet for tests: a CA, the router's certificate, one certificate per party, passwords, settings."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from energizeos.remote import certs
from energizeos.remote.config import Party, ServerSettings, TlsFiles, UplinkSettings

PARTIES = [Party(user="edge-a", role="site", sites=["site-a"]), Party(user="edge-b", role="site", sites=["site-b"]),
           Party(user="owner", role="viewer", sites=["site-a"]), Party(user="noc", role="operator", sites=["*"]),
           Party(user="ops2", role="operator", sites=["site-a"])]


@dataclass
class Fleet:
    root: Path
    host: str
    port: int
    ca: certs.Issued
    server: certs.Issued
    clients: dict[str, certs.Issued] = field(default_factory=dict)

    @property
    def endpoint(self) -> str:
        return f"tls/{self.host}:{self.port}"

    def password(self, user: str) -> str:
        return f"pw-{user}-0123456789"

    def server_settings(self, db_url: str, **extra) -> ServerSettings:
        return ServerSettings(listen=[f"tls/{self.host}:{self.port}"], db_url=db_url,
                              tls=TlsFiles(ca=self.ca.cert, cert=self.server.cert, key=self.server.key),
                              credentials_file=self.root / "credentials", parties=PARTIES,
                              site_names={"site-a": "Plant A", "site-b": "Plant B"}, **extra)

    def tls(self, user: str) -> TlsFiles:
        return TlsFiles(ca=self.ca.cert, cert=self.clients[user].cert, key=self.clients[user].key)

    def uplink_settings(self, user: str, site: str, password: str | None = None, **extra) -> UplinkSettings:
        pw_file = self.root / f"{user}-{site}.password"
        pw_file.write_text((password or self.password(user)) + "\n")
        return UplinkSettings(site_id=site, endpoint=self.endpoint, user=user, password_file=pw_file,
                              tls=self.tls(user), resend_after_s=1.0, **extra)


def make_fleet(root: Path, host: str, port: int) -> Fleet:
    root.mkdir(parents=True, exist_ok=True)
    ca = certs.make_ca(root)
    fleet = Fleet(root, host, port, ca, certs.issue_server(ca, root, [host, "localhost"]))
    for party in PARTIES:
        fleet.clients[party.user] = certs.issue_client(ca, root, party.user)
    (root / "credentials").write_text("".join(f"{p.user}:{fleet.password(p.user)}\n" for p in PARTIES))
    return fleet


def wait_until(condition: Callable[[], bool], timeout_s: float, what: str, step_s: float = 0.05) -> float:
    """Poll until ``condition()``; returns the seconds it took, or fails naming ``what``."""
    start = time.monotonic()
    while not condition():
        if time.monotonic() - start > timeout_s:
            raise AssertionError(f"{what}: not within {timeout_s} s")
        time.sleep(step_s)
    return time.monotonic() - start
