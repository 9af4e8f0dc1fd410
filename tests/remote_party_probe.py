"""A remote party trying its luck against the aggregator's router; run on another "host" (a network
namespace) by test_remote_netns.py. Prints one JSON line with what happened.

    python tests/remote_party_probe.py FLEET_DIR ENDPOINT
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import zenoh

from energizeos.remote import protocol
from energizeos.remote.config import TlsFiles
from energizeos.remote.party import ask, new_request
from energizeos.remote.zenoh_link import party_config


def main(fleet_dir: Path, endpoint: str) -> dict:
    passwords = dict(line.split(":", 1) for line in (fleet_dir / "credentials").read_text().split())

    def tls(user: str) -> TlsFiles:
        return TlsFiles(ca=fleet_dir / "ca.pem", cert=fleet_dir / f"client-{user}.pem",
                        key=fleet_dir / f"client-{user}.key")

    out: dict = {}
    try:
        zenoh.open(party_config(endpoint, "noc", "not-the-password", tls("noc"))).close()
        out["wrong_password"] = "accepted"
    except zenoh.ZError as exc:
        out["wrong_password"] = f"refused: {str(exc)[:80]}"

    # noc may watch every site; owner only site-b. Both subscribe to site-a's live records.
    sessions = {u: zenoh.open(party_config(endpoint, u, passwords[u], tls(u))) for u in ("noc", "owner")}
    heard = dict.fromkeys(sessions, 0)
    subs = [s.declare_subscriber("fleet/site-a/batch", lambda _, u=u: heard.__setitem__(u, heard[u] + 1))
            for u, s in sessions.items()]
    time.sleep(4.0)
    out["heard_site_a_batches"] = dict(heard)  # (before the forgery below, which its own session would hear)
    # the owner forging site-a's records: its put is not let in at the router
    forged = protocol.BatchMsg("site-a", "forged", 10**9, (protocol.Record(1, "events", time.time_ns(), {"x": 1}),))
    sessions["owner"].put("fleet/site-a/batch", protocol.encode_batch(forged))
    time.sleep(1.0)
    # an alarm request from each: the operator is granted at site-a, the viewer may send nothing
    for user, timeout_s in (("noc", 15.0), ("owner", 3.0)):
        reply = ask(sessions[user], "site-a", user, new_request("acknowledge", 1, "probe", "from the other host"),
                    timeout_s)
        out[f"{user}_request"] = None if reply is None else {"ok": reply.ok, "message": reply.message}
    for sub in subs:
        sub.undeclare()
    for session in sessions.values():
        session.close()
    return out


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]), sys.argv[2])), flush=True)
