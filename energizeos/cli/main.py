"""The ``energizeos`` command, shaped like ``ros2``: launch, node, topic, service, bag, msgs."""

from __future__ import annotations

import itertools
import json
import os
import statistics
import sys
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from energizeos.cli import ask as ask_cli
from energizeos.cli import audit as audit_cli
from energizeos.cli import bag as bag_cli
from energizeos.cli import commission as commission_cli
from energizeos.cli import db as db_cli
from energizeos.cli import evidence as evidence_cli
from energizeos.cli import plan as plan_cli
from energizeos.cli import remote as remote_cli
from energizeos.cli import report as report_cli
from energizeos.cli import sim as sim_cli
from energizeos.cli import simulate as simulate_cli
from energizeos.cli import tariff as tariff_cli
from energizeos.cli import users as users_cli

app = typer.Typer(help="EnergizeOS: energy-management system for C&I battery microgrids.", no_args_is_help=True)
node_app = typer.Typer(help="Nodes of the running graph.", no_args_is_help=True)
topic_app = typer.Typer(help="Topics of the running graph.", no_args_is_help=True)
service_app = typer.Typer(help="Services of the running graph.", no_args_is_help=True)
msgs_app = typer.Typer(help="Message interfaces (.msg/.srv).", no_args_is_help=True)
app.add_typer(node_app, name="node")
app.add_typer(topic_app, name="topic")
app.add_typer(service_app, name="service")
app.add_typer(bag_cli.app, name="bag")
app.add_typer(users_cli.app, name="users")
app.add_typer(remote_cli.app, name="remote")
app.add_typer(msgs_app, name="msgs")
app.add_typer(sim_cli.app, name="sim")
app.add_typer(simulate_cli.app, name="simulate")
app.add_typer(audit_cli.app, name="audit")
app.add_typer(evidence_cli.app, name="evidence")
app.add_typer(commission_cli.app, name="commission")
app.add_typer(db_cli.app, name="db")
app.add_typer(tariff_cli.app, name="tariff")
app.add_typer(report_cli.app, name="report")
app.add_typer(ask_cli.app, name="assistant")
app.command("ask")(ask_cli.ask)
app.command("plan")(plan_cli.plan)
console = Console()
REPO_ROOT = Path(__file__).resolve().parents[2]


def _find_launch_file(name: str) -> str:
    """A path, or a short name looked up in ./launch and the repository's launch/ folder."""
    if Path(name).is_file():
        return name
    for folder in (Path("launch"), REPO_ROOT / "launch"):
        for candidate in (folder / name, folder / f"{name}.launch.py"):
            if candidate.is_file():
                return str(candidate)
    return name  # the loader reports it as missing, with the path


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def launch(
    ctx: typer.Context,
    file: str = typer.Argument(..., help="Launch file path or name (e.g. sim_site)."),
    router: str = typer.Option(
        os.environ.get("ENERGIZEOS_ZENOH_CONNECT", "tcp/127.0.0.1:7447").split(",")[0],
        help="Zenoh router endpoint the launch hosts and the nodes connect to.",
    ),
    no_router: bool = typer.Option(False, "--no-router", help="Do not host a router (one runs elsewhere)."),
) -> None:
    """Start one process per node of a launch file; name:=value sets launch arguments."""
    from energizeos.home import subdir
    from energizeos.launch.description import LaunchError
    from energizeos.launch.loader import parse_launch_arguments
    from energizeos.launch.runner import run_launch_file

    try:
        arguments = parse_launch_arguments(list(ctx.args))
    except LaunchError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(2) from None
    run_dir = subdir("launch") / time.strftime("%Y%m%d-%H%M%S")
    code = run_launch_file(_find_launch_file(file), arguments, run_dir, None if no_router else router)
    raise typer.Exit(code)


@app.command()
def router(listen: str = typer.Option("tcp/127.0.0.1:7447", help="Endpoint to listen on.")) -> None:
    """Run a standalone Zenoh router (for graphs started without launch)."""
    import signal
    import threading

    from energizeos.runtime.zenoh_executor import open_router

    session = open_router([listen])
    console.print(f"zenoh router listening on {listen}; Ctrl-C to stop")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stop.wait()
    except KeyboardInterrupt:
        pass
    session.close()


