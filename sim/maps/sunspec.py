"""SunSpec register maps built from pysunspec2's model definitions, for both ends of the wire.

Why: the PCS and BMS speak SunSpec, and an independent SunSpec client (pysunspec2) must be able to
scan the simulated devices. Point tables are never written by hand here: every offset, type,
size, scale-factor link and repeating group comes from ``sunspec2.device.get_model_def``.

- ``SunSpecLayout`` is the map: where each model and point lives. The plant builds it from a list
  of model ids; a device node builds it from the wire with ``SunSpecLayout.from_model_chain`` (walks
  the ID/L headers and reads group counts such as 803 ``NStr``), then reads whole model bodies
  (``model_block`` / ``read_blocks``) and ``decode``\\ s them; ``encode_write`` makes client writes.
- ``SunSpecImage`` is the plant side: a ``RegisterImage`` laid out by a ``SunSpecLayout`` with typed,
  scale-factor-aware ``set``/``get``.

Conventions: addresses are Modbus PDU addresses (base 40000 = 'SunS'); group indexes are 0-based;
a point inside a repeating group is addressed with ``group="string", index=i`` (or, nested, with
``group=(("Crv", 0), ("Pt", 2))``); non-implemented sentinels decode to ``None``.
"""

from __future__ import annotations

import math
import struct
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_EVEN, Decimal
from operator import itemgetter
from typing import Any, NamedTuple, TypeAlias

import sunspec2.device as ss_device
import sunspec2.mb as ss_mb
import sunspec2.mdef as ss_mdef

from ..registers import RegisterError, RegisterImage

__all__ = [
    "DEFAULT_BASE",
    "END_MODEL_ID",
    "MAX_READ_REGISTERS",
    "SUNS_MARKER",
    "GroupLayout",
    "ModelLayout",
    "PointDef",
    "PointWrite",
    "SunSpecImage",
    "SunSpecLayout",
    "SunSpecMapError",
    "build_bms_image",
    "build_pcs_image",
]

SUNS_MARKER = (0x5375, 0x6E53)  # 'SunS'
END_MODEL_ID = 0xFFFF
DEFAULT_BASE = 40000
MAX_READ_REGISTERS = 125  # Modbus FC 3/4 limit per request
SF_MIN, SF_MAX = -10, 10  # SunSpec scale factor range

PCS_MODELS = (1, 701, 702, 703, 704, 705, 713)
BMS_MODELS = (1, 802, 803)

ReadFn: TypeAlias = Callable[[int, int], Sequence[int]]
GroupPath: TypeAlias = tuple[tuple[str, int], ...]
GroupSpec: TypeAlias = str | Sequence[tuple[str, int]] | None
Value: TypeAlias = int | float | str | None

# Integer encodings: type -> (registers, signed). Sentinels come from pysunspec2 (``mb.unimpl_value``).
_INT_TYPES: dict[str, tuple[int, bool]] = {
    ss_mdef.TYPE_INT16: (1, True), ss_mdef.TYPE_UINT16: (1, False), ss_mdef.TYPE_COUNT: (1, False),
    ss_mdef.TYPE_ACC16: (1, False), ss_mdef.TYPE_ENUM16: (1, False), ss_mdef.TYPE_BITFIELD16: (1, False),
    ss_mdef.TYPE_PAD: (1, False), ss_mdef.TYPE_SUNSSF: (1, True),
    ss_mdef.TYPE_INT32: (2, True), ss_mdef.TYPE_UINT32: (2, False), ss_mdef.TYPE_ACC32: (2, False),
    ss_mdef.TYPE_ENUM32: (2, False), ss_mdef.TYPE_BITFIELD32: (2, False), ss_mdef.TYPE_IPADDR: (2, False),
    ss_mdef.TYPE_INT64: (4, True), ss_mdef.TYPE_UINT64: (4, False), ss_mdef.TYPE_ACC64: (4, False),
}
_FLOAT_TYPES: dict[str, tuple[int, str]] = {ss_mdef.TYPE_FLOAT32: (2, ">f"), ss_mdef.TYPE_FLOAT64: (4, ">d")}
_ZERO_SENTINEL_TYPES = frozenset({ss_mdef.TYPE_ACC16, ss_mdef.TYPE_ACC32, ss_mdef.TYPE_ACC64, ss_mdef.TYPE_IPADDR,
                                  ss_mdef.TYPE_PAD})
_OPAQUE_TYPES: dict[str, int] = {ss_mdef.TYPE_EUI48: 4, ss_mdef.TYPE_IPV6ADDR: 8}


class SunSpecMapError(LookupError):
    """An unknown model, point or group name, or a device map that does not parse as SunSpec."""


# --------------------------------------------------------------------------- layout data
@dataclass(frozen=True)
class PointDef:
    """One point of one model instance, placed: ``offset`` counts registers from the model's ID."""

    model_id: int
    name: str
    type: str
    offset: int
    size: int
    sf: str | int | None  # scale-factor point name, a constant exponent, or None (unscaled)
    writable: bool
    mandatory: bool
    path: GroupPath  # enclosing groups as (name, index); () for top-level points

    @property
    def label(self) -> str:
        """Human-readable name for error messages, e.g. ``803 string[2].StrSoC``."""
        where = "".join(f"{name}[{index}]." for name, index in self.path)
        return f"{self.model_id} {where}{self.name}"


@dataclass
class GroupLayout:
    """A placed group instance: its points and its child groups (lists, one entry per instance)."""

    name: str
    path: GroupPath
    parent: GroupLayout | None
    points: dict[str, PointDef] = field(default_factory=dict)
    groups: dict[str, list[GroupLayout]] = field(default_factory=dict)
    repeating: set[str] = field(default_factory=set)


class PointWrite(NamedTuple):
    """A point fully covered by a client write, with the value it would take (decoded, scaled)."""

    model_id: int
    point: str
    path: GroupPath
    value: Value


def _point_size(pdef: Mapping[str, Any]) -> int:
    """Registers a point occupies (strings carry their own ``size``)."""
    size = pdef.get(ss_mdef.SIZE)
    if size is not None:
        return int(size)
    info = ss_mb.point_type_info.get(pdef[ss_mdef.TYPE])
    if info is None or info.len is None:
        raise SunSpecMapError(f"point {pdef.get(ss_mdef.NAME)!r}: unknown SunSpec type {pdef.get(ss_mdef.TYPE)!r}")
    return int(info.len)


def _model_def(model_id: int) -> dict[str, Any]:
    """pysunspec2's definition of a model, or SunSpecMapError naming the model."""
    try:
        return ss_device.get_model_def(model_id, mapping=False)
    except ss_mdef.ModelDefinitionError as exc:
        raise SunSpecMapError(f"model {model_id}: no SunSpec model definition in pysunspec2 ({exc})") from exc


def _count_points(gdef: Mapping[str, Any], found: set[str] | None = None) -> set[str]:
    """Names of points that size repeating groups (803 NStr, 705 NCrv/NPt)."""
    found = set() if found is None else found
    for sub in gdef.get(ss_mdef.GROUPS) or []:
        count = sub.get(ss_mdef.COUNT)
        if count is not None and not str(count).isdigit():
            found.add(str(count))
        _count_points(sub, found)
    return found


