"""SunSpec maps over real Modbus TCP: an independent SunSpec client (pysunspec2) and a pymodbus
client must both see what the plant wrote, writes must go through the device hook, and comms-loss
and live-update behaviour must be what a device node will meet in the field."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.exceptions import ModbusIOException
from sunspec2.modbus.client import SunSpecModbusClientDeviceTCP

from energizeos.sim.maps.sunspec import (
    MAX_READ_REGISTERS,
    SunSpecImage,
    SunSpecLayout,
    SunSpecMapError,
    _encode,
    build_bms_image,
    build_pcs_image,
)
from energizeos.sim.modbus_server import DeviceServer, PortInUseError, serve_many
from energizeos.sim.registers import RegisterError

PCS_MODELS = [1, 701, 702, 703, 704, 705, 713]
BMS_MODELS = [1, 802, 803]
N_RACKS = 8


def free_port() -> int:
    """A port the kernel just handed out; the server under test binds it itself."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_client(port: int, timeout: float = 1.0) -> ModbusTcpClient:
    client = ModbusTcpClient("127.0.0.1", port=port, timeout=timeout, retries=0)
    assert client.connect()
    return client


def reader(client: ModbusTcpClient) -> Callable[[int, int], list[int]]:
    """The read function a device node hands to SunSpecLayout.from_model_chain."""
    def read(address: int, count: int) -> list[int]:
        response = client.read_holding_registers(address, count=count, device_id=1)
        if response.isError():
            raise RuntimeError(f"read {address}x{count} failed: {response}")
        return list(response.registers)
    return read


# ---------------------------------------------------------------------------- plant values
PCS_VALUES: list[tuple[int, str, Any, float]] = [  # model, point, value, resolution
    (701, "W", 12340, 10),
    (701, "LLV", 480.3, 0.1),
    (701, "Hz", 60.01, 0.01),
    (701, "InvSt", 4, 0),
    (701, "Alrm", 0x0001_0003, 0),
    (701, "TotWhInj", 123_456_789_012, 1),
    (704, "WSetEna", 1, 0),
    (704, "WSet", -250_000, 10),
    (704, "WMaxLimPctEna", 1, 0),
    (704, "WMaxLimPct", 87.5, 0.1),
    (713, "WHRtg", 2_000_000, 100),
    (713, "SoC", 63.4, 0.1),
]
PCS_SFS = [(701, "W_SF", 1), (701, "V_SF", -1), (701, "Hz_SF", -2), (701, "TotWh_SF", 0),
           (704, "WSet_SF", 1), (704, "WMaxLimPct_SF", -1), (713, "WH_SF", 2), (713, "Pct_SF", -1)]
BMS_VALUES: list[tuple[int, str, Any, float]] = [
    (802, "SoC", 72.5, 0.1),
    (802, "SoH", 97, 1),
    (802, "State", 3, 0),
    (802, "ChaSt", 4, 0),
    (802, "Evt1", 0b1010_0000_0001, 0),
    (802, "AChaMax", 400.5, 0.1),
    (802, "W", -150_000, 100),
]
BMS_SFS = [(802, "SoC_SF", -1), (802, "SoH_SF", 0), (802, "AMax_SF", -1), (802, "W_SF", 2),
           (803, "SoC_SF", -1), (803, "A_SF", -1), (803, "CellV_SF", -3)]


def rack_values(i: int) -> dict[str, Any]:
    """Distinct per-rack values, so a string-group offset error cannot pass unnoticed."""
    return {"StrNMod": 10 + i, "StrSoC": 60.5 + i, "StrA": -10.5 * i - 0.5, "StrCellVMax": 3.3 + 0.01 * i,
            "StrEvt1": 1 << i}


RACK_RESOLUTION = {"StrNMod": 0, "StrSoC": 0.1, "StrA": 0.1, "StrCellVMax": 0.001, "StrEvt1": 0}


def filled_pcs() -> SunSpecImage:
    image = build_pcs_image()
    for model_id, sf_point, exponent in PCS_SFS:
        image.set_sf(model_id, sf_point, exponent)
    for model_id, point, value, _res in PCS_VALUES:
        image.set(model_id, point, value)
    return image


