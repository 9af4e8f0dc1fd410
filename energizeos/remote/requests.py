"""Requests a remote party sends to an edge, and the edge's decision on each — pure and clock-injected.

A request travels on ``fleet/<site>/request/<party>``. The aggregator's router lets a party put only
under its *own* name (energizeos/remote/acl.py), so the key names who sent it and the body cannot
claim otherwise; the answer goes back on ``fleet/<site>/reply/<party>``.

Only alarm actions cross: acknowledge, shelve, unshelve. Nothing that moves power — set-points,
dispatch modes, plans, the breaker — can be asked for from outside the site. Three locks, all needed:

1. the router's access-control list (the party is an ``operator`` of this site);
2. the edge's own grants (``remote.grants`` in the site config: which party, which actions, acting as
   which local account) — an edge grants nothing unless its owner wrote it down;
3. the alarm manager's role check of that local account in the site's user database (disable the
   account and every grant that uses it stops at once).

A request must also be fresh: one older than ``max_request_age_s`` (sent while the link was down and
delivered late) or stamped in the future (a wrong clock) is refused, and an id is acted on once.
A party sending more than ``per_minute`` requests in a minute is refused without a record of each
(a runaway script must not flood the site's records).
"""

from __future__ import annotations

import json
import re
from collections import OrderedDict, deque
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from energizeos.remote.protocol import MAX_TIME_NS, ProtocolError, dumps_message, load_message

ACTIONS = ("acknowledge", "shelve", "unshelve")
Action = Literal["acknowledge", "shelve", "unshelve"]
PARTY = r"^[A-Za-z0-9_.@-]{1,64}$"  # the same form as a party's user name at the router
REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
MAX_TEXT = 500  # characters of person or comment kept
NS_PER_S = 1_000_000_000


class Grant(BaseModel):
    """What one remote party may ask of this edge (``remote.grants`` in the site config)."""

    model_config = ConfigDict(extra="forbid")

    party: str = Field(pattern=PARTY)  # its user name at the aggregator's router
    # the site account it acts as (the form of energizeos.access.accounts.USERNAME): its role is
    # checked at every request
    as_user: str = Field(pattern=r"^[a-z][a-z0-9._-]{1,31}$")
    actions: list[Action] = Field(min_length=1)

    def as_parameter(self) -> str:
        """One item of the uplink's ``grants`` string-array parameter: ``party=as_user:action,action``."""
        return f"{self.party}={self.as_user}:{','.join(self.actions)}"

    @classmethod
    def from_parameter(cls, text: str) -> Grant:
        party, _, rest = str(text).partition("=")
        as_user, _, actions = rest.partition(":")
        if not party or not as_user or not actions:
            raise ValueError(f"grant {text!r} is not 'party=as_user:action,action'")
        return cls(party=party, as_user=as_user, actions=actions.split(","))


@dataclass(frozen=True)
class RequestMsg:
    request_id: str
    time_ns: int  # when the party sent it (its clock)
    action: str  # one of ACTIONS
    alarm_id: int
    person: str = ""  # who at the party, for the record (the party itself is proven by the key)
    comment: str = ""
    shelve_s: float = 0.0


@dataclass(frozen=True)
class ReplyMsg:
    request_id: str
    ok: bool
    message: str
    time_ns: int


def request_key(site: str, party: str) -> str:
    return f"fleet/{site}/request/{party}"


def reply_key(site: str, party: str) -> str:
    return f"fleet/{site}/reply/{party}"


def party_of(key_expr: str) -> str:
    """The sending party, from ``fleet/<site>/request/<party>``."""
    parts = str(key_expr).split("/")
    if len(parts) != 4 or parts[0] != "fleet" or parts[2] != "request" or not re.match(PARTY, parts[3]):
        raise ProtocolError(f"key {key_expr!r} is not fleet/<site>/request/<party>")
    return parts[3]


def encode_request(msg: RequestMsg) -> bytes:
    return dumps_message({"id": msg.request_id, "t": msg.time_ns, "action": msg.action, "alarm_id": msg.alarm_id,
                          "person": msg.person, "comment": msg.comment, "shelve_s": msg.shelve_s})


def encode_reply(msg: ReplyMsg) -> bytes:
    return dumps_message({"id": msg.request_id, "ok": msg.ok, "message": msg.message, "t": msg.time_ns})


def _int(data: dict[str, Any], name: str, what: str) -> int:
    value = data.get(name)
    if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= MAX_TIME_NS:
        raise ProtocolError(f"{what}: field {name!r} missing or not a whole number in range")
    return value


def _text(data: dict[str, Any], name: str, what: str) -> str:
    value = data.get(name, "")
    if not isinstance(value, str):
        raise ProtocolError(f"{what}: field {name!r} not text")
    return value[:MAX_TEXT]


