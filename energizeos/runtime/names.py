"""ROS 2 name rules: validation and expansion of node, namespace, topic and service names."""

from __future__ import annotations

import re

_NODE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOKEN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class InvalidNameError(ValueError):
    """An invalid node, namespace, topic or service name."""


def validate_node_name(name: str) -> str:
    if not _NODE_NAME.match(name or ""):
        raise InvalidNameError(
            f"invalid node name {name!r}: letters, digits and '_' only, not starting with a digit"
        )
    return name


def normalize_namespace(namespace: str | None) -> str:
    """'' or None -> '/', 'site' -> '/site'; tokens are validated."""
    ns = (namespace or "").strip()
    if not ns or ns == "/":
        return "/"
    if not ns.startswith("/"):
        ns = "/" + ns
    ns = ns.rstrip("/")
    for token in ns[1:].split("/"):
        if not _TOKEN.match(token):
            raise InvalidNameError(f"invalid namespace {namespace!r}: bad token {token!r}")
    return ns


def expand_topic_name(name: str, node_name: str, namespace: str) -> str:
    """Fully qualify a topic or service name relative to a node, as rcl does."""
    if not name:
        raise InvalidNameError("empty topic/service name")
    ns = normalize_namespace(namespace)
    if name.startswith("~"):
        if len(name) > 1 and name[1] != "/":
            raise InvalidNameError(f"invalid name {name!r}: '~' must be followed by '/'")
        base = f"{ns.rstrip('/')}/{node_name}"
        full = base + name[1:] if len(name) > 1 else base
    elif name.startswith("/"):
        full = name
    else:
        full = f"{ns.rstrip('/')}/{name}"
    return validate_topic_name(full)


def validate_topic_name(full: str) -> str:
    if not full.startswith("/") or full.endswith("/") or "//" in full:
        raise InvalidNameError(f"invalid topic/service name {full!r}")
    for token in full[1:].split("/"):
        if not _TOKEN.match(token):
            raise InvalidNameError(
                f"invalid topic/service name {full!r}: token {token!r} must be letters, digits, '_' "
                "and not start with a digit"
            )
    return full


def fully_qualified_node_name(node_name: str, namespace: str) -> str:
    ns = normalize_namespace(namespace)
    return f"{ns.rstrip('/')}/{node_name}"