def _top_level_offsets(gdef: Mapping[str, Any]) -> dict[str, tuple[int, int]]:
    """Offset (from the ID register) and size of each top-level point, without any counts."""
    out: dict[str, tuple[int, int]] = {}
    offset = 0
    for pdef in gdef.get(ss_mdef.POINTS) or []:
        size = _point_size(pdef)
        out[pdef[ss_mdef.NAME]] = (offset, size)
        offset += size
    return out


# --------------------------------------------------------------------------- codecs
def _int_range(ptype: str) -> tuple[int, int, int]:
    """(low, high, sentinel) of an integer type."""
    regs, signed = _INT_TYPES[ptype]
    bits = 16 * regs
    low, high = (-(1 << (bits - 1)), (1 << (bits - 1)) - 1) if signed else (0, (1 << bits) - 1)
    if ptype == ss_mdef.TYPE_SUNSSF:
        low, high = SF_MIN, SF_MAX
    return low, high, int(ss_mb.unimpl_value[ptype])


def _words_to_int(words: Sequence[int], signed: bool) -> int:
    value = 0
    for word in words:
        value = (value << 16) | (int(word) & 0xFFFF)
    if signed and value >= 1 << (16 * len(words) - 1):
        value -= 1 << (16 * len(words))
    return value


def _int_to_words(value: int, regs: int) -> list[int]:
    value &= (1 << (16 * regs)) - 1
    return [(value >> (16 * (regs - 1 - i))) & 0xFFFF for i in range(regs)]


def _decode_raw(point: PointDef, words: Sequence[int]) -> int | float | str | None:
    """Unscaled value of a point, None for its not-implemented sentinel."""
    ptype = point.type
    if ptype in _INT_TYPES:
        regs, signed = _INT_TYPES[ptype]
        value = _words_to_int(words[:regs], signed)
        if ptype == ss_mdef.TYPE_PAD:
            return value
        return None if value == ss_mb.unimpl_value[ptype] else value
    if ptype in _FLOAT_TYPES:
        regs, fmt = _FLOAT_TYPES[ptype]
        raw = b"".join(int(w).to_bytes(2, "big") for w in words[:regs])
        fvalue = struct.unpack(fmt, raw)[0]
        return None if math.isnan(fvalue) else fvalue
    data = b"".join(int(w).to_bytes(2, "big") for w in words[:point.size])
    if ptype == ss_mdef.TYPE_STRING:
        if not data or data[0] == 0:
            return None
        return data.rstrip(b"\0").decode("utf-8", errors="replace")
    if ptype in _OPAQUE_TYPES:  # eui48 / ipv6addr: shown as hex, never written by this code
        return None if not any(data) or all(b == 0xFF for b in data) else data.hex(":")
    raise SunSpecMapError(f"{point.label}: unsupported SunSpec type {ptype!r}")


def _apply_sf(raw: int | float, sf: int) -> int | float:
    """raw * 10^sf without binary-float noise (0.1 steps stay 0.1 steps)."""
    if sf == 0:
        return raw
    if sf > 0:
        return raw * 10 ** sf
    return float(Decimal(raw).scaleb(sf))


def _to_raw(point: PointDef, value: int | float, sf: int | None) -> int:
    """Scaled engineering value → integer register value, rejecting what the point cannot hold."""
    if isinstance(value, bool):
        value = int(value)
    if not isinstance(value, int | float) or (isinstance(value, float) and not math.isfinite(value)):
        raise ValueError(f"{point.label}: {value!r} is not a finite number")
    if sf is None or sf == 0:
        if isinstance(value, float):
            if not value.is_integer():
                raise ValueError(f"{point.label}: {value!r} is not an integer and the point is not scaled")
            value = int(value)
        return value
    return int(Decimal(str(value)).scaleb(-sf).to_integral_value(rounding=ROUND_HALF_EVEN))


def _encode(point: PointDef, value: Value, sf: int | None) -> list[int]:
    """Words for a point value (None writes the point's not-implemented sentinel)."""
    ptype = point.type
    if ptype == ss_mdef.TYPE_STRING:
        if value is None:
            return [0] * point.size
        if not isinstance(value, str):
            raise ValueError(f"{point.label}: string point needs a str, got {value!r}")
        data = value.encode("utf-8")
        if len(data) > 2 * point.size:
            raise ValueError(f"{point.label}: {value!r} is longer than {2 * point.size} bytes")
        data = data.ljust(2 * point.size, b"\0")
        return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]
    if ptype in _FLOAT_TYPES:
        regs, fmt = _FLOAT_TYPES[ptype]
        packed = struct.pack(">I" if regs == 2 else ">Q", ss_mb.unimpl_value[ptype]) if value is None else None
        if packed is None:
            if isinstance(value, str) or not isinstance(value, int | float):
                raise ValueError(f"{point.label}: {value!r} is not a number")
            packed = struct.pack(fmt, float(value))
        return [int.from_bytes(packed[i:i + 2], "big") for i in range(0, len(packed), 2)]
    if ptype not in _INT_TYPES:
        raise ValueError(f"{point.label}: writing SunSpec type {ptype!r} is not supported")
    regs, _signed = _INT_TYPES[ptype]
    low, high, sentinel = _int_range(ptype)
    if value is None:
        return _int_to_words(sentinel, regs)
    if isinstance(value, str):
        raise ValueError(f"{point.label}: {ptype} point needs a number, got {value!r}")
    raw = _to_raw(point, value, sf)
    scale = f" (raw {raw} at scale factor {sf})" if sf else ""
    if not low <= raw <= high:
        raise ValueError(f"{point.label}: {value!r}{scale} does not fit {ptype} ({low}..{high})")
    if raw == sentinel and ptype not in _ZERO_SENTINEL_TYPES:
        raise ValueError(f"{point.label}: {value!r}{scale} is the {ptype} 'not implemented' marker")
    return _int_to_words(raw, regs)


def _normalise_group(group: GroupSpec, index: int) -> GroupPath:
    if group is None:
        return ()
    if isinstance(group, str):
        return ((group, int(index)),)
    return tuple((str(name), int(i)) for name, i in group)


# --------------------------------------------------------------------------- compiled codecs (hot path)
# The functions above are the reference codec, one point at a time. The simulation's fast-forward
# encodes and decodes whole models on every poll, so each model also compiles flat plans, once: a
# decode plan per group (offsets, integer kinds, sentinels, where the sf is) and an encoder per point.
# Only the common cases are handled here; anything else (errors included) goes through the
# reference functions, so values, None-for-sentinel and error messages stay exactly theirs
# (tests/test_sunspec_maps.py compares both on every point of the PCS and BMS maps).
_POW10 = tuple(10 ** k for k in range(SF_MAX + 1))
_POW10F = tuple(float(10 ** k) for k in range(SF_MAX + 1))
_FAST_SCALED_LIMIT = 1e8     # |scaled float| below which float arithmetic settles the rounding...
_FAST_TIE_MARGIN = 0.499999  # ...unless it lands this close to a .5 tie (then Decimal decides)
_FAST_INT_LIMIT = 10 ** 27   # ints the reference scales exactly at Decimal's default 28 digits
_SUNSSF_UNSET = int(ss_mb.unimpl_value[ss_mdef.TYPE_SUNSSF])  # -32768

