"""The simulated site: the plant physics and the register images of its four devices.

``SimSite.step(t_s)`` advances the physics and refreshes every image; writes that arrive through
an image (from a Modbus client or the in-memory transport) act on the plant through the device's
own logic: the PCS takes 704 set-points, the relay supervises remote close/open/reset.
"""

from __future__ import annotations

import math
import threading

from energizeos.sim.maps.sel import DeviceMap, load_map
from energizeos.sim.maps.sunspec import SunSpecImage, build_bms_image, build_pcs_image
from energizeos.sim.plant import PLANT_FAULTS, Plant, PlantConfig
from energizeos.sim.registers import RegisterError, RegisterImage

DEVICES = ("meter", "relay", "bms", "pcs")
DEFAULT_PORTS = {"meter": 15021, "relay": 15022, "bms": 15023, "pcs": 15024}
DEVICE_FAULTS = ("comms_loss", "stuck")
# relay element names in the plant -> SEL Relay Word element names
ELEMENTS = {"UV1": "27P1", "UV2": "27P2", "OV1": "59P1", "OV2": "59P2",
            "UF1": "81U1", "UF2": "81U2", "OF1": "81O1", "OF2": "81O2"}
TRIP_CAUSE_CODES = {"": 0, "UV1": 1, "UV2": 2, "OV1": 3, "OV2": 4, "UF1": 5, "UF2": 6, "OF1": 7, "OF2": 8,
                    "REMOTE_OPEN": 9, "EXTERNAL": 10}
INV_ST = {"off": 0, "running": 3, "fault": 6, "standby": 7}


def _bits(names: dict[str, bool]) -> int:
    return sum(1 << i for i, (_name, on) in enumerate(names.items()) if on)