def filled_bms() -> SunSpecImage:
    image = build_bms_image(N_RACKS)
    for model_id, sf_point, exponent in BMS_SFS:
        image.set_sf(model_id, sf_point, exponent)
    for model_id, point, value, _res in BMS_VALUES:
        image.set(model_id, point, value)
    for i in range(N_RACKS):
        image.set_many(803, rack_values(i), group="string", index=i)
    return image


@pytest.fixture(scope="module")
def pcs() -> Iterator[tuple[SunSpecImage, int]]:
    image = filled_pcs()
    with DeviceServer(image.registers, free_port()) as server:
        yield image, server.port


@pytest.fixture(scope="module")
def bms() -> Iterator[tuple[SunSpecImage, int]]:
    image = filled_bms()
    with DeviceServer(image.registers, free_port()) as server:
        yield image, server.port


def scan(port: int) -> SunSpecModbusClientDeviceTCP:
    device = SunSpecModbusClientDeviceTCP(slave_id=1, ipaddr="127.0.0.1", ipport=port, timeout=2)
    device.scan()
    return device


def model_ids(device: SunSpecModbusClientDeviceTCP) -> list[int]:
    return [m.model_id for ids, models in device.models.items() if isinstance(ids, int) for m in models]


# ---------------------------------------------------------------------------- (a) independent client
def test_pysunspec2_scans_pcs(pcs: tuple[SunSpecImage, int]) -> None:
    _image, port = pcs
    device = scan(port)
    try:
        assert model_ids(device) == PCS_MODELS
        assert all(not m.error_info for ms in device.models.values() for m in ms)
        common = device.models[1][0]
        assert (common.Mn.value, common.Md.value, common.DA.value) == ("EnergizeOS", "SimPCS", 1)
        for model_id, point, value, res in PCS_VALUES:
            got = getattr(device.models[model_id][0], point).cvalue
            assert got == pytest.approx(value, abs=res / 2 + 1e-9), (model_id, point)
        assert device.models[701][0].VA.value is None  # never set: not-implemented sentinel
        vv = device.models[705][0]
        assert len(vv.Crv) == 3 and len(vv.Crv[0].Pt) == 4
    finally:
        device.close()


def test_pysunspec2_scans_bms_with_all_racks(bms: tuple[SunSpecImage, int]) -> None:
    _image, port = bms
    device = scan(port)
    try:
        assert model_ids(device) == BMS_MODELS
        assert device.models[1][0].Md.value == "SimBMS"
        for model_id, point, value, res in BMS_VALUES:
            got = getattr(device.models[model_id][0], point).cvalue
            assert got == pytest.approx(value, abs=res / 2 + 1e-9), (model_id, point)
        bank = device.models[803][0]
        assert bank.NStr.value == N_RACKS
        assert len(bank.string) == N_RACKS
        for i, rack in enumerate(bank.string):
            for point, value in rack_values(i).items():
                got = getattr(rack, point).cvalue
                assert got == pytest.approx(value, abs=RACK_RESOLUTION[point] / 2 + 1e-9), (i, point)
    finally:
        device.close()


