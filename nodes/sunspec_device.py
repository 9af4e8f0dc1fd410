"""Device nodes for SunSpec devices: discover the model chain once per connection, then read
whole models and decode them with the same layout code the simulator builds its registers with."""

from __future__ import annotations

from energizeos.nodes.device_link import LinkError
from energizeos.nodes.device_node import DeviceNode
from energizeos.sim.maps.sunspec import SunSpecLayout, SunSpecMapError


class SunSpecDeviceNode(DeviceNode):
    required_models: tuple[int, ...] = ()

    def __init__(self, name: str, **kwargs) -> None:
        super().__init__(name, **kwargs)
        self.base_address = self.declare_parameter("sunspec_base", 40000).value
        self.layout: SunSpecLayout | None = None

    def read_models(self, *model_ids: int) -> dict[int, dict]:
        if self.layout is None:
            try:
                layout = SunSpecLayout.from_model_chain(self.link.read, base=self.base_address)
            except SunSpecMapError as exc:
                raise LinkError(f"not a SunSpec device at {self.base_address}: {exc}") from exc
            missing = [m for m in self.required_models if m not in layout.model_ids]
            if missing:
                raise LinkError(f"SunSpec device lacks model(s) {missing}; it has {layout.model_ids}")
            self.layout = layout
            self.get_logger().info(f"{self.device}: SunSpec models {layout.model_ids}")
        try:
            return {m: self.layout.read_model(m, self.link.read) for m in model_ids}
        except LinkError:
            self.layout = None  # rediscover after the link returns: the device may have changed
            raise