# --- node ------------------------------------------------------------------------------------
@node_app.command("list")
def node_list() -> None:
    """Nodes alive in the graph (from their liveliness tokens)."""
    from energizeos.cli.graph_tools import cli_node, discover

    with cli_node() as (executor, me):
        discover(executor)
        nodes = executor.graph_nodes()
    for name, namespace in nodes:
        if name != me.get_name():
            print(f"{namespace.rstrip('/')}/{name}")


# --- topic -----------------------------------------------------------------------------------
@topic_app.command("list")
def topic_list(show_types: bool = typer.Option(False, "-t", "--show-types")) -> None:
    """Topics with at least one publisher or subscription."""
    from energizeos.cli.graph_tools import cli_node, discover, print_names

    with cli_node() as (executor, _):
        discover(executor)
        print_names(executor.graph_topics(), show_types)


def _topic_type(executor, topic: str, given: str) -> str:
    from energizeos.cli.graph_tools import wait_for_topic_type

    type_name = given or wait_for_topic_type(executor, topic, 5.0)
    if not type_name:
        console.print(f"[red]error:[/] no publisher on {topic} to learn its type from; give --type")
        raise typer.Exit(1)
    return type_name


@topic_app.command("echo")
def topic_echo(
    topic: str,
    msg_type: str = typer.Option("", "--type", help="Message type; discovered from the graph if omitted."),
    count: int = typer.Option(0, "--count", "-n", help="Exit after N messages (0: until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    timeout: float = typer.Option(0.0, help="Give up after this many seconds (0: never)."),
) -> None:
    """Print messages on a topic (YAML documents, or JSON lines with --json)."""
    import yaml

    from energizeos.cli.graph_tools import cli_node, message_type_or_exit
    from energizeos.runtime.qos import QoSProfile

    received = 0
    with cli_node() as (executor, node):
        cls = message_type_or_exit(_topic_type(executor, topic, msg_type))

        def show(msg: object) -> None:
            nonlocal received
            if count and received >= count:
                return  # already queued behind the last one we wanted
            received += 1
            data = msg.to_dict()  # type: ignore[attr-defined]
            if as_json:
                print(json.dumps(data), flush=True)
            else:
                print(yaml.safe_dump(data, sort_keys=False).rstrip() + "\n---", flush=True)
            if count and received >= count:
                executor.request_stop()

        node.create_subscription(cls, topic, show, QoSProfile(depth=100))
        end = time.monotonic() + timeout if timeout else None
        try:
            while not executor._stop.is_set() and (end is None or time.monotonic() < end):
                executor.spin_once(0.1)
        except KeyboardInterrupt:
            pass
    if count and received < count:
        raise typer.Exit(1)


@topic_app.command("pub")
def topic_pub(
    topic: str,
    msg_type: str,
    values: str = typer.Argument("{}", help="Field values as YAML, e.g. \"{p_kw: 100.0}\"."),
    times: int = typer.Option(1, "--times", "-t", help="Publish this many times."),
    rate: float = typer.Option(1.0, "--rate", "-r", help="Publications per second."),
    wait_matching: float = typer.Option(2.0, help="Seconds to wait for a subscriber before publishing."),
) -> None:
    """Publish a message built from YAML field values."""
    from energizeos.cli.graph_tools import build_message, cli_node, message_type_or_exit, parse_yaml_fields

    cls = message_type_or_exit(msg_type)
    msg = build_message(cls, parse_yaml_fields(values, "values"))
    with cli_node() as (executor, node):
        pub = node.create_publisher(cls, topic, 10)
        executor._wait_for(lambda: pub.get_subscription_count() > 0, wait_matching)
        for i in range(times):
            pub.publish(msg)
            if i + 1 < times:
                executor.spin_for(1.0 / rate)
        executor.spin_for(0.2)  # let the samples leave before the session closes
    print(f"published {times} x {cls.__msgtype__} on {topic}")


@topic_app.command("hz")
def topic_hz(
    topic: str,
    msg_type: str = typer.Option("", "--type"),
    window: float = typer.Option(5.0, help="Measure for this many seconds."),
) -> None:
    """Average publishing rate of a topic, with jitter."""
    from energizeos.cli.graph_tools import cli_node, message_type_or_exit

    stamps: list[float] = []
    with cli_node() as (executor, node):
        cls = message_type_or_exit(_topic_type(executor, topic, msg_type))
        node.create_subscription(cls, topic, lambda _m: stamps.append(time.monotonic()), 100, raw=True)
        executor.spin_for(window)
    if len(stamps) < 2:
        print(f"{topic}: {len(stamps)} message(s) in {window:.1f} s: no rate")
        raise typer.Exit(1)
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    mean = statistics.fmean(gaps)
    print(f"average rate: {1 / mean:.3f} Hz\n\tmin: {min(gaps):.4f}s max: {max(gaps):.4f}s "
          f"std dev: {statistics.pstdev(gaps):.5f}s window: {len(stamps)}")


# --- service ---------------------------------------------------------------------------------
@service_app.command("list")
def service_list(show_types: bool = typer.Option(False, "-t", "--show-types")) -> None:
    from energizeos.cli.graph_tools import cli_node, discover, print_names

    with cli_node() as (executor, _):
        discover(executor)
        print_names(executor.graph_services(), show_types)


@service_app.command("call")
def service_call(
    name: str,
    srv_type: str,
    values: str = typer.Argument("{}", help="Request fields as YAML."),
    timeout: float = typer.Option(5.0, help="Seconds to wait for the answer."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Call a service with a request built from YAML and print the response."""
    import yaml

    from energizeos.cli.graph_tools import build_message, call_service, parse_yaml_fields, service_type_or_exit

    cls = service_type_or_exit(srv_type)
    request = build_message(cls.Request, parse_yaml_fields(values, "request"))
    data = call_service(cls, name, request, timeout).to_dict()
    print(json.dumps(data) if as_json else yaml.safe_dump(data, sort_keys=False).rstrip())


# --- msgs ------------------------------------------------------------------------------------
@msgs_app.command("generate")
def msgs_generate(check: bool = typer.Option(False, "--check", help="Only check they are up to date.")) -> None:
    """Regenerate the Python classes from msgs/msg/*.msg and msgs/srv/*.srv."""
    from energizeos_msgs import _codegen

    raise typer.Exit(_codegen.main(["--check"] if check else []))


@msgs_app.command("list")
def msgs_list() -> None:
    from energizeos_msgs import interface_names

    for name in interface_names():
        print(name)


@msgs_app.command("show")
def msgs_show(type_name: str) -> None:
    """Print an interface definition."""
    from energizeos_msgs._typestore import interface_files, normalize_type_name

    wanted = normalize_type_name(type_name)
    for name, path in interface_files():
        if name in (wanted, wanted.replace("/msg/", "/srv/")):
            print(path.read_text().rstrip())
            return
    console.print(f"[red]error:[/] unknown interface {type_name}")
    raise typer.Exit(1)


@app.command()
def graph(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every node with its publishers, subscriptions and services."""
    from energizeos.cli.graph_tools import cli_node, discover

    with cli_node() as (executor, me):
        discover(executor)
        entities = [e for e in executor.graph_entities() if e.node_name != me.get_name()]
    if as_json:
        print(json.dumps([{"kind": e.kind, "node": e.node_name, "namespace": e.namespace, "name": e.name,
                           "type": e.type_name} for e in entities]))
        return
    table = Table("node", "kind", "name", "type")
    kinds = {"NN": "node", "MP": "publishes", "MS": "subscribes", "SS": "serves", "SC": "calls"}
    for e in sorted(entities, key=lambda e: (e.namespace, e.node_name, e.kind, e.name)):
        table.add_row(f"{e.namespace.rstrip('/')}/{e.node_name}", kinds.get(e.kind, e.kind), e.name, e.type_name)
    console.print(table)


def main() -> None:  # pragma: no cover - console entry point
    sys.exit(app())


if __name__ == "__main__":
    app()