# ---------------------------------------------------------------------------- (b) layout from the wire
@pytest.mark.parametrize("which", ["pcs", "bms"])
def test_layout_from_model_chain_over_pymodbus(which: str, request: pytest.FixtureRequest) -> None:
    image, port = request.getfixturevalue(which)
    client = make_client(port)
    try:
        layout = SunSpecLayout.from_model_chain(reader(client))
        assert layout.model_ids == image.layout.model_ids
        for model_id in layout.model_ids:
            assert layout.model_block(model_id) == image.layout.model_block(model_id)
            assert layout.read_model(model_id, reader(client)) == image.decode(model_id)
        expected = PCS_VALUES if which == "pcs" else BMS_VALUES
        decoded = {m: layout.read_model(m, reader(client)) for m in layout.model_ids}
        for model_id, point, value, res in expected:
            assert decoded[model_id][point] == pytest.approx(value, abs=res / 2 + 1e-9), (model_id, point)
        if which == "pcs":
            assert decoded[701]["VA"] is None and decoded[701]["TmpCab"] is None
            assert decoded[704]["PFWInj"] == {"PF": None, "Ext": None}  # sync group → dict
            assert len(decoded[705]["Crv"]) == 3 and len(decoded[705]["Crv"][2]["Pt"]) == 4
            assert decoded[1]["Opt"] is None and decoded[1]["SN"] == "EOS-PCS-0001"
        else:
            racks = decoded[803]["string"]
            assert decoded[803]["NStr"] == N_RACKS and len(racks) == N_RACKS
            for i, rack in enumerate(racks):
                for point, value in rack_values(i).items():
                    assert rack[point] == pytest.approx(value, abs=RACK_RESOLUTION[point] / 2 + 1e-9)
                assert rack["StrSoH"] is None  # SoH_SF and StrSoH never set
            assert decoded[802]["DoD"] is None
    finally:
        client.close()


def test_read_blocks_split_long_models() -> None:
    layout = build_bms_image(N_RACKS).layout
    address, length = layout.model_block(803)
    blocks = layout.read_blocks(803)
    assert length > MAX_READ_REGISTERS
    assert all(count <= MAX_READ_REGISTERS for _a, count in blocks)
    assert blocks[0][0] == address and sum(count for _a, count in blocks) == length


# ---------------------------------------------------------------------------- (c) writes and the hook
def test_client_write_reaches_hook_and_refusal_is_an_exception() -> None:
    image = filled_pcs()
    seen: list[tuple[int, list[int], list[Any]]] = []
    refuse = False

    def on_write(address: int, values: list[int]) -> None:
        changes = image.decode_write(address, values)  # also refuses read-only / split writes
        seen.append((address, values, changes))
        if refuse:
            raise RegisterError("PCS refuses the set-point", 3)

    image.registers.on_write = on_write
    with DeviceServer(image.registers, free_port()) as server:
        client = make_client(server.port)
        try:
            layout = SunSpecLayout.from_model_chain(reader(client))
            sf = layout.read_model(704, reader(client))["WSet_SF"]
            address, words = layout.encode_write(704, "WSet", -180_000, current_sf=sf)
            assert len(words) == 2
            assert not client.write_registers(address, words, device_id=1).isError()
            assert seen[-1][0] == address and seen[-1][1] == words
            assert [(c.point, c.value) for c in seen[-1][2]] == [("WSet", -180_000)]
            assert image.get(704, "WSet") == -180_000

            address, words = layout.encode_write(704, "WSetEna", 0)
            assert not client.write_register(address, words[0], device_id=1).isError()  # FC 6
            assert image.get(704, "WSetEna") == 0

            refuse = True
            address, words = layout.encode_write(704, "WSet", 50_000, current_sf=sf)
            response = client.write_registers(address, words, device_id=1)
            assert response.isError() and response.exception_code == 3
            assert image.get(704, "WSet") == -180_000  # a refused write is not stored

            refuse = False
            w_address, _n = layout.address(701, "W")  # read-only measurement
            response = client.write_register(w_address, 1, device_id=1)
            assert response.isError() and response.exception_code == 2
            response = client.write_register(address, 0, device_id=1)  # half of the int32 WSet
            assert response.isError() and response.exception_code == 2
        finally:
            client.close()


def test_hook_crash_is_device_failure() -> None:
    image = build_pcs_image()

    def on_write(address: int, values: list[int]) -> None:
        raise KeyError("bug in the device logic")

    image.registers.on_write = on_write
    with DeviceServer(image.registers, free_port()) as server:
        client = make_client(server.port)
        try:
            address, _n = image.address(704, "WSetEna")
            response = client.write_register(address, 1, device_id=1)
            assert response.isError() and response.exception_code == 4
        finally:
            client.close()


