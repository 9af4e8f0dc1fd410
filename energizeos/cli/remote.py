"""``energizeos remote serve|certs|sites|flush|request``: the fleet aggregator, its certificates, what it
holds, an edge's outbox flush, and a remote party's alarm requests to a site."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Remote monitoring: the fleet aggregator and its certificates.", no_args_is_help=True)
CONFIG = typer.Option(..., "--config", help="Fleet server file (YAML; see docs/remote.md).")


def _settings(config: Path):
    from energizeos.remote.config import RemoteConfigError, load_server_settings

    try:
        return load_server_settings(config)
    except RemoteConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc


@app.command()
def serve(config: Path = CONFIG,
          duration_s: float = typer.Option(0.0, "--duration", help="Stop after this many seconds (0: until Ctrl-C)."),
          stats_every_s: float = typer.Option(10.0, "--stats-every", help="Print counters this often (0: never)."),
          stats_file: Path = typer.Option(None, "--stats-file", help="Also write the counters here as JSON."),
          ui_port: int = typer.Option(0, "--ui-port", help="Also serve the fleet view on 127.0.0.1:PORT (0: no)."),
          timezone: str = typer.Option("America/Los_Angeles", "--timezone",
                                       help="The fleet view's 'today' is this zone's day.")) -> None:
    """Run the aggregator: a Zenoh router (TLS, user/password, access control) writing the fleet tables."""
    from energizeos.records.db import init_db, make_engine, redacted
    from energizeos.remote.aggregator import Aggregator

    settings = _settings(config)
    engine = make_engine(settings.db_url or None)
    init_db(engine)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        aggregator = Aggregator(settings, engine, log=lambda text: print(text, flush=True)).start()
    except Exception as exc:  # zenoh refuses a bad endpoint or certificate: say which and stop
        typer.echo(f"error: the router did not start on {', '.join(settings.listen)}: {exc}", err=True)
        raise typer.Exit(1) from exc
    ui = None
    if ui_port:  # the fleet view, a child process ended by PID with the aggregator
        ui = subprocess.Popen([sys.executable, "-m", "energizeos.ui.serve", "--app", "fleet", "--fleet-config",
                               str(config), "--port", str(ui_port), "--timezone", timezone])
    print(f"fleet aggregator listening on {', '.join(settings.listen)}; {len(settings.site_users())} site(s), "
          f"{len(settings.parties)} part(ies); records into {redacted(engine)}", flush=True)
    started = time.monotonic()
    last_stats = started

    def write_stats() -> None:
        summary = {**aggregator.stats.summary(), "inbox": aggregator.backlog(),
                   "sites": {s: {"epoch": st.epoch, "have": st.have} for s, st in aggregator.streams.items()}}
        if stats_file:
            tmp = stats_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(summary, indent=1))
            tmp.replace(stats_file)
        return summary

    try:
        while not stop.wait(0.5):
            now = time.monotonic()
            if duration_s and now - started >= duration_s:
                break
            if stats_every_s and now - last_stats >= stats_every_s:
                last_stats = now
                print(f"fleet: {json.dumps(write_stats())}", flush=True)
            elif stats_file:
                write_stats()
    finally:
        if ui is not None:
            ui.terminate()
            try:
                ui.wait(timeout=10)
            except subprocess.TimeoutExpired:
                ui.kill()
        aggregator.stop()
        write_stats()
        print("fleet aggregator stopped", flush=True)


@app.command()
def certs(out: Path = typer.Option(..., "--out", help="Folder for the PEM files."),
          server_name: list[str] = typer.Option(..., "--server-name",
                                                help="DNS name or IP address the sites connect to (repeat)."),
          client: list[str] = typer.Option([], "--client",
                                           help="A party's user name: give it a certificate (repeat)."),
          days: float = typer.Option(825, "--days", help="Validity of the server and client certificates.")) -> None:
    """Make a fleet CA (or reuse the one in --out), the router's certificate and client certificates."""
    from energizeos.remote import certs as pki

    ca = pki.Issued(out / "ca.pem", out / "ca.key")
    if not (ca.cert.exists() and ca.key.exists()):
        ca = pki.make_ca(out)
        typer.echo(f"CA: {ca.cert} (keep {ca.key} off the edge PCs and the router)")
    server = pki.issue_server(ca, out, server_name, days)
    typer.echo(f"router: {server.cert} for {', '.join(server_name)}")
    for user in client:
        issued = pki.issue_client(ca, out, user, days)
        typer.echo(f"client {user}: {issued.cert}")


