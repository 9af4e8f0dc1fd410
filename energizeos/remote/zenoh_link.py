"""Zenoh configurations for the two ends of the remote link.

The aggregator is a Zenoh *router* listening with TLS (mutual by default), checking user/password
and enforcing the access-control list; an edge is a *peer* that dials out to it and listens on
nothing. Measured with zenoh 1.10: in client mode ``zenoh.open`` raises when the router is
unreachable or refuses the credentials (or blocks for ever with an infinite timeout); in peer mode
it returns at once and keeps dialling. An edge must keep trying (the link may simply be down), so
it is a peer, and the link is judged by ``link_up`` (is a router connected?), never by ``open``
having returned.
"""

from __future__ import annotations

import json
from typing import Any

import zenoh

from energizeos.remote.acl import access_control
from energizeos.remote.config import ServerSettings, TlsFiles, UplinkSettings


def _set(config: zenoh.Config, path: str, value: Any) -> None:
    config.insert_json5(path, json.dumps(value))


def _common(config: zenoh.Config, mode: str, lease_s: float) -> None:
    _set(config, "mode", mode)
    _set(config, "scouting/multicast/enabled", False)
    _set(config, "scouting/gossip/enabled", False)
    _set(config, "transport/link/tx/lease", int(lease_s * 1000))  # a cut link is noticed within this
    _set(config, "transport/link/tx/keep_alive", 4)


def edge_config(settings: UplinkSettings, password: str) -> zenoh.Config:
    # Peer mode: ``zenoh.open`` returns at once and keeps connecting in the background (a client
    # raises when the router is unreachable or refuses it, and would have to be reopened by hand).
    config = zenoh.Config()
    _common(config, "peer", settings.lease_s)
    _set(config, "listen/endpoints", [])  # nobody connects to an edge: it only dials out
    _set(config, "connect/endpoints", [settings.endpoint])
    # Keep trying for ever, at most every 2 s: an edge starts and runs whether or not the link is up.
    _set(config, "connect/timeout_ms", {"router": -1, "peer": -1, "client": 0})
    _set(config, "connect/exit_on_failure", {"router": False, "peer": False, "client": False})
    _set(config, "connect/retry", {"period_init_ms": 500, "period_max_ms": 2000, "period_increase_factor": 2})
    _set(config, "transport/auth/usrpwd", {"user": settings.user, "password": password})
    if settings.tls is not None:
        _set(config, "transport/link/tls", _client_tls(settings.tls))
    return config


def _client_tls(tls: TlsFiles) -> dict[str, Any]:
    out: dict[str, Any] = {"root_ca_certificate": str(tls.ca), "verify_name_on_connect": True}
    if tls.cert is not None:
        out.update(connect_certificate=str(tls.cert), connect_private_key=str(tls.key), enable_mtls=tls.mutual)
    return out


def router_config(settings: ServerSettings) -> zenoh.Config:
    config = zenoh.Config()
    _common(config, "router", settings.lease_s)
    _set(config, "listen/endpoints", settings.listen)
    _set(config, "connect/endpoints", [])
    _set(config, "timestamping/enabled", True)
    _set(config, "transport/auth/usrpwd", {"dictionary_file": str(settings.credentials_file)})
    if settings.tls is not None:
        _set(config, "transport/link/tls", {
            "root_ca_certificate": str(settings.tls.ca), "listen_certificate": str(settings.tls.cert),
            "listen_private_key": str(settings.tls.key), "enable_mtls": settings.tls.mutual})
    _set(config, "access_control", access_control(settings.parties))
    return config


def party_config(endpoint: str, user: str, password: str, tls: TlsFiles | None, lease_s: float = 3.0,
                 give_up: bool = True) -> zenoh.Config:
    """A remote party (a viewer, an operator, a test) connecting to the aggregator's router."""
    config = zenoh.Config()
    _common(config, "client", lease_s)
    _set(config, "connect/endpoints", [endpoint])
    if not give_up:
        _set(config, "connect/timeout_ms", {"router": -1, "peer": -1, "client": 0})
        _set(config, "connect/exit_on_failure", {"router": False, "peer": False, "client": False})
    _set(config, "transport/auth/usrpwd", {"user": user, "password": password})
    if tls is not None:
        _set(config, "transport/link/tls", _client_tls(tls))
    return config


def link_up(session: zenoh.Session) -> bool:
    """Is the session connected to a router right now?"""
    return any(True for _ in session.info.routers_zid())