# ---------------------------------------------------------------------------- (d) outside the map
def test_read_outside_map_is_exception(pcs: tuple[SunSpecImage, int]) -> None:
    image, port = pcs
    client = make_client(port)
    try:
        below = client.read_holding_registers(39_990, count=5, device_id=1)
        assert below.isError() and below.exception_code == 2
        last = image.registers.base + image.registers.size - 1
        assert client.read_holding_registers(last - 1, count=2, device_id=1).registers == [0xFFFF, 0]
        past = client.read_holding_registers(last, count=2, device_id=1)
        assert past.isError() and past.exception_code == 2
        coils = client.read_coils(40_000, count=1, device_id=1)
        assert coils.isError() and coils.exception_code == 1
    finally:
        client.close()


# ---------------------------------------------------------------------------- (e) comms loss
def test_offline_device_times_out_then_recovers() -> None:
    image = filled_bms()
    with DeviceServer(image.registers, free_port()) as server:
        client = make_client(server.port, timeout=0.5)
        try:
            address, _n = image.address(802, "SoC")
            image.registers.offline = True
            started = time.monotonic()
            with pytest.raises(ModbusIOException):
                client.read_holding_registers(address, count=1, device_id=1)
            assert time.monotonic() - started < 1.5
            image.registers.offline = False
            response = client.read_holding_registers(address, count=1, device_id=1)
            assert not response.isError() and response.registers == [725]
        finally:
            client.close()


