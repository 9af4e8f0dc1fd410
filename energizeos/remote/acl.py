"""The aggregator router's access-control list, built from the parties of the fleet file.

Default deny. Zenoh checks each message at the router, per user: ``ingress`` is what a party
sends in, ``egress`` what the router passes out to it. A subscription is itself a message
(``declare_subscriber``), so every party that reads gets an explicit rule for it, or nothing flows.
No rule anywhere names a key outside ``fleet/<site>/...``: the edge's command topics are not on
this router at all (see energizeos/remote/__init__.py).
"""

from __future__ import annotations

from typing import Any

from energizeos.remote import protocol
from energizeos.remote.config import Party


def _rule(rule_id: str, messages: list[str], flow: str, keys: list[str]) -> dict[str, Any]:
    return {"id": rule_id, "messages": messages, "flows": [flow], "permission": "allow", "key_exprs": keys}


def _keys(sites: list[str], *leaves: str) -> list[str]:
    return [protocol.key(site, leaf) for site in sites for leaf in leaves]


def party_rules(party: Party) -> list[dict[str, Any]]:
    """The rules one party gets (ids are unique per party)."""
    sites, who = party.sites, party.user
    if party.role == "site":
        return [
            _rule(f"{who}-sends", ["put"], "ingress", _keys(sites, "batch", "status", "reply/*")),
            # the others' subscriptions must reach the site, or its session drops every put unheard
            _rule(f"{who}-learns", ["declare_subscriber"], "egress", _keys(sites, "batch", "status", "reply/*")),
            _rule(f"{who}-declares", ["declare_subscriber"], "ingress", _keys(sites, "ack", "request/*")),
            _rule(f"{who}-hears", ["put"], "egress", _keys(sites, "ack", "request/*")),
        ]
    rules = [
        _rule(f"{who}-declares", ["declare_subscriber"], "ingress", _keys(sites, "batch", "status")),
        _rule(f"{who}-hears", ["put"], "egress", _keys(sites, "batch", "status")),
    ]
    if party.role == "operator":
        # Under its own name only: the key of a request proves who sent it (energizeos/remote/requests.py).
        mine, answers = _keys(sites, f"request/{who}"), _keys(sites, f"reply/{who}")
        rules += [
            _rule(f"{who}-requests", ["put"], "ingress", mine),
            _rule(f"{who}-learns", ["declare_subscriber"], "egress", mine),
            _rule(f"{who}-awaits", ["declare_subscriber"], "ingress", answers),
            _rule(f"{who}-answered", ["put"], "egress", answers),
        ]
    return rules


def access_control(parties: list[Party]) -> dict[str, Any]:
    """The ``access_control`` section of the router's Zenoh configuration."""
    rules, subjects, policies = [], [], []
    for party in parties:
        mine = party_rules(party)
        rules += mine
        subjects.append({"id": f"user-{party.user}", "usernames": [party.user]})
        policies.append({"rules": [r["id"] for r in mine], "subjects": [f"user-{party.user}"]})
    return {"enabled": True, "default_permission": "deny", "rules": rules, "subjects": subjects,
            "policies": policies}
