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
