"""sim_plant: the simulated site as a node. Steps the plant physics on the node clock and serves
each device's registers over Modbus TCP on loopback (meter 15021, relay 15022, BMS 15023,
PCS 15024 by default); ``/sim/inject`` injects and clears faults.

In the deterministic executor, run it with ``serve_modbus: False`` and give the device nodes
``InMemoryLink``s to ``node.site.images``: same registers, same codecs, no sockets.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

from energizeos import runtime
from energizeos.nodes.events import EventReporter
from energizeos.runtime import MIN_RATE_HZ, Node, ParameterDescriptor
from energizeos.sim.modbus_server import DeviceServer
from energizeos.sim.plant import DEFAULT_PROFILE, PlantConfig
from energizeos.sim.site import ALL_FAULTS, DEFAULT_PORTS, DEVICES, SimSite
from energizeos_msgs.srv import SimFault


class SimPlant(Node):
    def __init__(self, **kwargs) -> None:
        super().__init__("sim_plant", **kwargs)
        serve = self.declare_parameter("serve_modbus", True).value
        host = self.declare_parameter("host", "127.0.0.1", ParameterDescriptor("listen address (loopback)")).value
        ports = {d: self.declare_parameter(f"{d}_port", DEFAULT_PORTS[d], ParameterDescriptor(
            f"Modbus TCP port of the {d}", min_value=1, max_value=65535)).value for d in DEVICES}
        step_hz = self.declare_parameter("step_hz", 10.0, ParameterDescriptor(
            "physics steps per second of plant time", min_value=MIN_RATE_HZ, max_value=100.0)).value
        max_substep = self.declare_parameter("max_substep_s", 1.0, ParameterDescriptor(
            "longest physics integration sub-step; 1 s resolves the PCS lag and ramp and the relay clearing "
            "times, a coarse savings simulation may use its step", min_value=0.001, max_value=3600.0)).value
        profile = self.declare_parameter("load_profile", str(DEFAULT_PROFILE), ParameterDescriptor(
            "8760-value hourly load profile (.dat)")).value
        annual = self.declare_parameter("annual_kwh", 4_000_000.0, ParameterDescriptor(
            "annual facility consumption the profile is scaled to", min_value=1.0)).value
        seed = self.declare_parameter("seed", 1).value
        bess_kwh = self.declare_parameter("bess_kwh", 1000.0, ParameterDescriptor(
            "battery energy", min_value=1.0)).value
        pcs_kw = self.declare_parameter("pcs_kw", 500.0, ParameterDescriptor("PCS rating", min_value=1.0)).value
        soc0 = self.declare_parameter("initial_soc_pct", 50.0, ParameterDescriptor(
            "battery SOC at the start", min_value=0.0, max_value=100.0)).value
        align = self.declare_parameter("align_weekdays", False, ParameterDescriptor(
            "lay the profile's weekdays onto the simulated year's (its own calendar is 2017)")).value
        pv_kw = self.declare_parameter("pv_kw_peak", 0.0, ParameterDescriptor(
            "rooftop PV behind the POI, peak kW (0: none)", min_value=0.0)).value
        self._t0 = self.get_clock().now()
        start = datetime.fromtimestamp(self._t0.nanoseconds / 1e9, tz=UTC)
        self.site = SimSite(PlantConfig(start=start, profile=Path(profile), annual_kwh=annual, seed=seed,
                                           pv_kw_peak=pv_kw, max_substep_s=max_substep, bess_kwh=bess_kwh,
                                           pcs_kw=pcs_kw, initial_soc_pct=soc0, align_weekdays=align))
        self.servers: list[DeviceServer] = []
        if serve:
            for device in DEVICES:
                self.servers.append(DeviceServer(self.site.images[device], ports[device], host=host).start())
            self.get_logger().info("serving " + ", ".join(f"{d} on {host}:{ports[d]}" for d in DEVICES))
            self.add_on_shutdown(self.stop_servers)
        self.create_timer(1.0 / step_hz, self.step)
        self.create_service(SimFault, "/sim/inject", self.on_fault)
        self.events = EventReporter(self)

    def step(self) -> None:
        self.site.step((self.get_clock().now().nanoseconds - self._t0.nanoseconds) / 1e9)

    def on_fault(self, request: SimFault.Request, response: SimFault.Response) -> SimFault.Response:
        try:
            params = json.loads(request.params_json) if request.params_json.strip() else {}
            if not isinstance(params, dict):
                raise ValueError("params_json must be a JSON object")
            with self.site.lock:
                if request.clear:
                    self.site.clear(request.fault, request.device)
                else:
                    self.site.inject(request.fault, request.device, **params)
        except (ValueError, TypeError, IndexError, KeyError) as exc:
            response.success, response.message = False, f"{request.fault}: {exc}"
            return response
        verb = "cleared" if request.clear else "injected"
        response.success = True
        response.message = f"{verb} {request.fault}" + (f" on {request.device}" if request.device else "") + (
            f" {params}" if params else "")
        self.get_logger().warning(f"fault {response.message}")
        self.events.report("sim_fault", response.message, fault=request.fault, device=request.device,
                           clear=request.clear, params=params)
        return response

    def stop_servers(self) -> None:
        for server in self.servers:
            server.stop()


FAULTS = ALL_FAULTS


def main(args: list[str] | None = None) -> None:
    runtime.run_node(SimPlant, args)