def decode_request(payload: bytes) -> RequestMsg:
    data = load_message(payload, "request")
    request_id = data.get("id")
    if not isinstance(request_id, str) or not REQUEST_ID.match(request_id):
        raise ProtocolError("request: field 'id' missing or not 8-64 letters, digits, '-' or '_'")
    action = data.get("action")
    if action not in ACTIONS:
        raise ProtocolError(f"request: action {action!r} is not one of {', '.join(ACTIONS)}")
    shelve_s = data.get("shelve_s", 0.0)
    if not isinstance(shelve_s, int | float) or isinstance(shelve_s, bool) or not 0 <= shelve_s <= 30 * 86400:
        raise ProtocolError("request: field 'shelve_s' not a number of seconds from 0 to 30 days")
    if action == "shelve" and shelve_s <= 0:
        raise ProtocolError("request: a shelve needs shelve_s > 0")
    return RequestMsg(request_id, _int(data, "t", "request"), action, _int(data, "alarm_id", "request"),
                      _text(data, "person", "request"), _text(data, "comment", "request"), float(shelve_s))


def request_id_of(payload: bytes) -> str:
    """The id of a request that failed to decode, when it has a good one (so its refusal can be matched)."""
    try:
        data = json.loads(bytes(payload))
    except (UnicodeDecodeError, ValueError):
        return ""
    request_id = data.get("id") if isinstance(data, dict) else None
    return request_id if isinstance(request_id, str) and REQUEST_ID.match(request_id) else ""


def decode_reply(payload: bytes) -> ReplyMsg:
    data = load_message(payload, "reply")
    ok = data.get("ok")
    if not isinstance(ok, bool):
        raise ProtocolError("reply: field 'ok' not a boolean")
    request_id = data.get("id")
    if not isinstance(request_id, str):
        raise ProtocolError("reply: field 'id' not text")
    return ReplyMsg(request_id, ok, _text(data, "message", "reply"), _int(data, "t", "reply"))


@dataclass(frozen=True)
class Verdict:
    """The edge's decision: act as ``as_user``, or refuse with ``refusal`` (which names the reason)."""

    as_user: str = ""
    refusal: str = ""
    flood: bool = False  # refused for the rate alone: answered, but not recorded one by one

    @property
    def accepted(self) -> bool:
        return not self.refusal


class RequestGate:
    """Decides each request from its party, its freshness and the grants; remembers the ids acted on.

    Pure: time comes in as ``now_ns``. The id memory is bounded (``remember`` ids); an id older than
    the age limit is refused as stale anyway, so a forgotten id cannot be replayed."""

    def __init__(self, grants: list[Grant], max_age_s: float, remember: int = 10_000, per_minute: int = 30) -> None:
        self.grants = {g.party: g for g in grants}
        self.max_age_ns = int(max_age_s * NS_PER_S)
        self.remember = remember
        self.per_minute = per_minute
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._recent: dict[str, deque[int]] = {}

    def count(self, party: str, now_ns: int) -> Verdict | None:
        """Count one message from ``party`` (a malformed one too); a refusal when it is over the rate."""
        recent = self._recent.setdefault(party, deque())
        while recent and now_ns - recent[0] >= 60 * NS_PER_S:
            recent.popleft()
        if len(recent) >= self.per_minute:
            return Verdict(refusal=f"more than {self.per_minute} requests from {party!r} within a minute: "
                                   "wait and send again", flood=True)
        recent.append(now_ns)
        return None

    def decide(self, party: str, request: RequestMsg, now_ns: int) -> Verdict:
        over = self.count(party, now_ns)
        if over is not None:
            return over
        grant = self.grants.get(party)
        if grant is None:
            return Verdict(refusal=f"party {party!r} has no grant at this site (remote.grants)")
        if request.action not in grant.actions:
            return Verdict(refusal=f"party {party!r} may not {request.action} alarms here "
                                   f"(granted: {', '.join(grant.actions)})")
        age_s = (now_ns - request.time_ns) / NS_PER_S
        if age_s > self.max_age_ns / NS_PER_S:
            return Verdict(refusal=f"request is {age_s:.1f} s old, over the {self.max_age_ns / NS_PER_S:g} s limit "
                                   "(delivered late, e.g. after a cut link): send it again if it still applies")
        if -age_s > self.max_age_ns / NS_PER_S:
            return Verdict(refusal=f"request is stamped {-age_s:.1f} s in the future: check the sender's clock")
        seen = (party, request.request_id)
        if seen in self._seen:
            return Verdict(refusal=f"request {request.request_id} was already handled")
        self._seen[seen] = None
        while len(self._seen) > self.remember:
            self._seen.popitem(last=False)
        return Verdict(as_user=grant.as_user)