@app.command()
def sites(config: Path = CONFIG) -> None:
    """The sites the aggregator's database holds, with how far each has been received."""
    from sqlmodel import Session, select

    from energizeos.records.db import init_db, make_engine
    from energizeos.records.models import FleetSite

    settings = _settings(config)
    engine = make_engine(settings.db_url or None)
    init_db(engine)
    table = Table("site", "name", "records stored", "edge head", "behind", "last seen (UTC)", "newest record (UTC)")
    with Session(engine) as session:
        for s in session.exec(select(FleetSite).order_by(FleetSite.site_id)):
            table.add_row(s.site_id, s.name, str(s.have_seq), str(s.head_seq), str(max(0, s.head_seq - s.have_seq)),
                          s.last_seen.isoformat(timespec="seconds"),
                          s.last_record_time.isoformat(timespec="seconds") if s.last_record_time else "—")
    Console().print(table)


@app.command()
def flush(site_config: Path = typer.Option(..., "--site-config", help="The edge's site config (its remote: section)."),
          timeout_s: float = typer.Option(60.0, "--timeout", help="Give up after this many seconds.")) -> None:
    """Send every record still in this edge's outbox to the aggregator, then exit (0: all acknowledged).

    For an edge whose graph is stopped: before it is moved or decommissioned, or after a long outage."""
    from energizeos.home import subdir
    from energizeos.remote.edge_link import EdgeLink
    from energizeos.site_config import SiteConfigError, load_site_config

    try:
        remote = load_site_config(site_config).remote
    except SiteConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    if remote is None:
        typer.echo(f"error: {site_config} has no remote: section", err=True)
        raise typer.Exit(2)
    link = EdgeLink(remote, remote.outbox or subdir("remote") / "outbox.db")
    end = time.monotonic() + timeout_s
    try:
        while link.outbox.pending and time.monotonic() < end:
            link.pump(time.time_ns())
            time.sleep(0.1)
        head, acked = link.outbox.head, link.outbox.acked
    finally:
        link.close()
    typer.echo(json.dumps({"site": remote.site_id, "epoch": link.outbox.epoch, "head": head, "acked": acked}))
    if acked < head:
        typer.echo(f"error: {head - acked} record(s) not acknowledged within {timeout_s:g} s", err=True)
        raise typer.Exit(1)


@app.command()
def request(config: Path = typer.Option(..., "--config", help="This party's file: endpoint, user, password, TLS."),
            site: str = typer.Option(..., "--site", help="The site id to ask."),
            action: str = typer.Argument(..., help="acknowledge, shelve or unshelve"),
            alarm_id: int = typer.Argument(..., help="The alarm's id at the site (the fleet view shows it)."),
            comment: str = typer.Option("", "--comment", help="Kept with the alarm's record at the site."),
            person: str = typer.Option("", "--person", help="Who you are at this party, for the site's record."),
            minutes: float = typer.Option(0.0, "--minutes", help="How long to shelve (shelve only)."),
            timeout_s: float = typer.Option(10.0, "--timeout", help="Wait this long for the site's answer.")) -> None:
    """Ask a site for an alarm action, as this party; prints the site's answer (exit 0 done, 1 refused or none).

    The site acts only if its remote.grants allow this party the action, and then as the local account
    the grant names, whose role the site checks again (docs/remote.md)."""
    import zenoh

    from energizeos.remote import requests as remote_requests
    from energizeos.remote.config import RemoteConfigError, load_party_settings
    from energizeos.remote.party import ask, new_request
    from energizeos.remote.zenoh_link import party_config

    if action not in remote_requests.ACTIONS:
        typer.echo(f"error: action {action!r} is not one of {', '.join(remote_requests.ACTIONS)}", err=True)
        raise typer.Exit(2)
    if (action == "shelve") != (minutes > 0):
        typer.echo("error: --minutes goes with shelve, and shelve needs it", err=True)
        raise typer.Exit(2)
    try:
        party = load_party_settings(config)
        password = party.password()
    except RemoteConfigError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    try:
        session = zenoh.open(party_config(party.endpoint, party.user, password, party.tls, party.lease_s))
    except zenoh.ZError as exc:
        typer.echo(f"error: no link to {party.endpoint} as {party.user}: {exc}", err=True)
        raise typer.Exit(1) from exc
    msg = new_request(action, alarm_id, person, comment, minutes * 60.0)
    try:
        reply = ask(session, site, party.user, msg, timeout_s)
    finally:
        session.close()
    if reply is None:
        typer.echo(json.dumps({"site": site, "request_id": msg.request_id, "ok": False, "answered": False}))
        typer.echo(f"error: no answer from {site} within {timeout_s:g} s (link or site down, or no such site "
                   "for this party); ask again rather than assume", err=True)
        raise typer.Exit(1)
    typer.echo(json.dumps({"site": site, "request_id": msg.request_id, "ok": reply.ok, "answered": True,
                           "message": reply.message}))
    if not reply.ok:
        raise typer.Exit(1)
