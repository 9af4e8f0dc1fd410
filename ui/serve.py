"""Start the app: make sure its database has an admin (the first start creates ``admin`` with a random
password, printed here once and stored only hashed), then become the Streamlit server.

    python -m energizeos.ui.serve --site-config config/sim_site.yaml [--port 8501] [--address 127.0.0.1]
    python -m energizeos.ui.serve --app fleet [--db-url URL] [--fleet-config FILE] [--timezone ZONE]

``--app fleet`` serves the fleet view over the aggregator's database, whose accounts are its own.
``--fleet-config`` is the aggregator's file (``energizeos remote serve --config``): its ``db_url``,
its sites and their names, and ``offline_after_s``; ``--db-url`` wins over the file's ``db_url``.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from energizeos.access.accounts import FIRST_ADMIN, ensure_first_admin
from energizeos.records.db import init_db, make_engine
from energizeos.site_config import SiteConfigError, load_site_config

APP = Path(__file__).resolve().parent / "app.py"
FLEET_APP = Path(__file__).resolve().parent / "fleet_app.py"
FLEET_PORT = 8501


def first_admin_banner(password: str, fleet: bool = False) -> str:
    line = "=" * 72
    # the fleet app has no Users page: its accounts are made at the console, in the fleet database
    how = ("with `energizeos users add NAME --role viewer --db <the fleet database URL>`" if fleet
           else "(Users & settings) or with `energizeos users add`")
    return (f"{line}\nFirst start: created the {'fleet ' if fleet else ''}app's administrator account.\n"
            f"    user name: {FIRST_ADMIN}\n    password:  {password}\n"
            "This password is shown only now and stored only as a hash. Sign in, then create a named account\n"
            f"for each person {how}.\n{line}")


def _prepare_accounts(db_url: str | None, fleet: bool = False) -> None:
    engine = make_engine(db_url or None)
    init_db(engine)
    password = ensure_first_admin(engine)
    if password is not None:
        print(first_admin_banner(password, fleet), flush=True)
    engine.dispose()


def _become_streamlit(app: Path, address: str, port: int) -> None:
    command = [sys.executable, "-m", "streamlit", "run", str(app),
               "--server.address", address, "--server.port", str(port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    os.execv(sys.executable, command)  # the same process: the launch supervisor keeps its PID


def fleet_environment(args: argparse.Namespace) -> dict[str, str]:
    """The fleet app's settings as the variables it reads (``FleetSettings.from_env``)."""
    from energizeos.remote.config import RemoteConfigError, load_server_settings  # the site app needs neither
    from energizeos.ui.fleet_view import FleetSettings

    try:
        ZoneInfo(args.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        sys.exit(f"error: unknown time zone {args.timezone!r} (an IANA name such as America/Los_Angeles)")
    db_url, settings = args.db_url, FleetSettings(timezone=args.timezone)
    if args.fleet_config:
        try:
            server = load_server_settings(args.fleet_config)
        except RemoteConfigError as exc:
            sys.exit(f"error: {exc}")
        sites = {site: server.site_names.get(site, site) for site in server.site_users()}
        settings = FleetSettings(sites={**sites, **server.site_names}, offline_after_s=server.offline_after_s,
                                 timezone=args.timezone)
        db_url = db_url or server.db_url
    return settings.to_env(db_url)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="energizeos-ui")
    parser.add_argument("--app", choices=("site", "fleet"), default="site")
    parser.add_argument("--site-config", default="config/sim_site.yaml")
    parser.add_argument("--port", type=int, default=None, help="default: the site config's ui.port (fleet: 8501)")
    parser.add_argument("--address", default=None, help="default: the site config's ui.address (fleet: 127.0.0.1)")
    parser.add_argument("--db-url", default="", help="fleet: the aggregator's database (default: the fleet "
                                                     "config's, $ENERGIZEOS_DB_URL or the SQLite file)")
    parser.add_argument("--fleet-config", default="", help="fleet: the aggregator's config file")
    parser.add_argument("--timezone", default="America/Los_Angeles", help="fleet: the zone whose day is 'today'")
    args = parser.parse_args(argv)
    if args.app == "fleet":
        env = fleet_environment(args)
        from energizeos.ui.fleet_view import FLEET_DB_URL

        _prepare_accounts(env[FLEET_DB_URL], fleet=True)
        os.environ.update(env)
        _become_streamlit(FLEET_APP, args.address or "127.0.0.1", args.port or FLEET_PORT)
        return
    try:
        config = load_site_config(args.site_config)
    except SiteConfigError as exc:
        sys.exit(f"error: {exc}")
    _prepare_accounts(config.records.db_url)
    os.environ["ENERGIZEOS_SITE_CONFIG"] = str(Path(args.site_config).resolve())
    _become_streamlit(APP, args.address or config.ui.address, args.port or config.ui.port)


if __name__ == "__main__":
    main()
