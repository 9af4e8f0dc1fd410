"""The fleet app in a real browser: Debian's chromium driven by Playwright against
``python -m energizeos.ui.serve --app fleet`` over a fleet database built by tests/fleet_data.py.

A deep link to one site (``/Site?site=<id>``) opened while signed out shows the login form; after
signing in the manager lands on that site's page, the address still naming it. A link naming a site
the fleet database does not know says so, showing the id as written. Screenshots of a failure go to
``$ENERGIZEOS_TEST_ARTIFACTS`` (default ``var/test-artifacts/browser``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, quote, urlsplit

import pytest

from energizeos.access import accounts
from energizeos.records.db import init_db, make_engine
from tests.conftest import Proc, free_port
from tests.fleet_data import KNOWN, build_fleet
from tests.test_browser import page_text, shot, wait_http
from tests.ui_app import password_of

pytestmark = pytest.mark.integration
WAIT_MS = 60_000  # generous: the machine running the tests may be busy


@pytest.fixture
def fleet_url(procs: list[Proc], tmp_path: Path) -> Iterator[str]:
    """The fleet app on a free loopback port over the test fleet (its times around now), with a viewer;
    yields the app's URL."""
    db_url = f"sqlite:///{tmp_path / 'fleet.db'}"
    engine = make_engine(db_url)
    init_db(engine)
    build_fleet(engine, datetime.now(UTC))
    accounts.create_user(engine, None, "viewer", "viewer", password_of("viewer"))
    engine.dispose()
    # the aggregator's file gives the sites their names
    (tmp_path / "credentials").write_text("charlie-edge:secret-1\n")
    names = ", ".join(f"{site}: {name}" for site, name in KNOWN.items())
    (tmp_path / "fleet.yaml").write_text(
        "listen: [tcp/127.0.0.1:7450]\ncredentials_file: credentials\n"
        f"site_names: {{{names}}}\nparties:\n  - {{user: charlie-edge, role: site, sites: [charlie]}}\n")
    port = free_port()
    proc = Proc([sys.executable, "-m", "energizeos.ui.serve", "--app", "fleet", "--db-url", db_url,
                 "--fleet-config", str(tmp_path / "fleet.yaml"), "--port", str(port), "--address", "127.0.0.1"],
                env={"ENERGIZEOS_HOME": str(tmp_path / "home")})
    procs.append(proc)
    wait_http(f"http://127.0.0.1:{port}/_stcore/health", 60)
    yield f"http://127.0.0.1:{port}"


def sign_in(page, user: str = "viewer") -> None:
    page.get_by_role("button", name="Sign in").wait_for(timeout=WAIT_MS)
    page.get_by_role("textbox", name="User name").fill(user)
    page.get_by_role("textbox", name="Password").fill(password_of(user))
    page.get_by_role("button", name="Sign in").click()


def site_in_address(page) -> list[str]:
    return parse_qs(urlsplit(page.url).query).get("site", [])


def run_in_page(browser, name: str, steps) -> None:
    """``steps(page)`` in a fresh page (a new, signed-out session); a failure names what the page showed."""
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        steps(page)
    except Exception as exc:
        shot(page, f"fleet-{name}-at-failure")
        raise AssertionError(f"{str(exc).splitlines()[0]}\nthe address: {page.url}\n"
                             f"the page showed: {page_text(page)}") from exc
    finally:
        page.close()


def test_a_deep_link_to_a_site_survives_the_sign_in(fleet_url, browser):
    def steps(page) -> None:
        page.goto(f"{fleet_url}/Site?site=charlie")
        sign_in(page)
        page.get_by_role("heading", name="Charlie Depot").wait_for(timeout=WAIT_MS)
        assert urlsplit(page.url).path == "/Site" and site_in_address(page) == ["charlie"], page.url
        page.get_by_text("signed in as").first.wait_for(timeout=WAIT_MS)
        # the link is followed once: the Sites page stays reachable
        page.get_by_role("link", name="Sites").click()
        page.get_by_role("heading", name="Fleet", exact=True).wait_for(timeout=WAIT_MS)
        assert urlsplit(page.url).path == "/", page.url
        # and its link to a site is the same kind of address, the one a manager shares
        link = page.get_by_role("link", name=re.compile(r"^Open .+ \(\w+\)$"))
        name, site = re.fullmatch(r"Open (.+) \((\w+)\)", link.inner_text(timeout=WAIT_MS).strip()).groups()
        link.click()
        page.wait_for_url(re.compile(rf"/Site\?site={site}$"), timeout=WAIT_MS)
        page.get_by_role("heading", name=name).wait_for(timeout=WAIT_MS)

    run_in_page(browser, "deep-link", steps)


def test_a_deep_link_to_an_unknown_site_says_so(fleet_url, browser):
    # anyone can write an address: the id it names is shown as written, never as a link or formatting
    crafted = "[nowhere](https://example.invalid) **now** `x`"

    def steps(page) -> None:
        page.goto(f"{fleet_url}/Site?site={quote(crafted)}")
        sign_in(page)
        page.get_by_text(f"No site {crafted} in the fleet database.").wait_for(timeout=WAIT_MS)
        assert urlsplit(page.url).path == "/Site", page.url
        assert page.locator('a[href*="example.invalid"]').count() == 0

    run_in_page(browser, "unknown-site", steps)


def test_signing_in_without_a_link_opens_the_sites_page(fleet_url, browser):
    def steps(page) -> None:
        page.goto(fleet_url)
        sign_in(page)
        page.get_by_role("heading", name="Fleet", exact=True).wait_for(timeout=WAIT_MS)
        page.get_by_text("sites with a critical alarm").first.wait_for(timeout=WAIT_MS)
        assert urlsplit(page.url).path == "/", page.url

    run_in_page(browser, "no-link", steps)