class SimSite:
    def __init__(self, config: PlantConfig | None = None) -> None:
        self.plant = Plant(config or PlantConfig())
        cfg = self.plant.config
        self.pcs: SunSpecImage = build_pcs_image()
        self.bms: SunSpecImage = build_bms_image(cfg.n_racks)
        self.meter_map: DeviceMap = load_map("sel735")
        self.relay_map: DeviceMap = load_map("sel700g")
        self.meter = RegisterImage(self.meter_map.base, self.meter_map.size, "meter")
        self.relay = RegisterImage(self.relay_map.base, self.relay_map.size, "relay")
        self.images: dict[str, RegisterImage] = {"meter": self.meter, "relay": self.relay,
                                                 "bms": self.bms.registers, "pcs": self.pcs.registers}
        self._meter_sequence = 0
        # One lock for physics and registers: the Modbus server threads read while the plant steps.
        self.lock = threading.RLock()
        self._synced_at: dict[str, float] = {}
        self._init_static()
        self.pcs.registers.on_write = self._on_pcs_write
        self.relay.on_write = self._on_relay_write
        self.meter.on_write = self._read_only("meter")
        self.bms.registers.on_write = self._read_only("bms")
        syncs = {"pcs": self._sync_pcs, "bms": self._sync_bms, "meter": self._sync_meter, "relay": self._sync_relay}
        for name, image in self.images.items():
            image.before_read = self._refresher(name, syncs[name])
        self.sync()

    # --- static registers (nameplates, scale factors, settings) -------------------------------
    def _init_static(self) -> None:
        cfg = self.plant.config
        pcs = self.pcs
        for model, sfs in ((701, {"W_SF": 2, "VA_SF": 2, "Var_SF": 2, "PF_SF": -3, "A_SF": -1, "V_SF": -1,
                                  "Hz_SF": -3, "TotWh_SF": 0, "TotVarh_SF": 0, "Tmp_SF": -1}),
                           (702, {"W_SF": 1, "PF_SF": -3, "VA_SF": 1, "Var_SF": 1, "V_SF": 0, "A_SF": 0, "S_SF": 0}),
                           (703, {"V_SF": -3, "Hz_SF": -3}),
                           (704, {"PF_SF": -3, "WMaxLimPct_SF": 0, "WSet_SF": 0, "WSetPct_SF": 0, "VarSet_SF": 0,
                                  "VarSetPct_SF": 0}),
                           (713, {"WH_SF": 2, "Pct_SF": -1})):
            for sf, exponent in sfs.items():
                pcs.set_sf(model, sf, exponent)
        rated_w = cfg.pcs_kw * 1000.0
        pcs.set_many(702, {"WMaxRtg": rated_w, "WMax": rated_w, "VAMaxRtg": rated_w, "VAMax": rated_w,
                           "WChaRteMaxRtg": rated_w, "WDisChaRteMaxRtg": rated_w, "VNomRtg": 480,
                           "NorOpCatRtg": 1, "AbnOpCatRtg": 1 if cfg.relay_category == "II" else 2})
        pcs.set_many(703, {"ES": 1, "ESVHi": 1.05, "ESVLo": 0.917, "ESHzHi": 60.1, "ESHzLo": 59.5,
                           "ESDlyTms": 300, "ESRndTms": 0, "ESRmpTms": 300, "ESDlyRemTms": 0})
        pcs.set_many(704, {"WSetEna": 0, "WSetMod": 1, "WSet": 0, "WSetRvrt": 0,
                           "WSetRvrtTms": round(self.plant.pcs_reversion_s), "WMaxLimPctEna": 0, "WMaxLimPct": 100})
        pcs.set_many(701, {"ACType": 2})
        pcs.set(713, "WHRtg", cfg.bess_kwh * 1000.0)
        bms = self.bms
        for sf, exponent in {"AHRtg_SF": 0, "WHRtg_SF": 2, "WChaDisChaMax_SF": 2, "DisChaRte_SF": 0, "SoC_SF": -1,
                             "DoD_SF": -1, "SoH_SF": -1, "V_SF": -1, "CellV_SF": -3, "A_SF": -1, "AMax_SF": -1,
                             "W_SF": 2}.items():
            bms.set_sf(802, sf, exponent)
        for sf, exponent in {"CellV_SF": -3, "ModTmp_SF": -1, "A_SF": -1, "SoH_SF": -1, "SoC_SF": -1,
                             "V_SF": -1}.items():
            bms.set_sf(803, sf, exponent)
        bms.set_many(802, {"WHRtg": cfg.bess_kwh * 1000.0, "AHRtg": round(cfg.bess_kwh * 1000 / 768),
                           "WChaRteMax": rated_w, "WDisChaRteMax": rated_w, "SoCMax": 100.0, "SoCMin": 0.0,
                           "Typ": 4, "LocRemCtl": 0})
        self.meter_map.encode_into(self.meter, {**self.meter_map.defaults, "ctr": round(cfg.ct_ratio),
                                                "ptr": round(cfg.pt_ratio), "vnom_secondary": 120.0})
        self.relay_map.encode_into(self.relay, self.relay_map.defaults)

    # --- dynamic registers --------------------------------------------------------------------
    def step(self, t_s: float) -> None:
        """Advance the physics; each image is re-encoded when it is next read."""
        with self.lock:
            self.plant.step(t_s)

    def sync(self) -> None:
        """Refresh every image from the plant now (a frozen image keeps its stale words)."""
        for image in self.images.values():
            image.before_read()  # type: ignore[misc]

    def _refresher(self, name: str, sync):
        def refresh() -> None:
            with self.lock:
                if self._synced_at.get(name) != self.plant.t_s:
                    self._synced_at[name] = self.plant.t_s  # first: encoding reads the image's own SFs
                    sync()
        return refresh

    def _sync_pcs(self) -> None:
        p = self.plant
        state = p.pcs_state
        alarms = {"GROUND_FAULT": False, "DC_OVER_VOLT": False, "AC_DISCONNECT": not p.breaker_closed,
                  "DC_DISCONNECT": not p.contactors_closed, "GRID_DISCONNECT": not p.grid_ok,
                  "CABINET_OPEN": False, "MANUAL_SHUTDOWN": False, "OVER_TEMP": False}
        v_ll = p.config.v_nominal_ln * math.sqrt(3) * p.v_pu
        self.pcs.set_many(701, {
            "St": 1 if state != "off" else 0, "InvSt": INV_ST[state], "ConnSt": 1 if p.grid_ok else 0,
            "Alrm": _bits(alarms), "W": p.pcs_p_kw * 1000.0, "VA": abs(p.pcs_p_kw) * 1000.0, "Var": 0.0,
            "A": abs(p.pcs_p_kw) * 1000.0 / (math.sqrt(3) * v_ll) if v_ll else 0.0,
            "LLV": v_ll, "LNV": v_ll / math.sqrt(3), "Hz": p.f_hz,
        })
        self.pcs.set_many(713, {"SoC": p.soc_pct, "SoH": p.soh_pct,
                                "WHAvail": p.config.bess_kwh * 10.0 * p.soc_pct, "Sta": 2 if p.pcs_fault else 0})

    def _sync_bms(self) -> None:
        p = self.plant
        charge_a, discharge_a = p.current_limits()
        t_max = p.temp_max
        if p.pcs_p_kw > 5:
            cha_st = 3
        elif p.pcs_p_kw < -5:
            cha_st = 4
        else:
            cha_st = 5 if p.soc_pct >= 98 else 2 if p.soc_pct <= 2 else 6
        state = 99 if p.bms_fault else 4 if p.bms_standby else 3 if p.contactors_closed else 1  # 4: SunSpec STANDBY
        evt = {"OVER_TEMP_ALARM": t_max >= 55.0, "OVER_TEMP_WARNING": t_max >= 45.0,
               "UNDER_SOC_MIN_WARNING": p.soc_pct <= 5.0, "OVER_SOC_MAX_WARNING": p.soc_pct >= 95.0,
               "CONTACTOR_ERROR": p.contactor_fault}
        bit_of = {"OVER_TEMP_ALARM": 1, "OVER_TEMP_WARNING": 2, "UNDER_SOC_MIN_WARNING": 14,
                  "OVER_SOC_MAX_WARNING": 16, "CONTACTOR_ERROR": 20}
        evt1 = sum(1 << bit_of[name] for name, on in evt.items() if on)
        socs = p.rack_soc
        current = p.dc_current
        cells = [p.cell_voltage(s, current) for s in socs]
        self.bms.set_many(802, {
            "SoC": p.reported_soc_pct, "SoH": p.soh_pct, "ChaSt": cha_st, "State": state, "Evt1": evt1,
            "V": p.dc_voltage, "A": current, "W": p.pcs_p_kw * 1000.0,
            "AChaMax": charge_a, "ADisChaMax": discharge_a,
            "CellVMax": max(cells) + 0.004, "CellVMin": min(cells) - 0.004, "CellVAvg": sum(cells) / len(cells),
        })
        temps = [r.temp_c for r in p.racks]
        self.bms.set_many(803, {"NStrCon": sum(1 for r in p.racks if r.connected and p.contactors_closed),
                                "ModTmpMax": max(temps) + 1.0, "ModTmpMin": min(temps) - 1.0,
                                "ModTmpAvg": sum(temps) / len(temps)})
        closed = p.contactors_closed
        for i, (rack, soc, cell) in enumerate(zip(p.racks, socs, cells, strict=True)):
            self.bms.set_many(803, {
                "StrSoC": soc, "StrSoH": p.soh_pct, "StrA": current / len(p.racks),
                "StrCellVMax": cell + 0.004, "StrCellVMin": cell - 0.004, "StrCellVAvg": cell,
                "StrModTmpMax": rack.temp_c + 1.0, "StrModTmpMin": rack.temp_c - 1.0, "StrModTmpAvg": rack.temp_c,
                "StrSt": 0b01 | (0b10 if closed else 0), "StrConFail": 6 if p.contactor_fault else 0,
                "StrEvt1": (1 << 1) if rack.temp_c + 1.0 >= 55.0 else (1 << 2) if rack.temp_c + 1.0 >= 45.0 else 0,
            }, group="string", index=i)

    def _sync_meter(self) -> None:
        p = self.plant
        m = p.meter_secondary()
        ph = m["phases"]
        s = m["s_va"]
        self._meter_sequence = (self._meter_sequence + 1) % 65536
        values = {
            "status": {"SELF_TEST_OK": True, "PT_FUSE_LOSS": any(v["v"] < 0.2 * 69.3 for v in ph.values()),
                       "CONFIG_CHANGED": False},
            "sequence": self._meter_sequence,
            "p_total": m["p_w"], "q_total": m["q_var"], "s_total": s,
            "pf": (m["p_w"] / s if s else 1.0), "frequency": m["f_hz"],
            "kwh_delivered": round(p.energy_delivered_kwh, 1), "kwh_received": round(p.energy_received_kwh, 1),
            "demand_kw": max(0.0, p.demand_15min_kw),  # the delivered (import) demand register
        }
        for name, key in (("A", "a"), ("B", "b"), ("C", "c")):
            values.update({f"v{key}_mag": ph[name]["v"], f"v{key}_ang": ph[name]["v_angle"],
                           f"i{key}_mag": ph[name]["i"], f"i{key}_ang": ph[name]["i_angle"]})
        if not self.meter.frozen:
            self.meter_map.encode_into(self.meter, values)

    def _sync_relay(self) -> None:
        p = self.plant
        tripped = {ELEMENTS[p.last_trip_cause] + "T": p.trip} if p.last_trip_cause in ELEMENTS else {}
        values = {
            "relay_status": {"52A": p.breaker_closed, "52B": not p.breaker_closed, "TRIP": p.trip,
                             "86": p.lockout_86, "ALARM": p.trip or p.lockout_86, "SELF_TEST_OK": True,
                             "IN101": p.bms_permissive},
            "element_pickup": {ELEMENTS[e]: e in p.active_elements for e in ELEMENTS},
            "element_trip": {f"{sel}T": tripped.get(f"{sel}T", False) for sel in ELEMENTS.values()},
            "last_trip_cause": TRIP_CAUSE_CODES.get(p.last_trip_cause, 10),
            "va_pu": p.v_pu, "vb_pu": p.v_pu, "vc_pu": p.v_pu, "frequency": p.f_hz,
        }
        if not self.relay.frozen:
            self.relay_map.encode_into(self.relay, values)

    # --- device logic for writes --------------------------------------------------------------
    @staticmethod
    def _read_only(name: str):
        def refuse(address: int, _values: list[int]) -> None:
            raise RegisterError(f"{name}: register {address} is read-only", 2)
        return refuse

    def _on_pcs_write(self, address: int, values: list[int]) -> None:
        """704 controls: WSet/WSetEna/WSetRvrtTms/WMaxLimPct; any accepted write refreshes reversion."""
        with self.lock:
            self._apply_pcs_write(address, values)

    def _apply_pcs_write(self, address: int, values: list[int]) -> None:
        p = self.plant
        writes = {w.point: w.value for w in self.pcs.decode_write(address, values)}
        allowed = {"WSet", "WSetEna", "WSetMod", "WSetRvrtTms", "WSetRvrt", "WMaxLimPct", "WMaxLimPctEna"}
        refused = sorted(set(writes) - allowed)
        if refused:
            raise RegisterError(f"pcs: {', '.join(refused)} cannot be written", 2)
        rated = p.config.pcs_kw * 1000.0
        if "WSet" in writes and not -rated <= float(writes["WSet"]) <= rated:
            raise RegisterError(f"pcs: WSet {writes['WSet']} W is outside the rating ±{rated:.0f} W", 3)
        if "WSetRvrtTms" in writes:
            p.pcs_reversion_s = float(writes["WSetRvrtTms"])
        setpoint = float(writes["WSet"]) / 1000.0 if "WSet" in writes else None
        enabled = bool(writes["WSetEna"]) if "WSetEna" in writes else None
        p.command_pcs(setpoint, enabled)

    def _on_relay_write(self, address: int, values: list[int]) -> None:
        """Remote bits are pulses the relay's own logic supervises (close needs IN101 and no 86/trip)."""
        point = self.relay_map.point("remote_bits")
        if address != point.address or len(values) != 1:
            raise RegisterError(f"relay: only the remote-bit register {point.address} is writable", 2)
        bits = point.decode(values)
        if bits.get("RB01") and bits.get("RB02"):
            raise RegisterError("relay: close and open in the same write", 3)
        with self.lock:
            self._apply_remote_bits(bits)

    def _apply_remote_bits(self, bits: dict) -> None:
        p = self.plant
        if bits.get("RB02"):
            p.relay_open()
        if bits.get("RB03"):
            p.relay_reset()
        if bits.get("RB01"):
            p.relay_close(permissive_input=p.bms_permissive)
        self._sync_relay()

    # --- fault injection ----------------------------------------------------------------------
    def inject(self, fault: str, device: str = "", **params: float | str) -> None:
        if fault in DEVICE_FAULTS:
            self._set_device_fault(fault, device, True)
        else:
            self.plant.inject(fault, **params)

    def clear(self, fault: str, device: str = "") -> None:
        if fault in DEVICE_FAULTS:
            self._set_device_fault(fault, device, False)
        else:
            self.plant.clear(fault)

    def _set_device_fault(self, fault: str, device: str, active: bool) -> None:
        """comms_loss: the device stops answering; stuck: its registers stop updating."""
        image = self._device(device)
        setattr(image, "offline" if fault == "comms_loss" else "frozen", active)

    def _device(self, device: str) -> RegisterImage:
        if device not in self.images:
            raise ValueError(f"unknown device {device!r}; devices: {', '.join(DEVICES)}")
        return self.images[device]


ALL_FAULTS = (*DEVICE_FAULTS, *PLANT_FAULTS)
