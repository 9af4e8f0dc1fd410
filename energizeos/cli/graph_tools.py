"""Helpers shared by the graph commands (node/topic/service): a short-lived CLI node."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import typer
import yaml

from energizeos.runtime.node import Node
from energizeos.runtime.zenoh_executor import ZenohExecutor
from energizeos_msgs import Message, message_class
from energizeos_msgs._typestore import normalize_type_name

DISCOVERY_S = 1.0  # time for liveliness tokens of a running graph to arrive


@contextmanager
def cli_node() -> Iterator[tuple[ZenohExecutor, Node]]:
    """A short-lived node for one command; its session is closed whatever happens."""
    executor = ZenohExecutor()
    try:
        yield executor, Node(f"energizeos_cli_{os.getpid()}", executor=executor)
    finally:
        executor.shutdown()


def discover(executor: ZenohExecutor, seconds: float = DISCOVERY_S) -> None:
    executor.spin_for(seconds)


def wait_for_topic_type(executor: ZenohExecutor, topic: str, timeout_s: float) -> str | None:
    end = time.monotonic() + timeout_s
    while time.monotonic() < end:
        types = dict(executor.graph_topics()).get(topic)
        if types:
            return types[0]
        executor.spin_once(0.1)
    return None


def message_type_or_exit(type_name: str) -> type[Message]:
    try:
        return message_class(normalize_type_name(type_name))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc


def service_type_or_exit(type_name: str) -> type:
    from energizeos_msgs import srv

    name = normalize_type_name(type_name).replace("/msg/", "/srv/", 1)
    cls = getattr(srv, name.split("/")[-1], None)
    if cls is None or getattr(cls, "__srvtype__", None) != name:
        raise typer.BadParameter(f"unknown service type {type_name!r}; known: {', '.join(srv.__all__)}")
    return cls


def parse_yaml_fields(text: str, what: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{what}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{what}: expected a mapping like \"{{p_kw: 100.0}}\", got {type(data).__name__}")
    return data


def call_service(srv_type: type, name: str, request: Any, timeout: float, unavailable: str = "") -> Any:
    """One blocking service call from the CLI; a clear error and exit 1 when it cannot be made."""
    from rich.console import Console

    from energizeos.runtime.node import ServiceCallError

    console = Console(stderr=True)
    with cli_node() as (_executor, node):
        client = node.create_client(srv_type, name)
        if not client.wait_for_service(timeout):
            console.print(f"[red]error:[/] {unavailable or f'service {name} is not available'}")
            raise typer.Exit(1)
        try:
            return client.call(request, timeout)
        except ServiceCallError as exc:
            console.print(f"[red]error:[/] {exc}")
            raise typer.Exit(1) from None


def print_names(entries: list[tuple[str, list[str]]], show_types: bool) -> None:
    for name, types in entries:
        print(f"{name} [{', '.join(types)}]" if show_types else name)


def build_message(cls: type[Message], data: dict[str, Any]) -> Message:
    try:
        msg = cls.from_dict(data)
        msg.check_fields()
        return msg
    except (TypeError, ValueError) as exc:
        raise typer.BadParameter(str(exc)) from exc
