"""Command-line arguments in the rclpy convention: ``--ros-args -r __node:=x -p k:=v --params-file f``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from energizeos.runtime.parameters import ParameterError
from energizeos.yaml_file import read_yaml


@dataclass
class RosArgs:
    node_name: str | None = None
    namespace: str | None = None
    remaps: dict[str, str] = field(default_factory=dict)
    # parameters for any node (-p) and per node name from params files
    global_params: dict[str, Any] = field(default_factory=dict)
    node_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    log_level: str | None = None

    def params_for(self, node_name: str, namespace: str, *, wildcard: bool = True) -> dict[str, Any]:
        """Overrides for one node: wildcard sections, then its name, then its full name, then -p."""
        fq = f"{namespace.rstrip('/')}/{node_name}"
        merged: dict[str, Any] = {}
        keys = ("/**", "**", node_name, fq, fq.lstrip("/")) if wildcard else (node_name, fq, fq.lstrip("/"))
        for key in keys:
            merged.update(self.node_params.get(key, {}))
        merged.update(self.global_params)
        return merged


def parse_ros_args(argv: list[str] | None) -> RosArgs:
    """Parse the --ros-args section of argv; anything before it is left to the program."""
    result = RosArgs()
    if not argv or "--ros-args" not in argv:
        return result
    args = argv[argv.index("--ros-args") + 1 :]
    i = 0
    while i < len(args):
        flag = args[i]
        if flag == "--":
            break
        if flag in ("-r", "--remap", "-p", "--param", "--params-file", "--log-level"):
            if i + 1 >= len(args):
                raise ParameterError(f"--ros-args: {flag} needs a value")
            value = args[i + 1]
            i += 2
        else:
            raise ParameterError(f"--ros-args: unknown flag {flag!r}")
        if flag in ("-r", "--remap"):
            src, sep, dst = value.partition(":=")
            if not sep:
                raise ParameterError(f"--ros-args: remap {value!r} must be FROM:=TO")
            if src == "__node" or src == "__name":
                result.node_name = dst
            elif src == "__ns":
                result.namespace = dst
            else:
                result.remaps[src] = dst
        elif flag in ("-p", "--param"):
            name, sep, text = value.partition(":=")
            if not sep or not name:
                raise ParameterError(f"--ros-args: parameter {value!r} must be NAME:=VALUE")
            result.global_params[name] = yaml.safe_load(text) if text else ""
        elif flag == "--params-file":
            for node, params in load_params_file(Path(value)).items():
                result.node_params.setdefault(node, {}).update(params)
        else:
            result.log_level = value.upper()
    return result


def load_params_file(path: Path) -> dict[str, dict[str, Any]]:
    """ROS 2 parameter YAML: ``node_name: {ros__parameters: {...}}`` (node may be '/**')."""
    data = read_yaml(path, "parameter file", ParameterError)
    if not isinstance(data, dict):
        raise ParameterError(f"parameter file {path}: top level must map node names to sections")
    out: dict[str, dict[str, Any]] = {}
    for node, section in data.items():
        if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
            raise ParameterError(f"parameter file {path}: section {node!r} needs a 'ros__parameters' mapping")
        out[str(node)] = _flatten(section["ros__parameters"])
    return out


def _flatten(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings become dotted names, as ROS 2 does ("limits.soc_min")."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat
