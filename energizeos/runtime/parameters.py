"""Node parameters, shaped like rclpy's: declare with a default, override from launch/YAML.

A wrong type, an out-of-range value or an override for a parameter the node never declares
fails fast with a ParameterError naming the node and the parameter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ParameterValue = bool | int | float | str | list
# Lowest rate a periodic node parameter (poll, physics step, watchdog tick) accepts: one per hour.
# Long savings simulations run the whole graph at a 60 s step (1/60 Hz); the field rates stay the defaults.
MIN_RATE_HZ = 1.0 / 3600.0


class ParameterError(ValueError):
    """A configuration error in a node's parameters."""


@dataclass(frozen=True)
class ParameterDescriptor:
    description: str = ""
    read_only: bool = False
    min_value: float | None = None
    max_value: float | None = None
    choices: tuple = ()


@dataclass
class Parameter:
    name: str
    value: Any
    descriptor: ParameterDescriptor = field(default_factory=ParameterDescriptor)

    @property
    def type_(self) -> type:
        return type(self.value)


def _type_name(value: Any) -> str:
    return type(value).__name__


def coerce(node: str, name: str, default: Any, value: Any) -> Any:
    """Check an override against the declared default's type (int widens to float)."""
    if default is None:
        return value
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, str):
        ok = isinstance(value, str)
    elif isinstance(default, list):
        ok = isinstance(value, list)
    else:
        raise ParameterError(f"node {node!r}: parameter {name!r} has unsupported type {_type_name(default)}")
    if not ok:
        raise ParameterError(
            f"node {node!r}: parameter {name!r} expects {_type_name(default)}, "
            f"got {_type_name(value)} {value!r}"
        )
    return value


def check_range(node: str, name: str, value: Any, descriptor: ParameterDescriptor) -> None:
    if descriptor.choices and value not in descriptor.choices:
        raise ParameterError(
            f"node {node!r}: parameter {name!r} = {value!r} is not one of {list(descriptor.choices)}"
        )
    if isinstance(value, int | float) and not isinstance(value, bool):
        if descriptor.min_value is not None and value < descriptor.min_value:
            raise ParameterError(
                f"node {node!r}: parameter {name!r} = {value} is below its minimum {descriptor.min_value}"
            )
        if descriptor.max_value is not None and value > descriptor.max_value:
            raise ParameterError(
                f"node {node!r}: parameter {name!r} = {value} is above its maximum {descriptor.max_value}"
            )