# decode op kinds: 1-, 2- and 4-register integers inline, anything else through _decode_raw / value_from
_D_U1, _D_I1, _D_U2, _D_I2, _D_U4, _D_I4, _D_RAW, _D_REF = range(8)
# how a point is scaled: not at all, by a constant exponent, by a sunssf register
_S_NONE, _S_CONST, _S_REG, _S_REF = range(4)
# A decode op: (name, kind, offset, sentinel, sf kind, sf constant or sf register offset, point).
_DecodeOp: TypeAlias = tuple[str, int, int, Any, int, int, PointDef]


class _DecodePlan(NamedTuple):
    """A group instance's compiled decoder: its output keys in order (all None to start with: a
    point left alone decodes to None), then its points split by kind so the common ones, the
    1-register integers, run in tight loops, then its child groups."""

    names: tuple[str, ...]
    plain: tuple[tuple[str, int, int, int], ...]        # 1-register, unscaled: (name, offset, sign bit, sentinel)
    scaled: tuple[tuple[str, int, int, int, int], ...]  # 1-register, sunssf-scaled: (..., sf offset)
    other: tuple[_DecodeOp, ...]
    groups: tuple[tuple[str, tuple[_DecodePlan, ...], bool], ...]  # (name, instance plans, repeating)


_NO_SIGN = 1 << 16  # "sign bit" of an unsigned 1-register point: never reached


def _registers(words: Any) -> list[int] | None:
    """``[int(w) for w in words]`` when every word is an integer in 0..0xFFFF (checked and converted
    in C), else None: the caller converts with int() and checks, as the reference does."""
    if type(words) is not list and type(words) is not tuple:  # array() would take bytes as raw memory
        return None
    try:
        return array("H", words).tolist()
    except (TypeError, OverflowError):
        return None


def _run_decode_plan(plan: _DecodePlan, full: list[int], value_from: Callable[[PointDef, Sequence[int]], Value]
                     ) -> dict[str, Any]:
    """``ModelLayout._decode_group`` over a compiled plan; ``full`` holds ints in 0..0xFFFF."""
    out: dict[str, Any] = dict.fromkeys(plan.names)
    for name, offset, sign, sentinel in plan.plain:
        value = full[offset]
        if value >= sign:
            value -= 0x10000
        if value != sentinel:
            out[name] = value
    for name, offset, sign, sentinel, sf_offset in plan.scaled:
        value = full[offset]
        if value >= sign:
            value -= 0x10000
        if value == sentinel:
            continue
        sf = full[sf_offset]
        if sf >= 0x8000:
            sf -= 0x10000
        if sf == 0:
            out[name] = value
        elif 0 < sf <= SF_MAX:
            out[name] = value * _POW10[sf]
        elif SF_MIN <= sf < 0:
            # int / int is correctly rounded, as is Decimal(raw).scaleb(sf) → float (<= 20 digits, exact)
            out[name] = value / _POW10[-sf]
        # else: unscalable (the sunssf sentinel included), stays None
    for name, kind, offset, sentinel, sf_kind, sf_arg, point in plan.other:
        if kind in (_D_U2, _D_I2):
            value = (full[offset] << 16) | full[offset + 1]
            if kind == _D_I2 and value >= 0x80000000:
                value -= 0x100000000
            if value == sentinel:
                continue
        elif kind in (_D_U4, _D_I4):
            value = (full[offset] << 48) | (full[offset + 1] << 32) | (full[offset + 2] << 16) | full[offset + 3]
            if kind == _D_I4 and value >= 0x8000000000000000:
                value -= 0x10000000000000000
            if value == sentinel:
                continue
        elif kind in (_D_U1, _D_I1):
            value = full[offset]
            if kind == _D_I1 and value >= 0x8000:
                value -= 0x10000
            if value == sentinel:
                continue
        elif kind == _D_RAW:
            value = _decode_raw(point, full[offset:offset + point.size])
            if value is None or isinstance(value, str):
                out[name] = value
                continue
        else:
            out[name] = value_from(point, full)
            continue
        if sf_kind == _S_NONE:
            out[name] = value
            continue
        if sf_kind == _S_CONST:
            sf = sf_arg
        else:
            sf = full[sf_arg]
            if sf >= 0x8000:
                sf -= 0x10000
            if not SF_MIN <= sf <= SF_MAX:  # includes the sunssf sentinel -32768
                continue
        if sf == 0:
            out[name] = value
        elif type(value) is int:
            out[name] = value * _POW10[sf] if sf > 0 else value / _POW10[-sf]
        else:
            out[name] = _apply_sf(value, sf)
    for name, children, repeating in plan.groups:
        decoded = [_run_decode_plan(child, full, value_from) for child in children]
        out[name] = decoded if repeating else decoded[0]
    return out


class _Setter(NamedTuple):
    """A point's compiled encoder for ``SunSpecImage.set``/``set_many``."""

    point: PointDef
    address: int                  # register address of the point
    refuse: str | None            # why ``set`` refuses the point (structural, a scale factor)
    sf_kind: int                  # _S_NONE / _S_CONST / _S_REG / _S_REF (reference path)
    sf_arg: int                   # the constant exponent, or the sunssf register's address
    sf_unset: str                 # the error when that sunssf register holds its sentinel
    ints: tuple[int, int, int, int, bool] | None  # integer types: (registers, low, high, sentinel, 0 allowed)
    none_words: tuple[int, ...] | None            # the not-implemented words (None: the reference decides)


class _Record(NamedTuple):
    """``SunSpecImage.set_many`` compiled for one list of point names (all 1- or 2-register integers)."""

    # per name, in the caller's order: (run, offset in the run, registers, sf kind, sf arg, low, high,
    # sentinel, sentinel allowed, not-implemented words)
    points: tuple[tuple, ...]
    runs: tuple[tuple[int, int], ...]  # (address, count) of the adjacent-point runs, in address order
    sf_span: tuple[int, int]           # the model's sunssf registers (address, count), peeked once


_NO_RECORD: Any = object()  # "not compiled yet" (None: compiled, and not eligible)


def _int_words(raw: int, regs: int) -> list[int]:
    if regs == 1:
        return [raw & 0xFFFF]
    if regs == 2:
        return [(raw >> 16) & 0xFFFF, raw & 0xFFFF]
    return _int_to_words(raw, regs)


def _fast_int_raw(value: Any, sf: int | None) -> int | None:
    """``_to_raw`` for plain ints and floats when the result is certain; None: ask the reference."""
    cls = type(value)
    if cls is int:
        if not sf:
            return value
        if not (SF_MIN <= sf <= SF_MAX and -_FAST_INT_LIMIT < value < _FAST_INT_LIMIT):
            return None
        if sf < 0:
            return value * _POW10[-sf]
        quotient, remainder = divmod(value, _POW10[sf])  # round half even, exactly
        twice = 2 * remainder
        if twice > _POW10[sf] or (twice == _POW10[sf] and quotient & 1):
            quotient += 1
        return quotient
    if cls is float:
        if not sf:
            return int(value) if value.is_integer() else None  # nan/inf are not integers
        if not SF_MIN <= sf <= SF_MAX:
            return None
        scaled = value * _POW10F[-sf] if sf < 0 else value / _POW10F[sf]
        if not -_FAST_SCALED_LIMIT < scaled < _FAST_SCALED_LIMIT:  # also nan
            return None
        raw = round(scaled)
        # The reference rounds the decimal repr(value) * 10^-sf half-even. Below the limit the float
        # product is within ~2e-8 of it, so away from a .5 tie both round to the same integer.
        return raw if abs(scaled - raw) <= _FAST_TIE_MARGIN else None
    return None


