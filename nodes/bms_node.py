"""bms_node: the battery management system (SunSpec 802 battery + 803 lithium-ion bank)
-> /bess/bms/status, with per-rack arrays.

The BMS permissive (ready for dispatch) is derived from what the BMS reports: State CONNECTED,
contactors closed on every enabled string, and no alarm bit (warnings do not drop it).
"""

from __future__ import annotations

import math

from energizeos import runtime
from energizeos.nodes.device_node import NAN, QUALITY_GOOD, QUALITY_STALE
from energizeos.nodes.sunspec_device import SunSpecDeviceNode
from energizeos_msgs.msg import Alarm, BmsStatus

# SunSpec 802 Evt1 bits that are alarms (not warnings): any of them drops the permissive.
EVT1_ALARMS = {1: "OVER_TEMP_ALARM", 3: "UNDER_TEMP_ALARM", 5: "OVER_CHARGE_CURRENT_ALARM",
               7: "OVER_DISCHARGE_CURRENT_ALARM", 9: "OVER_VOLT_ALARM", 11: "UNDER_VOLT_ALARM",
               13: "UNDER_SOC_MIN_ALARM", 15: "OVER_SOC_MAX_ALARM", 18: "TEMPERATURE_IMBALANCE_ALARM",
               20: "CONTACTOR_ERROR", 22: "GROUND_FAULT", 25: "OTHER_ALARM", 28: "CONFIGURATION_ALARM"}
CONTACTOR_CLOSED_BIT = 1  # 803 StrSt bit 1: CONTACTOR_STATUS
LIMITS = {"soc_pct": (0.0, 100.0), "module_temp_max_c": (-40.0, 100.0), "cell_voltage_max_v": (1.5, 5.0),
          "dc_voltage_v": (0.0, 2000.0)}


def _num(value) -> float:
    return NAN if value is None else float(value)


class BmsNode(SunSpecDeviceNode):
    alarm_prefix = "BMS"
    required_models = (802, 803)

    def __init__(self, **kwargs) -> None:
        super().__init__("bms_node", default_port=15023, default_poll_hz=2.0, **kwargs)
        self.pub = self.create_publisher(BmsStatus, "/bess/bms/status", 10)

    def poll_device(self) -> None:
        models = self.read_models(802, 803)
        bat, bank = models[802], models[803]
        strings = bank.get("string") or []
        evt1 = int(bat.get("Evt1") or 0)
        alarms = [name for bit, name in EVT1_ALARMS.items() if evt1 >> bit & 1]
        enabled = [s for s in strings if int(s.get("StrSt") or 0) & 1]
        contactors = bool(enabled) and all(int(s.get("StrSt") or 0) >> CONTACTOR_CLOSED_BIT & 1 for s in enabled)
        state = int(bat.get("State") or 0)
        msg = BmsStatus(
            header=self.header("bess"), source=self.get_name(), quality=QUALITY_GOOD,
            state=state, charge_status=int(bat.get("ChaSt") or 0),
            permissive=state == BmsStatus.STATE_CONNECTED and contactors and not alarms,
            contactors_closed=contactors, alarm_bits=evt1,
            soc_pct=_num(bat.get("SoC")), soh_pct=_num(bat.get("SoH")),
            dc_voltage_v=_num(bat.get("V")), dc_current_a=_num(bat.get("A")),
            max_charge_current_a=_num(bat.get("AChaMax")), max_discharge_current_a=_num(bat.get("ADisChaMax")),
            cell_voltage_max_v=_num(bat.get("CellVMax")), cell_voltage_min_v=_num(bat.get("CellVMin")),
            module_temp_max_c=_num(bank.get("ModTmpMax")), module_temp_min_c=_num(bank.get("ModTmpMin")),
            rack_soc_pct=[_num(s.get("StrSoC")) for s in strings],
            rack_temp_max_c=[_num(s.get("StrModTmpMax")) for s in strings],
            rack_cell_voltage_max_v=[_num(s.get("StrCellVMax")) for s in strings],
            rack_cell_voltage_min_v=[_num(s.get("StrCellVMin")) for s in strings],
            rack_connected=[bool(int(s.get("StrSt") or 0) >> CONTACTOR_CLOSED_BIT & 1) for s in strings],
        )
        problems = [f"{name} {getattr(msg, name)} outside {lo}..{hi}" for name, (lo, hi) in LIMITS.items()
                    if math.isnan(getattr(msg, name)) or not lo <= getattr(msg, name) <= hi]
        if problems:
            msg.quality = BmsStatus.QUALITY_INVALID
            msg.permissive = False  # invalid data never enables dispatch
            self.get_logger().warning(f"invalid BMS data: {'; '.join(problems)}", throttle_duration_sec=10.0)
        self.pub.publish(msg)
        hottest = max(range(len(strings)), key=lambda i: msg.rack_temp_max_c[i]) if strings else 0
        self.set_condition("BMS_RACK_OVERTEMP", "OVER_TEMP_ALARM" in alarms, Alarm.PRIORITY_CRITICAL,
                           f"rack {hottest + 1} module temperature {msg.module_temp_max_c:.1f} C (alarm)",
                           {"rack": hottest + 1, "module_temp_max_c": msg.module_temp_max_c})
        self.set_condition("BMS_CONTACTOR_FAULT", "CONTACTOR_ERROR" in alarms, Alarm.PRIORITY_CRITICAL,
                           "BMS reports a contactor error; DC contactors open", {"alarm_bits": evt1})

    def publish_stale(self, reason: str) -> None:
        self.pub.publish(BmsStatus(header=self.header("bess"), source=self.get_name(), quality=QUALITY_STALE,
                                   soc_pct=NAN, soh_pct=NAN, dc_voltage_v=NAN, dc_current_a=NAN,
                                   max_charge_current_a=NAN, max_discharge_current_a=NAN, cell_voltage_max_v=NAN,
                                   cell_voltage_min_v=NAN, module_temp_max_c=NAN, module_temp_min_c=NAN))


def main(args: list[str] | None = None) -> None:
    runtime.run_node(BmsNode, args)
