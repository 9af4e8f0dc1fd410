"""Base class shared by every generated message class."""

from __future__ import annotations

import dataclasses
from functools import cache
from typing import Any, ClassVar

import numpy as np

_SCALAR_CHECKS: dict[str, tuple[type, ...]] = {"bool": (bool, np.bool_), "str": (str,),
                                               "float": (float, int, np.floating, np.integer),
                                               "int": (int, np.integer)}


@cache
def field_names(cls: type) -> tuple[str, ...]:
    """Real fields only (``__dataclass_fields__`` also lists the ClassVar constants)."""
    return tuple(f.name for f in dataclasses.fields(cls))


@cache
def _field_kinds(cls: type) -> tuple[tuple[str, str], ...]:
    return tuple((f.name, f.type if isinstance(f.type, str) else f.type.__name__) for f in dataclasses.fields(cls))


# Fast path of ``check_fields`` (it runs on every publish): per class, a plan of exact-type checks
# that accepts a message whose every field already holds exactly its declared type (float/int/str/
# bool, a nested message of its class, a numpy array of its dtype and length). Anything else, an
# error included, goes through the full check, so what is raised or coerced stays exactly as before.
_FAST_SCALARS: dict[str, frozenset[type]] = {"bool": frozenset({bool}), "str": frozenset({str}),
                                             "float": frozenset({float, int}), "int": frozenset({int})}
_F_SCALAR, _F_STRS, _F_SEQ, _F_NESTED, _F_ARRAY, _F_FREE = range(6)


@cache
def _fast_plan(cls: type) -> tuple[tuple[str, int, Any], ...]:
    plan: list[tuple[str, int, Any]] = []
    for name, kind in _field_kinds(cls):  # the same branches, in the same order, as check_fields
        if kind in _SCALAR_CHECKS:
            plan.append((name, _F_SCALAR, _FAST_SCALARS[kind]))
        elif kind == "list[str]":
            plan.append((name, _F_STRS, None))
        elif kind.startswith("list["):
            plan.append((name, _F_SEQ, cls._NESTED[name]))
        elif name in cls._NESTED:
            plan.append((name, _F_NESTED, cls._NESTED[name]))
        elif name in cls._ARRAYS:
            dtype, length = cls._ARRAYS[name]
            plan.append((name, _F_ARRAY, (np.dtype(dtype), length)))
        else:
            plan.append((name, _F_FREE, None))  # not checked by check_fields either
    return tuple(plan)


def _fast_valid(msg: Message) -> bool:
    """True when ``check_fields`` would pass without coercing anything; False: ask it."""
    for name, kind, arg in _fast_plan(type(msg)):
        value = getattr(msg, name)
        if kind == _F_SCALAR:
            if type(value) not in arg:
                return False
        elif kind == _F_NESTED:
            if type(value) is not arg or not _fast_valid(value):
                return False
        elif kind == _F_ARRAY:
            dtype, length = arg
            if type(value) is not np.ndarray or (value.dtype is not dtype and value.dtype != dtype) or (
                    length and len(value) != length):
                return False
        elif kind == _F_STRS:
            if type(value) is not list:
                return False
            for item in value:
                if type(item) is not str:
                    return False
        elif kind == _F_SEQ:
            if type(value) is not list:
                return False
            for item in value:
                if type(item) is not arg or not _fast_valid(item):
                    return False
    return True


class MessageDecodeError(ValueError):
    """A payload could not be decoded as the expected message type."""


class MessageEncodeError(ValueError):
    """A message object could not be encoded (wrong field type or array length)."""