# ---------------------------------------------------------------------------- (f) live values
def test_live_update_from_another_thread_is_seen(pcs: tuple[SunSpecImage, int]) -> None:
    image, port = pcs
    client = make_client(port)
    try:
        address, _n = image.address(701, "W")
        for target in (5_000, -7_500, 12_340):
            writer = threading.Thread(target=image.set, args=(701, "W", target))
            writer.start()
            writer.join()
            raw = client.read_holding_registers(address, count=1, device_id=1).registers[0]
            assert raw == (target // 10) & 0xFFFF

        stop = threading.Event()

        def physics() -> None:  # the plant ticking at ~1 kHz while the node polls
            for tick in range(1, 30_000):
                if stop.is_set():
                    return
                image.registers.set_words(address, [tick])
                time.sleep(0.001)
        updater = threading.Thread(target=physics)
        updater.start()
        try:
            values = []
            for _ in range(30):
                values.append(client.read_holding_registers(address, count=1, device_id=1).registers[0])
                time.sleep(0.003)
        finally:
            stop.set()
            updater.join()
        assert values == sorted(values) and len(set(values)) > 5  # reads follow the moving image
        final = image.registers.read(address, 1)
        assert client.read_holding_registers(address, count=1, device_id=1).registers == final
        image.set(701, "W", 12_340)
    finally:
        client.close()


# ---------------------------------------------------------------------------- server lifecycle
def test_port_rules_and_serve_many() -> None:
    with pytest.raises(ValueError, match="port"):
        DeviceServer(build_pcs_image().registers, 0)
    images = {"pcs": (build_pcs_image().registers, free_port()), "bms": (build_bms_image().registers, free_port())}
    servers = serve_many(images)
    try:
        assert set(servers) == {"pcs", "bms"} and all(s.running for s in servers.values())
        with pytest.raises(PortInUseError, match="in use"):
            DeviceServer(build_pcs_image().registers, servers["pcs"].port).start()
    finally:
        for server in servers.values():
            server.stop()
    assert not any(s.running for s in servers.values())
    with pytest.raises(OSError), socket.create_connection(("127.0.0.1", images["pcs"][1]), timeout=0.5):
        pass


# ---------------------------------------------------------------------------- map rules
def test_layout_and_image_errors_name_the_point() -> None:
    image = build_pcs_image()
    assert image.registers.read(40_000, 4) == [0x5375, 0x6E53, 1, 66]
    assert image.get(701, "W") is None and image.get(1, "Mn") == "EnergizeOS"
    with pytest.raises(SunSpecMapError, match="model 802"):
        image.get(802, "SoC")
    with pytest.raises(SunSpecMapError, match="'Watts'"):
        image.set(701, "Watts", 1)
    with pytest.raises(SunSpecMapError, match="PFWInj"):
        image.set(704, "PF", 0.9)
    with pytest.raises(ValueError, match="W_SF"):
        image.set(701, "W", 1000)  # scale factor not set yet
    image.set_sf(701, "W_SF", 0)
    with pytest.raises(ValueError, match="701 W"):
        image.set(701, "W", 40_000)  # int16
    with pytest.raises(ValueError, match="WMaxLimPct"):
        image.layout.encode_write(704, "WMaxLimPct", 50)  # needs its current scale factor
    with pytest.raises(ValueError, match="read-only"):
        image.layout.encode_write(701, "W", 5, current_sf=0)
    with pytest.raises(ValueError, match="structural"):
        build_bms_image(2).set(803, "NStr", 3)
    with pytest.raises(ValueError, match="longer"):
        image.set(1, "SN", "x" * 40)
    image.set_sf(704, "PF_SF", -3)
    image.set(704, "PF", 0.95, group="PFWInj")
    assert image.get(704, "PF", group="PFWInj") == 0.95
    image.set_sf(705, "V_SF", -1)
    image.set(705, "V", 110.5, group=(("Crv", 1), ("Pt", 3)))
    assert image.decode(705)["Crv"][1]["Pt"][3]["V"] == 110.5
    with pytest.raises(SunSpecMapError, match="index 3"):
        image.set(705, "ActPt", 4, group="Crv", index=3)


def test_from_model_chain_accepts_legacy_common_model() -> None:
    """Model 1 with L=65 (no Pad) exists in the field; the walk must not stumble on it."""
    image = build_bms_image(2)
    words = image.registers.snapshot()
    common = image.layout.model(1)
    words = [*words[:2], 1, 65, *words[4:4 + 65], *words[4 + 66:]]  # drop model 1's Pad register

    def read(address: int, count: int) -> list[int]:
        return words[address - 40_000:address - 40_000 + count]

    layout = SunSpecLayout.from_model_chain(read)
    assert layout.model_ids == [1, 802, 803] and layout.model(1).length == 65
    assert layout.read_model(1, read)["Md"] == "SimBMS"
    assert layout.model(803).address == image.layout.model(803).address - 1
    assert common.length == 66
    with pytest.raises(SunSpecMapError, match="SunS"):
        SunSpecLayout.from_model_chain(lambda a, n: [0] * n)


# ---------------------------------------------------------------------------- compiled codecs = reference
def _settable_points(image: SunSpecImage) -> Iterator[tuple[int, Any, Any]]:
    """(model id, point, group spec) of every point ``set`` accepts, per model, in register order."""
    for model in image.layout.models:
        for point in model.iter_points():
            structural = not point.path and (point.name in ("ID", "L") or point.name in model.counts)
            if not structural and point.type != "sunssf":
                yield model.model_id, point, (point.path or None)


def _random_sfs(image: SunSpecImage, rng: random.Random) -> None:
    """Every sunssf register: a usable exponent, mostly; sometimes out of range or not implemented."""
    for model in image.layout.models:
        for point in model.iter_points():
            if point.type == "sunssf":
                exponent = rng.choice([*range(-10, 11), *range(-4, 3), None, None])
                image.set_sf(model.model_id, point.name, exponent, group=point.path or None)
                if rng.random() < 0.05:  # outside -10..10, as a misbehaving device might hold it
                    image.registers.set_words(model.address + point.offset, [rng.choice([11, 0xFFF0, 300])])


def _candidate_values(point: Any, sf: int | None, rng: random.Random) -> list[Any]:
    """Values in range at the point's resolution, near .5 ties, sentinels, and values that must fail."""
    if point.type == "string":
        return [None, "", "EOS", "x" * (2 * point.size), "x" * (2 * point.size + 1), 5]
    if point.type in ("float32", "float64"):
        return [None, 0.0, rng.uniform(-1e6, 1e6), 1e39, float("nan"), 7, "7"]
    if point.type not in _INT_TYPE_BITS:
        return [None, 1]
    bits, signed = _INT_TYPE_BITS[point.type]
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    scale = 10.0 ** (sf or 0)
    small = rng.randint(max(low, -99_999), min(high, 99_999))  # within the float fast path's reach
    raws = [low, high, low - 1, high + 1, 0, 1, -1, small, -small, rng.randint(low, high)]
    values: list[Any] = [None, True, "12", float("inf"), float("nan"), 0.25]
    for raw in raws:
        values += [raw, raw * scale, round(raw * scale, 10), (raw + 0.5) * scale, (raw + rng.random()) * scale]
        if sf and sf > 0:  # an int exactly halfway between two raw values: rounds half to even
            values.append((2 * raw + 1) * 10 ** sf // 2)
    return values


def _random_words(point: Any, rng: random.Random) -> list[int]:
    """Register contents for a point: its not-implemented words, likely, or random ones."""
    if rng.random() < 0.3:
        try:
            return _encode(point, None, None)
        except ValueError:
            return [rng.choice([0, 0xFFFF])] * point.size
    return [rng.choice([rng.getrandbits(16), 0xFFFF, 0x8000, 0x7FFF, 0, 1]) for _ in range(point.size)]


_INT_TYPE_BITS = {"int16": (16, True), "uint16": (16, False), "count": (16, False), "acc16": (16, False),
                  "enum16": (16, False), "bitfield16": (16, False), "pad": (16, False),
                  "int32": (32, True), "uint32": (32, False), "acc32": (32, False), "enum32": (32, False),
                  "bitfield32": (32, False), "ipaddr": (32, False),
                  "int64": (64, True), "uint64": (64, False), "acc64": (64, False)}


def _outcome(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> tuple[str, str]:
    try:
        return "ok", repr(fn(*args, **kwargs))
    except Exception as exc:  # the type and message are what is compared
        return type(exc).__name__, str(exc)


def _reader(words: list[int]) -> Callable[[int, int], list[int]]:
    return lambda address, count: words[address - 40_000:address - 40_000 + count]


def _other_types_image() -> SunSpecImage:
    """Models with the integer, float and string types the PCS and BMS lack (acc, count, enum32, float32...)."""
    return SunSpecImage(SunSpecLayout.build([1, 15, 101, 111, 122, 160, 502]), "other")


@pytest.mark.parametrize("build", [build_pcs_image, lambda: build_bms_image(N_RACKS), _other_types_image],
                         ids=["pcs", "bms", "other-types"])
def test_compiled_codecs_match_the_reference_on_every_point(build: Callable[[], SunSpecImage]) -> None:
    """``decode``/``read_model`` and ``set``/``set_many`` run compiled plans; ``_decode_reference`` and
    ``_set_reference`` are the one-point-at-a-time codec they replaced. Both must give the same values
    (types and float bits included), the same None for sentinels, the same words and the same errors."""
    rng = random.Random(20251126)
    fast, ref = build(), build()
    settable = list(_settable_points(fast))
    for trial in range(12):
        # encode: every settable point, one at a time, the same sfs in both images
        seed = rng.random()
        _random_sfs(fast, random.Random(seed))
        _random_sfs(ref, random.Random(seed))
        assert fast.registers.snapshot() == ref.registers.snapshot()
        for model_id, point, group in settable:
            model = fast.layout.model(model_id)
            sf_def = model.sf_point(point)
            sf = fast.get(model_id, sf_def.name, group=sf_def.path or None) if sf_def else point.sf
            for value in _candidate_values(point, sf if isinstance(sf, int) and -10 <= sf <= 10 else 0, rng):
                got = _outcome(fast.set, model_id, point.name, value, group=group)
                want = _outcome(ref._set_reference, model_id, point.name, value, group=group)
                assert got == want, (point.label, value)
        assert fast.registers.snapshot() == ref.registers.snapshot(), f"trial {trial}"
        # encode: set_many per group, on odd trials with a bad value in the middle (those before it stick)
        by_group: dict[tuple[int, Any], list[Any]] = {}
        for model_id, point, group in settable:
            by_group.setdefault((model_id, group), []).append(point)
        for (model_id, group), points in by_group.items():
            values = {p.name: rng.choice([None, 0, 1]) if p.type != "string" else "ok" for p in points}
            if len(points) > 2 and trial % 2:
                bad = points[len(points) // 2]
                values[bad.name] = 42 if bad.type == "string" else "not a number"
            want = ("ok", "None")
            for name, value in values.items():
                want = _outcome(ref._set_reference, model_id, name, value, group=group)
                if want[0] != "ok":
                    break
            assert _outcome(fast.set_many, model_id, values, group=group) == want, (model_id, group)
        assert fast.registers.snapshot() == ref.registers.snapshot(), f"trial {trial} set_many"
        # decode: random words (sentinels likely) with the sfs above, through decode and read_model
        words = fast.registers.snapshot()
        for model_id, point, _group in settable:
            if rng.random() < 0.6:
                start = fast.layout.model(model_id).address - 40_000 + point.offset
                words[start:start + point.size] = _random_words(point, rng)
        client = SunSpecLayout.from_model_chain(_reader(words))
        assert client.model_ids == fast.layout.model_ids
        for model in client.models:
            body = words[model.body_address - 40_000:model.end_address - 40_000]
            want_decoded = model._decode_reference(body)
            for decoded in (model.decode(body), model.decode(tuple(body)),
                            client.read_model(model.model_id, _reader(words))):
                assert decoded == want_decoded and repr(decoded) == repr(want_decoded), model
        # words that are not register values take the reference path, errors included
        model = client.models[1]  # the first after model 1
        body = words[model.body_address - 40_000:model.end_address - 40_000]
        for odd in ([*body[:-1], 0x1_0000], [float(w) for w in body], [-1, *body[1:]], [True, *body[1:]]):
            assert _outcome(model.decode, odd) == _outcome(model._decode_reference, odd)


def test_compiled_decode_matches_the_reference_for_every_sunspec_type() -> None:
    """Client-side decoding of models a SunSpecImage cannot hold (63001, the SunSpec test model, has
    every type, int64, ipv6addr and constant scale factors included; 11 has an eui48)."""
    layout = SunSpecLayout.build([1, 63001, 11, 160, 122, 502, 101, 111, 704, (705, {"NCrv": 2, "NPt": 3})])
    rng = random.Random(63001)
    for _trial in range(40):
        for model in layout.models:
            full = [model.model_id, model.length, *([0] * model.length)]
            for point in model.iter_points():
                if point.offset < 2:
                    continue
                if point.type == "sunssf":
                    full[point.offset] = rng.choice([*range(-12, 13), 0x8000]) & 0xFFFF
                else:
                    full[point.offset:point.offset + point.size] = _random_words(point, rng)
            body = full[2:]
            want = model._decode_reference(body)
            got = model.decode(body)
            assert got == want and repr(got) == repr(want), model


def test_set_many_on_a_frozen_image_still_validates() -> None:
    image = build_bms_image(2)
    image.set_sf(803, "SoC_SF", -1)
    image.registers.frozen = True
    before = image.registers.snapshot()
    image.set_many(803, {"StrSoC": 50.0, "StrNMod": 3}, group="string", index=1)
    with pytest.raises(ValueError, match=r"803 string\[1\]\.StrSoC"):
        image.set_many(803, {"StrNMod": 3, "StrSoC": 7000.0}, group="string", index=1)
    assert image.registers.snapshot() == before
    image.registers.frozen = False
    with pytest.raises(ValueError, match=r"7000\.0"):
        image.set_many(803, {"StrNMod": 3, "StrSoC": 7000.0, "StrSoH": 90}, group="string", index=1)
    assert image.get(803, "StrNMod", group="string", index=1) == 3
    assert image.get(803, "StrSoH", group="string", index=1) is None  # after the bad one: not stored
    image.set_many(803, {})  # nothing to do, not even a model lookup
    with pytest.raises(SunSpecMapError, match="model 999"):
        image.set_many(999, {"X": 1})
