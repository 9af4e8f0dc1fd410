"""A remote party's side of a request: send one alarm action to a site and wait for its answer."""

from __future__ import annotations

import queue
import secrets
import time

import zenoh

from energizeos.remote import requests
from energizeos.remote.protocol import ProtocolError


def new_request(action: str, alarm_id: int, person: str = "", comment: str = "", shelve_s: float = 0.0,
                now_ns: int | None = None) -> requests.RequestMsg:
    """A request with a fresh random id, stamped now (the edge refuses it once it is too old)."""
    return requests.RequestMsg(secrets.token_hex(12), time.time_ns() if now_ns is None else now_ns, action,
                               alarm_id, person, comment, shelve_s)


def ask(session: zenoh.Session, site: str, party: str, request: requests.RequestMsg,
        timeout_s: float = 10.0) -> requests.ReplyMsg | None:
    """Put ``request`` as ``party`` and wait for the site's reply to it; None when none came in time
    (the link or the site is down, or the router does not let this party send to that site)."""
    replies: queue.SimpleQueue[bytes] = queue.SimpleQueue()
    sub = session.declare_subscriber(requests.reply_key(site, party), lambda s: replies.put(s.payload.to_bytes()))
    try:
        time.sleep(0.2)  # let the router learn of the subscription before the answer can come back
        session.put(requests.request_key(site, party), requests.encode_request(request))
        end = time.monotonic() + timeout_s
        while (left := end - time.monotonic()) > 0:
            try:
                reply = requests.decode_reply(replies.get(timeout=left))
            except queue.Empty:
                break
            except ProtocolError:
                continue
            if reply.request_id == request.request_id:
                return reply
        return None
    finally:
        sub.undeclare()