# --------------------------------------------------------------------------- model layout
class ModelLayout:
    """One model instance in a map: where it starts, its length L, and its placed points."""

    def __init__(self, model_id: int, address: int, length: int, root: GroupLayout | None,
                 counts: Mapping[str, int] | None = None) -> None:
        self.model_id = model_id
        self.address = address  # the ID register
        self.length = length    # L: registers after the ID/L header
        self.root = root        # None: a model pysunspec2 has no definition for (kept opaque)
        self.counts = dict(counts or {})
        # The layout is fixed once built: memoise lookups that every poll repeats.
        self._sf_points: dict[int, PointDef | None] = {}
        self._placed: dict[tuple, PointDef] = {}
        self._decode_plan: _DecodePlan | None = None  # compiled on first decode
        self._setters: dict[tuple, _Setter] = {}      # SunSpecImage encoders, by (name, group, index)
        self._sf_span: tuple[int, int] | None = None  # (first, count) of registers holding sunssf points

    @property
    def body_address(self) -> int:
        return self.address + 2

    @property
    def end_address(self) -> int:
        """First register after this model (the next model's ID)."""
        return self.address + 2 + self.length

    def __repr__(self) -> str:
        return f"ModelLayout({self.model_id}, address={self.address}, length={self.length})"

    @classmethod
    def build(cls, model_id: int, address: int, counts: Mapping[str, int] | None = None,
              declared_length: int | None = None) -> ModelLayout:
        """Place a model's points from its pysunspec2 definition and the given group counts."""
        mdef = _model_def(model_id)
        gdef = mdef[ss_mdef.GROUP]
        counts = dict(counts or {})
        missing = _count_points(gdef) - counts.keys()
        if missing:
            raise SunSpecMapError(f"model {model_id}: group counts {sorted(missing)} must be given")
        root, end = cls._place(model_id, gdef, 0, (), None, counts)
        length = end - 2
        if declared_length is not None and declared_length != length:
            if declared_length < length:
                if _count_points(gdef):
                    raise SunSpecMapError(f"model {model_id} at {address}: L={declared_length} but its groups "
                                          f"{counts} need {length} registers")
                cls._truncate(root, declared_length + 2)  # legacy short model, e.g. model 1 with L=65
            length = declared_length  # a longer model (newer revision): extra registers stay undecoded
        return cls(model_id, address, length, root, counts)

    @classmethod
    def _place(cls, model_id: int, gdef: Mapping[str, Any], offset: int, path: GroupPath,
               parent: GroupLayout | None, counts: Mapping[str, int]) -> tuple[GroupLayout, int]:
        group = GroupLayout(name=gdef[ss_mdef.NAME], path=path, parent=parent)
        for pdef in gdef.get(ss_mdef.POINTS) or []:
            size = _point_size(pdef)
            sf = pdef.get(ss_mdef.SF)
            if isinstance(sf, str) and sf.lstrip("-").isdigit():
                sf = int(sf)
            group.points[pdef[ss_mdef.NAME]] = PointDef(
                model_id=model_id, name=pdef[ss_mdef.NAME], type=pdef[ss_mdef.TYPE], offset=offset, size=size,
                sf=sf, writable=pdef.get(ss_mdef.ACCESS) == ss_mdef.ACCESS_RW,
                mandatory=pdef.get(ss_mdef.MANDATORY) == ss_mdef.MANDATORY_TRUE, path=path)
            offset += size
        for sub in gdef.get(ss_mdef.GROUPS) or []:
            name = sub[ss_mdef.NAME]
            count = sub.get(ss_mdef.COUNT)
            if count is None:  # a single (sync) group
                child, offset = cls._place(model_id, sub, offset, (*path, (name, 0)), group, counts)
                group.groups[name] = [child]
                continue
            n = int(count) if str(count).isdigit() else int(counts[str(count)])
            group.repeating.add(name)
            instances = []
            for i in range(n):
                child, offset = cls._place(model_id, sub, offset, (*path, (name, i)), group, counts)
                instances.append(child)
            group.groups[name] = instances
        return group, offset

    @classmethod
    def _truncate(cls, group: GroupLayout, limit: int) -> None:
        group.points = {n: p for n, p in group.points.items() if p.offset + p.size <= limit}
        for instances in group.groups.values():
            for child in instances:
                cls._truncate(child, limit)

    # ----------------------------------------------------------------- lookups
    def _root(self) -> GroupLayout:
        if self.root is None:
            raise SunSpecMapError(f"model {self.model_id}: pysunspec2 has no definition, points are unknown")
        return self.root

    def group(self, group: GroupSpec = None, index: int = 0) -> GroupLayout:
        """The group instance at ``group``/``index`` (the model's top level for None)."""
        node = self._root()
        for name, i in _normalise_group(group, index):
            if name not in node.groups:
                raise SunSpecMapError(f"model {self.model_id}: no group {name!r} in {node.name!r} "
                                      f"(groups: {sorted(node.groups) or 'none'})")
            instances = node.groups[name]
            if not 0 <= i < len(instances):
                raise SunSpecMapError(f"model {self.model_id}: group {name!r} index {i} is outside "
                                      f"0..{len(instances) - 1}")
            node = instances[i]
        return node

    def point(self, name: str, group: GroupSpec = None, index: int = 0) -> PointDef:
        """A placed point; the error names the group it lives in when ``group`` was forgotten."""
        key = (name, group, index)
        try:
            return self._placed[key]
        except KeyError:
            found = self._placed[key] = self._find_point(name, group, index)
            return found
        except TypeError:  # an unhashable group spec, e.g. a list: look it up every time
            return self._find_point(name, group, index)

    def _find_point(self, name: str, group: GroupSpec, index: int) -> PointDef:
        node = self.group(group, index)
        found = node.points.get(name)
        if found is not None:
            return found
        hint = ""
        for other in self.iter_points(node):
            if other.name == name:
                hint = f" (it is in group {'.'.join(n for n, _ in other.path)!r}: pass group=..., index=...)"
                break
        raise SunSpecMapError(f"model {self.model_id}: no point {name!r} in group {node.name!r}{hint}")

    def iter_points(self, node: GroupLayout | None = None) -> Iterator[PointDef]:
        """Every placed point, in register order."""
        node = self._root() if node is None else node
        yield from node.points.values()
        for instances in node.groups.values():
            for child in instances:
                yield from self.iter_points(child)

    def sf_point(self, point: PointDef) -> PointDef | None:
        """The sunssf point scaling ``point`` (same group first, then enclosing groups), if named."""
        if not isinstance(point.sf, str):
            return None
        key = id(point)
        if key not in self._sf_points:
            self._sf_points[key] = self._find_sf_point(point)
        return self._sf_points[key]

    def _find_sf_point(self, point: PointDef) -> PointDef | None:
        assert isinstance(point.sf, str)
        node: GroupLayout | None = self.group(point.path) if point.path else self._root()
        while node is not None:
            if point.sf in node.points:
                return node.points[point.sf]
            node = node.parent
        raise SunSpecMapError(f"{point.label}: scale factor point {point.sf!r} not found")

    def _setter(self, name: str, group: GroupSpec, index: int) -> _Setter:
        """The compiled encoder of a point (memoised like ``point``)."""
        key = (name, group, index)
        try:
            return self._setters[key]
        except KeyError:
            setter = self._setters[key] = self._compile_setter(self.point(name, group, index))
            return setter
        except TypeError:  # unhashable group spec
            return self._compile_setter(self.point(name, group, index))

    def _compile_setter(self, point: PointDef) -> _Setter:
        structural = not point.path and (point.name in ("ID", "L") or point.name in self.counts)
        refuse = (f"{point.label} is structural (fixed when the map is built)" if structural else
                  f"{point.label} is a scale factor: use set_sf" if point.type == ss_mdef.TYPE_SUNSSF else None)
        sf_kind, sf_arg = self._sf_link(point)
        sf_def = self.sf_point(point) if sf_kind == _S_REG else None
        sf_unset = f"{point.label}: its scale factor {sf_def.name} is not set (call set_sf first)" if sf_def else ""
        ints = None
        if point.type in _INT_TYPES:
            low, high, sentinel = _int_range(point.type)
            ints = (_INT_TYPES[point.type][0], low, high, sentinel, point.type in _ZERO_SENTINEL_TYPES)
        try:
            none_words: tuple[int, ...] | None = tuple(_encode(point, None, None))
        except ValueError:
            none_words = None
        return _Setter(point, self.address + point.offset, refuse, sf_kind, sf_arg, sf_unset, ints, none_words)

    def _sunssf_span(self) -> tuple[int, int]:
        """(address, count) of the registers from the model's first sunssf point to its last."""
        if self._sf_span is None:
            addresses = [self.address + p.offset for p in self.iter_points() if p.type == ss_mdef.TYPE_SUNSSF]
            self._sf_span = ((min(addresses), max(addresses) - min(addresses) + 1) if addresses
                             else (self.address, 1))
        return self._sf_span

    @property
    def count_points(self) -> set[str]:
        """Points that size repeating groups (fixed once the map is built)."""
        return set(self.counts)

    # ----------------------------------------------------------------- codecs over model words
    def initial_words(self) -> list[int]:
        """ID, L and body with every point at its not-implemented sentinel and counts filled in."""
        words = [0] * (self.length + 2)
        words[0], words[1] = self.model_id, self.length
        if self.root is None:
            return words
        for point in self.iter_points():
            if point.name in ("ID", "L") and not point.path:
                continue
            if point.name in self.counts and not point.path:
                value: Value = self.counts[point.name]
            else:
                value = None
            words[point.offset:point.offset + point.size] = _encode(point, value, None)
        return words

    def value_from(self, point: PointDef, full: Sequence[int]) -> Value:
        """Decode one point from the model's words (``full`` starts at the ID register)."""
        raw = _decode_raw(point, full[point.offset:point.offset + point.size])
        if raw is None or point.sf is None or isinstance(raw, str):
            return raw
        if isinstance(point.sf, int):
            return _apply_sf(raw, point.sf)
        sf_def = self.sf_point(point)
        assert sf_def is not None
        sf = _decode_raw(sf_def, full[sf_def.offset:sf_def.offset + 1])
        if sf is None or not isinstance(sf, int) or not SF_MIN <= sf <= SF_MAX:
            return None  # unscalable: an unknown magnitude is not a value
        return _apply_sf(raw, sf)

    def decode(self, words: Sequence[int]) -> dict[str, Any]:
        """Body words (length L, as read from ``body_address``) → point values, groups nested."""
        self._check_body(len(words))
        body = _registers(words)
        if body is None:
            return self._decode_full([self.model_id, self.length, *map(int, words)], checked=False)
        return self._decode_full([self.model_id, self.length, *body])

    def _check_body(self, count: int) -> None:
        if count != self.length:
            raise ValueError(f"model {self.model_id}: decode needs the {self.length}-register body, "
                             f"got {count} registers")

    def _decode_full(self, full: list[int], checked: bool = True) -> dict[str, Any]:
        """``decode`` of ``full`` = [ID, L, *body] (ints; ``checked``: known to be in 0..0xFFFF)."""
        plan = self._decode_plan
        if plan is None:
            plan = self._decode_plan = self._compile_group(self._root())
        if not checked and (min(full) < 0 or max(full) > 0xFFFF):  # not register values: the reference
            return self._decode_group(self._root(), full)                 # says what happens
        return _run_decode_plan(plan, full, self.value_from)

    def _decode_reference(self, words: Sequence[int]) -> dict[str, Any]:
        """``decode`` one point at a time with ``value_from`` (the reference the compiled plan must match)."""
        self._check_body(len(words))
        full = [self.model_id, self.length, *(int(w) for w in words)]
        return self._decode_group(self._root(), full)

    def _compile_group(self, node: GroupLayout) -> _DecodePlan:
        names: list[str] = []
        plain: list[tuple[str, int, int, int]] = []
        scaled: list[tuple[str, int, int, int, int]] = []
        other: list[_DecodeOp] = []
        for name, point in node.points.items():
            if point.type == ss_mdef.TYPE_PAD:
                continue
            names.append(name)
            op = self._decode_op(name, point)
            _name, kind, offset, sentinel, sf_kind, sf_arg, _point = op
            sign = 0x8000 if kind == _D_I1 else _NO_SIGN
            if kind in (_D_U1, _D_I1) and sf_kind == _S_NONE:
                plain.append((name, offset, sign, sentinel))
            elif kind in (_D_U1, _D_I1) and sf_kind == _S_REG:
                scaled.append((name, offset, sign, sentinel, sf_arg))
            else:
                other.append(op)
        groups = tuple((name, tuple(self._compile_group(child) for child in instances), name in node.repeating)
                       for name, instances in node.groups.items())
        return _DecodePlan(tuple(names), tuple(plain), tuple(scaled), tuple(other), groups)

    def _decode_op(self, name: str, point: PointDef) -> _DecodeOp:
        reference: _DecodeOp = (name, _D_REF, point.offset, None, _S_REF, 0, point)
        sf_kind, sf_arg = self._sf_link(point)
        if sf_kind == _S_REF:
            return reference
        if sf_kind == _S_REG:
            sf_arg -= self.address  # the plan indexes model words
        info = _INT_TYPES.get(point.type)
        if info is None or point.size != info[0]:
            return (name, _D_RAW, point.offset, None, sf_kind, sf_arg, point)
        kind = {(1, False): _D_U1, (1, True): _D_I1, (2, False): _D_U2, (2, True): _D_I2,
                (4, False): _D_U4, (4, True): _D_I4}[info]
        return (name, kind, point.offset, ss_mb.unimpl_value[point.type], sf_kind, sf_arg, point)

    def _sf_link(self, point: PointDef) -> tuple[int, int]:
        """(sf kind, constant exponent or sunssf register address) for the compiled codecs."""
        if point.sf is None:
            return _S_NONE, 0
        if isinstance(point.sf, int):
            return (_S_CONST, point.sf) if SF_MIN <= point.sf <= SF_MAX else (_S_REF, 0)
        try:
            sf_def = self.sf_point(point)
        except SunSpecMapError:  # the reference raises when (and only when) it needs the value
            return _S_REF, 0
        if sf_def is None or sf_def.type != ss_mdef.TYPE_SUNSSF or sf_def.size != 1:
            return _S_REF, 0
        return _S_REG, self.address + sf_def.offset

    def _decode_group(self, node: GroupLayout, full: Sequence[int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, point in node.points.items():
            if point.type != ss_mdef.TYPE_PAD:
                out[name] = self.value_from(point, full)
        for name, instances in node.groups.items():
            decoded = [self._decode_group(child, full) for child in instances]
            out[name] = decoded if name in node.repeating else decoded[0]
        return out

    def encode(self, point: PointDef, value: Value, sf: int | None) -> list[int]:
        """Words for ``value`` at scale factor ``sf`` (ignored for unscaled or constant-sf points)."""
        if isinstance(point.sf, int):
            sf = point.sf
        elif point.sf is None:
            sf = None
        elif sf is None and value is not None and point.type not in (ss_mdef.TYPE_STRING, *_FLOAT_TYPES):
            raise ValueError(f"{point.label} is scaled by {point.sf}: its current value is needed")
        return _encode(point, value, sf)


# --------------------------------------------------------------------------- whole map
class SunSpecLayout:
    """The SunSpec map of one device: 'SunS' at ``base``, then models, then the end model."""

    def __init__(self, models: Sequence[ModelLayout], base: int = DEFAULT_BASE) -> None:
        self.base = base
        self.models = list(models)
        self._by_id: dict[int, ModelLayout] = {}
        for model in self.models:
            self._by_id.setdefault(model.model_id, model)  # first instance wins; see ``models`` for all
        self.end_address = self.models[-1].end_address if self.models else base + 2
        self._points_in: dict[tuple[int, int], list[tuple[PointDef, bool]]] = {}

    @property
    def size(self) -> int:
        """Registers from ``base`` through the end model's L."""
        return self.end_address + 2 - self.base

    @property
    def model_ids(self) -> list[int]:
        return [m.model_id for m in self.models]

    def __contains__(self, model_id: object) -> bool:
        return model_id in self._by_id

    def __repr__(self) -> str:
        return f"SunSpecLayout(base={self.base}, models={self.model_ids})"

    @classmethod
    def build(cls, models: Sequence[int | tuple[int, Mapping[str, int]]], base: int = DEFAULT_BASE) -> SunSpecLayout:
        """Lay out models back to back after 'SunS'; ``(803, {"NStr": 8})`` gives group counts."""
        placed: list[ModelLayout] = []
        address = base + 2
        for spec in models:
            model_id, counts = (spec, {}) if isinstance(spec, int) else spec
            model = ModelLayout.build(model_id, address, counts)
            placed.append(model)
            address = model.end_address
        if address + 2 > 0x10000:
            raise SunSpecMapError(f"SunSpec map from {base} does not fit below 65536")
        return cls(placed, base)

    @classmethod
    def from_model_chain(cls, read_fn: ReadFn, base: int = DEFAULT_BASE, max_models: int = 256) -> SunSpecLayout:
        """Discover a device's map by walking the ID/L headers (the client side; no image needed).

        ``read_fn(address, count)`` returns ``count`` registers (e.g. a device node's Modbus FC 3
        read). Models with repeating groups get their counts read from the device; models unknown
        to pysunspec2 are kept (opaque) so the walk continues past them.
        """
        marker = [int(w) for w in read_fn(base, 2)]
        if tuple(marker) != SUNS_MARKER:
            raise SunSpecMapError(f"no SunSpec 'SunS' marker at {base} (read {marker})")
        models: list[ModelLayout] = []
        address = base + 2
        while True:
            model_id = int(read_fn(address, 1)[0])
            if model_id == END_MODEL_ID:
                break
            length = int(read_fn(address + 1, 1)[0])
            if len(models) >= max_models or address + 2 + length > 0xFFFF:
                raise SunSpecMapError(f"SunSpec model chain from {base} does not end (model {model_id} at "
                                      f"{address}, L={length})")
            try:
                mdef = _model_def(model_id)
            except SunSpecMapError:
                models.append(ModelLayout(model_id, address, length, None))
            else:
                counts = cls._read_counts(read_fn, mdef, address, length)
                models.append(ModelLayout.build(model_id, address, counts, declared_length=length))
            address += 2 + length
        return cls(models, base)

    @staticmethod
    def _read_counts(read_fn: ReadFn, mdef: Mapping[str, Any], address: int, length: int) -> dict[str, int]:
        gdef = mdef[ss_mdef.GROUP]
        names = _count_points(gdef)
        if not names:
            return {}
        offsets = _top_level_offsets(gdef)
        counts: dict[str, int] = {}
        for name in sorted(names):
            if name not in offsets:
                raise SunSpecMapError(f"model {mdef.get('id')}: count point {name!r} is not a top-level point")
            offset, _size = offsets[name]
            if offset - 2 >= length:
                raise SunSpecMapError(f"model {mdef.get('id')} at {address}: L={length} too short for {name!r}")
            value = int(read_fn(address + offset, 1)[0])
            counts[name] = 0 if value == 0xFFFF else value
        return counts

    # ----------------------------------------------------------------- lookups
    def model(self, model_id: int) -> ModelLayout:
        """The (first) instance of ``model_id``; SunSpecMapError lists the models present."""
        try:
            return self._by_id[model_id]
        except KeyError:
            raise SunSpecMapError(f"model {model_id} is not in this map (models: {self.model_ids})") from None

    def point(self, model_id: int, point: str, group: GroupSpec = None, index: int = 0) -> PointDef:
        return self.model(model_id).point(point, group, index)

    def address(self, model_id: int, point: str, group: GroupSpec = None, index: int = 0) -> tuple[int, int]:
        """(register address, register count) of one point."""
        model = self.model(model_id)
        placed = model.point(point, group, index)
        return model.address + placed.offset, placed.size

    def scale_factor_of(self, model_id: int, point: str, group: GroupSpec = None,
                        index: int = 0) -> str | int | None:
        """The sf point name (or constant exponent) a point is scaled by; None if unscaled."""
        return self.point(model_id, point, group, index).sf

    def model_block(self, model_id: int) -> tuple[int, int]:
        """(address, length) of the whole model body, after its ID/L header."""
        model = self.model(model_id)
        return model.body_address, model.length

    def read_blocks(self, model_id: int) -> list[tuple[int, int]]:
        """``model_block`` split into reads of at most 125 registers."""
        address, length = self.model_block(model_id)
        return [(address + i, min(MAX_READ_REGISTERS, length - i)) for i in range(0, length, MAX_READ_REGISTERS)]

    def read_model(self, model_id: int, read_fn: ReadFn) -> dict[str, Any]:
        """Read a whole model body with ``read_fn`` and decode it."""
        model = self.model(model_id)
        full = [model.model_id, model.length]  # decode's input, built in place (one int() per word)
        checked = True
        for address, count in self.read_blocks(model_id):
            block = read_fn(address, count)
            words = _registers(block)
            if words is None:
                full.extend(map(int, block))
                checked = False
            else:
                full += words
        model._check_body(len(full) - 2)
        return model._decode_full(full, checked)

    def decode(self, model_id: int, words: Sequence[int]) -> dict[str, Any]:
        """Model body words → ``{point: value}``; repeating groups are lists of dicts by group name."""
        return self.model(model_id).decode(words)

    def encode_write(self, model_id: int, point: str, value: Value, current_sf: int | None = None,
                     group: GroupSpec = None, index: int = 0) -> tuple[int, list[int]]:
        """(address, words) a client writes to set ``point``; ``current_sf`` is its sf's value.

        Write the words in one FC 16 request so multi-register points change atomically.
        """
        model = self.model(model_id)
        placed = model.point(point, group, index)
        if not placed.writable:
            raise ValueError(f"{placed.label} is read-only")
        return model.address + placed.offset, model.encode(placed, value, current_sf)

    def points_in(self, address: int, count: int) -> list[tuple[PointDef, bool]]:
        """Points overlapping ``address..address+count-1``, each with True when fully covered."""
        # Memoised (the layout is fixed once built): every client write (a PCS set-point, each
        # control step) asks for the same few spans, and the scan walks every point of every model.
        key = (address, count)
        found = self._points_in.get(key)
        if found is None:
            found = self._points_in[key] = self._find_points_in(address, count)
        return list(found)

    def _find_points_in(self, address: int, count: int) -> list[tuple[PointDef, bool]]:
        out: list[tuple[PointDef, bool]] = []
        end = address + count
        for model in self.models:
            if model.end_address <= address or model.address >= end or model.root is None:
                continue
            for point in model.iter_points():
                start = model.address + point.offset
                stop = start + point.size
                if start < end and stop > address:
                    out.append((point, address <= start and stop <= end))
        return out


# --------------------------------------------------------------------------- plant-side image
class SunSpecImage:
    """A RegisterImage laid out as a SunSpec map, with typed, scale-factor-aware access."""

    def __init__(self, layout: SunSpecLayout, name: str = "sunspec") -> None:
        self.layout = layout
        self.registers = RegisterImage(layout.base, layout.size, name)
        self._records: dict[tuple, _Record | None] = {}  # compiled set_many plans, by model, group, names
        words = [*SUNS_MARKER]
        for model in layout.models:
            words.extend(model.initial_words())
        words.extend([END_MODEL_ID, 0])
        self.registers.set_words(layout.base, words)

    @property
    def name(self) -> str:
        return self.registers.name

    def __repr__(self) -> str:
        return f"SunSpecImage({self.name!r}, models={self.layout.model_ids})"

    def address(self, model_id: int, point: str, group: GroupSpec = None, index: int = 0) -> tuple[int, int]:
        """(register address, register count) of one point."""
        return self.layout.address(model_id, point, group, index)

    def _sf_value(self, model: ModelLayout, point: PointDef) -> int | None:
        sf_def = model.sf_point(point)
        if sf_def is None:
            return point.sf if isinstance(point.sf, int) else None
        # peek: the plant's own encoding must not trigger the image's refresh-on-read hook
        raw = _decode_raw(sf_def, self.registers.peek(model.address + sf_def.offset, 1))
        if raw is None:
            raise ValueError(f"{point.label}: its scale factor {sf_def.name} is not set (call set_sf first)")
        assert isinstance(raw, int)
        return raw

    def set(self, model_id: int, point: str, value: Value, group: GroupSpec = None, index: int = 0) -> None:
        """Store an engineering value (None = not implemented) using the sf currently in the image."""
        self._set_items(model_id, ((point, value),), group, index)

    def set_many(self, model_id: int, values: Mapping[str, Value], group: GroupSpec = None, index: int = 0) -> None:
        """``set`` several points of one group (in order: a bad one raises after those before it are stored)."""
        if values:
            # The plant refreshes the same groups with the same point names on every read of the image
            # (the BMS: 8 racks x 11 points each poll), so each name list compiles once into a record.
            try:
                key = (model_id, group, index, tuple(values))
                record = self._records.get(key, _NO_RECORD)
            except TypeError:  # an unhashable group spec
                record = None
            if record is _NO_RECORD:
                record = self._records[key] = self._compile_record(model_id, key[3], group, index)
            if record is not None and self._store_record(record, values.values()):
                return
        self._set_items(model_id, values.items(), group, index)

    def _compile_record(self, model_id: int, names: tuple[str, ...], group: GroupSpec, index: int) -> _Record | None:
        """The record for ``names`` (integer points only); None: ``_set_items`` does it (and the errors)."""
        try:
            model = self.layout.model(model_id)
            setters = [model._setter(name, group, index) for name in names]
        except Exception:  # whatever it is, _set_items raises it as it always has
            return None
        if any(s.refuse is not None or s.sf_kind == _S_REF or s.ints is None or s.ints[0] > 2 for s in setters):
            return None
        # the registers to store, merged into runs of adjacent points exactly as ``_store`` merges them
        runs: list[list[int]] = []  # [address, count]
        for s in sorted(setters, key=lambda s: s.address):
            if runs and s.address == runs[-1][0] + runs[-1][1]:
                runs[-1][1] += s.ints[0]  # type: ignore[index]
            elif runs and s.address < runs[-1][0] + runs[-1][1]:
                return None  # overlapping points (the same name twice cannot happen in a mapping)
            else:
                runs.append([s.address, s.ints[0]])  # type: ignore[index]
        where: list[tuple] = []
        for s in setters:
            run = next(i for i, (address, count) in enumerate(runs) if address <= s.address < address + count)
            regs, low, high, sentinel, zero_ok = s.ints  # type: ignore[misc]
            where.append((run, s.address - runs[run][0], regs, s.sf_kind, s.sf_arg, low, high, sentinel, zero_ok,
                          s.none_words))
        return _Record(tuple(where), tuple((a, c) for a, c in runs), model._sunssf_span())

    def _store_record(self, record: _Record, values: Iterable[Value]) -> bool:
        """``_set_items`` for a compiled record when every value takes the common path (then the same
        words reach the same ``set_words`` calls); False, with nothing stored, for ``_set_items`` to do it."""
        buffers = [[0] * count for _address, count in record.runs]
        sf_first, sf_words = record.sf_span[0], None
        for value, (run, offset, regs, sf_kind, sf_arg, low, high, sentinel, zero_ok, none_words) in zip(
                values, record.points, strict=True):
            if value is None:
                if none_words is None:
                    return False
                buffers[run][offset:offset + regs] = none_words
                continue
            sf: int | None = None
            if sf_kind == _S_CONST:
                sf = sf_arg
            elif sf_kind == _S_REG:
                if sf_words is None:  # peek: the plant's own encoding must not trigger refresh-on-read
                    sf_words = self.registers.peek(sf_first, record.sf_span[1])
                sf = sf_words[sf_arg - sf_first]
                if sf >= 0x8000:
                    sf -= 0x10000
                if sf == _SUNSSF_UNSET:
                    return False
            raw = _fast_int_raw(value, sf)
            if raw is None or not low <= raw <= high or (raw == sentinel and not zero_ok):
                return False
            if regs == 1:
                buffers[run][offset] = raw & 0xFFFF
            else:
                buffers[run][offset] = (raw >> 16) & 0xFFFF
                buffers[run][offset + 1] = raw & 0xFFFF
        self.registers.set_runs((address, words) for (address, _count), words in zip(record.runs, buffers,
                                                                                     strict=True))
        return True

    def _set_items(self, model_id: int, items: Iterable[tuple[str, Value]], group: GroupSpec, index: int) -> None:
        """``_set_reference`` for each item through the compiled encoders: the sunssf registers are read
        once (``set`` never writes them) and contiguous points are stored with one ``set_words``."""
        pending: list[tuple[int, list[int]]] = []
        model: ModelLayout | None = None
        sf_first, sf_words = 0, None
        try:
            for name, value in items:
                if model is None:
                    model = self.layout.model(model_id)
                point, address, refuse, sf_kind, sf_arg, sf_unset, ints, none_words = model._setter(name, group, index)
                if refuse is not None:
                    raise ValueError(refuse)
                if value is None:
                    words = list(none_words) if none_words is not None else model.encode(point, None, None)
                elif sf_kind == _S_REF:
                    words = model.encode(point, value, self._sf_value(model, point))
                else:
                    sf: int | None = None
                    if sf_kind == _S_CONST:
                        sf = sf_arg
                    elif sf_kind == _S_REG:
                        if sf_words is None:  # peek: the plant's own encoding must not trigger refresh-on-read
                            sf_first, count = model._sunssf_span()
                            sf_words = self.registers.peek(sf_first, count)
                        sf = sf_words[sf_arg - sf_first]
                        if sf >= 0x8000:
                            sf -= 0x10000
                        if sf == _SUNSSF_UNSET:
                            raise ValueError(sf_unset)
                    raw = None if ints is None else _fast_int_raw(value, sf)
                    if raw is None or not ints[1] <= raw <= ints[2] or (raw == ints[3] and not ints[4]):
                        words = model.encode(point, value, sf)  # the reference: other types, and every error
                    else:
                        words = _int_words(raw, ints[0])
                pending.append((address, words))
        finally:
            if pending:
                self._store(pending)

    def _store(self, pending: list[tuple[int, list[int]]]) -> None:
        """``set_words`` the encoded points, merging runs of adjacent registers into one call."""
        pending.sort(key=itemgetter(0))
        start, run = pending[0][0], list(pending[0][1])
        for address, words in pending[1:]:
            if address == start + len(run):
                run.extend(words)
            else:
                self.registers.set_words(start, run)
                start, run = address, list(words)
        self.registers.set_words(start, run)

    def _set_reference(self, model_id: int, point: str, value: Value, group: GroupSpec = None,
                       index: int = 0) -> None:
        """``set`` one point through the reference codec (what the compiled encoders must match)."""
        model = self.layout.model(model_id)
        placed = model.point(point, group, index)
        if not placed.path and (placed.name in ("ID", "L") or placed.name in model.counts):
            raise ValueError(f"{placed.label} is structural (fixed when the map is built)")
        if placed.type == ss_mdef.TYPE_SUNSSF:
            raise ValueError(f"{placed.label} is a scale factor: use set_sf")
        sf = None if value is None or placed.sf is None else self._sf_value(model, placed)
        self.registers.set_words(model.address + placed.offset, model.encode(placed, value, sf))

    def set_sf(self, model_id: int, sf_point: str, exponent: int | None, group: GroupSpec = None,
               index: int = 0) -> None:
        """Set a scale factor (-10..10; None = not implemented). Values already set keep their raw words."""
        model = self.layout.model(model_id)
        placed = model.point(sf_point, group, index)
        if placed.type != ss_mdef.TYPE_SUNSSF:
            raise ValueError(f"{placed.label} is {placed.type}, not a scale factor (sunssf)")
        if exponent is not None and (isinstance(exponent, bool) or not isinstance(exponent, int)):
            raise ValueError(f"{placed.label}: scale factor must be an int, got {exponent!r}")
        self.registers.set_words(model.address + placed.offset, _encode(placed, exponent, None))

    def get(self, model_id: int, point: str, group: GroupSpec = None, index: int = 0) -> Value:
        """The current engineering value of a point, None for a not-implemented sentinel."""
        model = self.layout.model(model_id)
        placed = model.point(point, group, index)
        full = self.registers.read(model.address, model.length + 2)
        return model.value_from(placed, full)

    def decode(self, model_id: int) -> dict[str, Any]:
        """The whole model as a client would decode it."""
        model = self.layout.model(model_id)
        return model.decode(self.registers.read(model.body_address, model.length))

    def decode_write(self, address: int, values: Sequence[int]) -> list[PointWrite]:
        """What a client write would set, for ``on_write`` hooks (sf taken from the image + the write).

        Raises RegisterError(…, 2) if the write touches a read-only or structural register or splits
        a multi-register point, as a SunSpec device refuses such writes.
        """
        self.registers.read(address, len(values))  # outside the map → RegisterError
        touched = self.layout.points_in(address, len(values))
        for point, complete in touched:
            structural = not point.path and (point.name in ("ID", "L") or
                                              point.name in self.layout.model(point.model_id).counts)
            if not point.writable or structural:
                raise RegisterError(f"{self.name}: {point.label} is read-only", 2)
            if not complete:
                raise RegisterError(f"{self.name}: write splits {point.label} ({point.size} registers)", 2)
        out: list[PointWrite] = []
        for point, _complete in touched:
            model = self.layout.model(point.model_id)
            full = self.registers.read(model.address, model.length + 2)
            start = model.address
            for i, word in enumerate(values):  # overlay the proposed words on the current model
                offset = address + i - start
                if 0 <= offset < len(full):
                    full[offset] = int(word)
            out.append(PointWrite(point.model_id, point.name, point.path, model.value_from(point, full)))
        return out


# --------------------------------------------------------------------------- device builders
def _common(image: SunSpecImage, model_name: str, serial: str) -> None:
    image.set(1, "Mn", "EnergizeOS")
    image.set(1, "Md", model_name)
    image.set(1, "SN", serial)
    image.set(1, "DA", 1)


def build_pcs_image(name: str = "pcs", *, vv_curves: int = 3, vv_points: int = 4,
                    base: int = DEFAULT_BASE) -> SunSpecImage:
    """The PCS map: models 1, 701, 702, 703, 704, 705 (volt-var curves x points), 713."""
    layout = SunSpecLayout.build([1, 701, 702, 703, 704, (705, {"NCrv": vv_curves, "NPt": vv_points}), 713],
                                 base)
    image = SunSpecImage(layout, name)
    _common(image, "SimPCS", f"EOS-{name.upper()}-0001")
    return image


def build_bms_image(n_racks: int = 8, name: str = "bms", *, base: int = DEFAULT_BASE) -> SunSpecImage:
    """The BMS map: models 1, 802 (battery) and 803 (lithium-ion bank, one ``string`` group per rack)."""
    if n_racks < 1:
        raise ValueError("a BMS needs at least one rack (803 NStr >= 1)")
    layout = SunSpecLayout.build([1, 802, (803, {"NStr": n_racks})], base)
    image = SunSpecImage(layout, name)
    _common(image, "SimBMS", f"EOS-{name.upper()}-0001")
    return image
