"""Page load of the operator app in a real browser (Debian's chromium, headless, driven by Playwright)
against the running simulated site: median over fresh browser sessions of

- login page: navigation start to the "Sign in" button;
- overview: the "Sign in" click to the first live value on the Overview (SOC shown);
- every other page: the click in the navigation to the end of the page's script run.

    .venv/bin/python bench/bench_ui.py [--sessions 5] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

try:
    from bench import _common as common
except ImportError:  # run as a script: bench/ is on sys.path
    import _common as common

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
PAGES = ("Alarms", "Assistant", "Reports", "Plan", "Commissioning", "Evidence & audit", "Users & settings")
GOAL_S = 3.0


def start_site(home: Path) -> tuple[subprocess.Popen, str, str]:
    """The simulated site with its app on free loopback ports; (process, url, admin password)."""
    ports = {d: common.free_loopback_port() for d in ("meter", "relay", "bms", "pcs")}
    ui_port, router_port = common.free_loopback_port(), common.free_loopback_port()
    config = home / "site.yaml"
    config.write_text("devices:\n" + "".join(f"  {d}:\n    port: {p}\n" for d, p in ports.items()))
    env = {**os.environ, "ENERGIZEOS_HOME": str(home), "ENERGIZEOS_ZENOH_CONNECT": f"tcp/127.0.0.1:{router_port}",
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "energizeos"), "launch", "sim_site",
                             f"site_config:={config}", f"ui_port:={ui_port}", "--router",
                             f"tcp/127.0.0.1:{router_port}"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, env=env, cwd=common.REPO_ROOT)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True).start()  # keep the pipe drained
    end = time.monotonic() + 180
    # the first-start banner, then the assistant's index (the last node to be ready)
    while not any("answering from" in line for line in lines):
        if time.monotonic() > end or proc.poll() is not None:
            raise SystemExit("the site did not come up within 180 s:\n" + "".join(lines[-30:]))
        time.sleep(0.2)
    password = next(line.split("password:  ", 1)[1].strip() for line in lines if "password:  " in line)
    url = f"http://127.0.0.1:{ui_port}"
    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=10):
        pass
    return proc, url, password


def wait_idle(page) -> None:
    time.sleep(0.2)  # the run starts after the click's round trip
    page.wait_for_function("() => !document.querySelector('[data-testid=stStatusWidget]')", timeout=30_000,
                           polling=50)


def one_session(browser, url: str, password: str) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    timing: dict[str, float] = {}
    started = time.perf_counter()
    page.goto(url)
    page.get_by_role("button", name="Sign in").wait_for(timeout=30_000)
    timing["login page"] = time.perf_counter() - started
    page.get_by_role("textbox", name="User name").fill("admin")
    page.get_by_role("textbox", name="Password").fill(password)
    started = time.perf_counter()
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_function("() => [...document.querySelectorAll('[data-testid=stMetricValue]')]"
                           ".some(e => e.innerText.trim().endsWith('%'))", timeout=30_000, polling=50)
    timing["overview (after sign-in)"] = time.perf_counter() - started
    for name in PAGES:
        started = time.perf_counter()
        page.get_by_role("link", name=name).click()
        page.get_by_role("heading", name=re.compile(name)).first.wait_for(timeout=30_000)
        wait_idle(page)
        timing[name] = time.perf_counter() - started
    page.close()
    return timing


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=5)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="energizeos-bench-ui-") as tmp:
        proc, url, password = start_site(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
                runs = [one_session(browser, url, password) for _ in range(args.sessions)]
                browser.close()
        finally:  # SIGINT: the launch's ordered shutdown (PCS to 0 kW first)
            proc.send_signal(signal.SIGINT)
            common.stop_process(proc, timeout=40)
    medians = {name: round(statistics.median(r[name] for r in runs), 3) for name in runs[0]}
    worst = {name: round(max(r[name] for r in runs), 3) for name in runs[0]}
    result = {"sessions": args.sessions, "median_s": medians, "max_s": worst, "goal_s": GOAL_S,
              "met": all(v < GOAL_S for v in medians.values())}
    for name in medians:
        print(f"{name:28s} median {medians[name]:6.2f} s   worst {worst[name]:6.2f} s")
    print(json.dumps(result))
    common.write_json(args.json or None, result)


if __name__ == "__main__":
    main()