class Message:
    """Behaviour common to generated ROS 2 message dataclasses.

    Generated classes set ``__msgtype__`` (e.g. ``energizeos_msgs/msg/MeterReading``) and
    ``_NESTED`` (field name -> message class for nested and nested-sequence fields).
    """

    __slots__ = ()
    __msgtype__: ClassVar[str]
    _NESTED: ClassVar[dict[str, type[Message]]] = {}
    _ARRAYS: ClassVar[dict[str, tuple[Any, int]]] = {}  # field -> (numpy dtype, fixed length or 0)

    def _coerce_arrays(self) -> None:
        # Primitive arrays travel as numpy arrays (what rosbags' CDR codec reads and writes);
        # accept lists from callers and convert once here.
        for name, (dtype, _length) in self._ARRAYS.items():
            value = getattr(self, name)
            if isinstance(value, np.ndarray) and value.dtype == dtype:
                continue
            array = np.asarray(value)
            # Only lossless, same-kind conversions: ["x"] must not become [True], 0.5 not 0.
            if array.size and not np.can_cast(array.dtype, dtype, casting="same_kind"):
                raise TypeError(f"{self.__msgtype__}.{name} must hold {np.dtype(dtype).name} values, "
                                f"got {array.dtype.name} {value!r}")
            object.__setattr__(self, name, array.astype(dtype))

    def check_fields(self, path: str = "") -> None:
        """Raise TypeError naming the field if a value has the wrong type.

        Run before encoding: CDR would otherwise write "false" as True for a bool, a string
        as a list of characters, or an int64 array's bits as float64.
        """
        if _fast_valid(self):
            return  # every field already holds exactly its declared type: nothing to check or coerce
        self._coerce_arrays()
        for name, kind in _field_kinds(type(self)):
            value = getattr(self, name)
            where = f"{self.__msgtype__}.{path}{name}"
            if kind in _SCALAR_CHECKS:
                ok = isinstance(value, _SCALAR_CHECKS[kind]) and (kind == "bool" or not isinstance(value, bool))
                if not ok:
                    raise TypeError(f"{where} must be {kind}, got {type(value).__name__} {value!r}")
            elif kind == "list[str]":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise TypeError(f"{where} must be a list of str, got {value!r}")
            elif kind.startswith("list["):
                nested = self._NESTED[name]
                if not isinstance(value, list) or not all(isinstance(v, nested) for v in value):
                    raise TypeError(f"{where} must be a list of {nested.__name__}")
                for i, item in enumerate(value):
                    item.check_fields(f"{path}{name}[{i}].")
            elif name in self._NESTED:
                if not isinstance(value, self._NESTED[name]):
                    raise TypeError(f"{where} must be {self._NESTED[name].__name__}, got {type(value).__name__}")
                value.check_fields(f"{path}{name}.")
            elif name in self._ARRAYS and self._ARRAYS[name][1] and len(value) != self._ARRAYS[name][1]:
                raise TypeError(f"{where} must have {self._ARRAYS[name][1]} elements, got {len(value)}")

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        for name in field_names(type(self)):
            a, b = getattr(self, name), getattr(other, name)
            if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
                if not np.array_equal(a, b):
                    return False
            elif a != b:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]  # mutable, like dataclasses with eq

    def to_dict(self) -> dict[str, Any]:
        """Plain Python data (lists, dicts, numbers, strings) for JSON and YAML."""
        return {name: _plain(getattr(self, name)) for name in field_names(type(self))}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Message:
        """Build a message from plain data; unknown fields raise a ValueError naming them."""
        data = data or {}
        if not isinstance(data, dict):
            raise ValueError(f"{cls.__msgtype__}: expected a mapping of fields, got {type(data).__name__}")
        fields = field_names(cls)
        unknown = sorted(set(data) - set(fields))
        if unknown:
            raise ValueError(
                f"{cls.__msgtype__} has no field(s) {', '.join(unknown)}; fields are: {', '.join(fields)}"
            )
        kwargs: dict[str, Any] = {}
        for name, value in data.items():
            nested = cls._NESTED.get(name)
            if nested is not None:
                if isinstance(value, list):
                    value = [nested.from_dict(item) for item in value]
                else:
                    value = nested.from_dict(value)
            kwargs[name] = value
        return cls(**kwargs)


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return value.to_dict()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
