"""Start the app: make sure the site has an admin (the first start creates ``admin`` with a random
password, printed here once and stored only hashed), then become the Streamlit server.

    python -m energizeos.ui.serve --site-config config/sim_site.yaml [--port 8501] [--address 127.0.0.1]
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from energizeos.access.accounts import FIRST_ADMIN, ensure_first_admin
from energizeos.records.db import init_db, make_engine
from energizeos.site_config import SiteConfigError, load_site_config

APP = Path(__file__).resolve().parent / "app.py"


def first_admin_banner(password: str) -> str:
    line = "=" * 72
    return (f"{line}\nFirst start: created the app's administrator account.\n"
            f"    user name: {FIRST_ADMIN}\n    password:  {password}\n"
            "This password is shown only now and stored only as a hash. Sign in, then create a named account\n"
            f"for each person (Users & settings) or with `energizeos users add`.\n{line}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="energizeos-ui")
    parser.add_argument("--site-config", default="config/sim_site.yaml")
    parser.add_argument("--port", type=int, default=None, help="default: the site config's ui.port")
    parser.add_argument("--address", default=None, help="default: the site config's ui.address (127.0.0.1)")
    args = parser.parse_args(argv)
    try:
        config = load_site_config(args.site_config)
    except SiteConfigError as exc:
        sys.exit(f"error: {exc}")
    engine = make_engine(config.records.db_url or None)
    init_db(engine)
    password = ensure_first_admin(engine)
    if password is not None:
        print(first_admin_banner(password), flush=True)
    engine.dispose()
    os.environ["ENERGIZEOS_SITE_CONFIG"] = str(Path(args.site_config).resolve())
    command = [sys.executable, "-m", "streamlit", "run", str(APP),
               "--server.address", args.address or config.ui.address, "--server.port", str(args.port or config.ui.port),
               "--server.headless", "true", "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer"]
    os.execv(sys.executable, command)  # the same process: the launch supervisor keeps its PID


if __name__ == "__main__":
    main()
