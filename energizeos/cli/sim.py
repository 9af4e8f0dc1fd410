"""``energizeos sim serve|inject|faults``: the simulated plant and its fault-injection interface."""

from __future__ import annotations

import json

import typer
from rich.console import Console

app = typer.Typer(help="The simulated plant (Modbus TCP devices with physics).", no_args_is_help=True)
console = Console(stderr=True)


@app.command()
def serve(
    params: list[str] = typer.Option([], "--param", "-p", help="Node parameter NAME:=VALUE (e.g. meter_port:=15021)."),
) -> None:
    """Run the plant alone: four Modbus TCP devices on loopback and the /sim/inject service."""
    from energizeos.nodes import sim_plant

    args = ["--ros-args"]
    for p in params:
        args += ["-p", p]
    sim_plant.main(args)


@app.command()
def faults() -> None:
    """List the faults the plant can simulate."""
    from energizeos.sim.site import ALL_FAULTS, DEVICES

    for fault in ALL_FAULTS:
        suffix = f"  (--device {'|'.join(DEVICES)})" if fault in ("comms_loss", "stuck") else ""
        print(fault + suffix)


@app.command()
def inject(
    fault: str,
    device: str = typer.Option("", "--device", "-d", help="meter, relay, bms or pcs (comms_loss, stuck)."),
    param: list[str] = typer.Option([], "--param", "-p", help="Fault parameter KEY=VALUE, e.g. rack=2."),
    clear: bool = typer.Option(False, "--clear", help="Clear the fault instead."),
    timeout: float = typer.Option(5.0),
) -> None:
    """Inject (or clear) a fault in the running simulated plant."""
    import yaml

    from energizeos.cli.graph_tools import call_service
    from energizeos_msgs.srv import SimFault

    values = {}
    for item in param:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"parameter {item!r} must be KEY=VALUE")
        values[key] = yaml.safe_load(text)
    request = SimFault.Request(fault=fault, device=device, params_json=json.dumps(values), clear=clear)
    response = call_service(SimFault, "/sim/inject", request, timeout,
                            "/sim/inject is not available: is the simulated site running?")
    if not response.success:
        console.print(f"[red]error:[/] {response.message}")
        raise typer.Exit(1)
    print(response.message)
