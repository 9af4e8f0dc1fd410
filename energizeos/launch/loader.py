"""Load a launch file into a flat list of process specs, failing fast with precise messages."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from energizeos.launch.description import (
    DeclareLaunchArgument,
    ExecuteProcess,
    IncludeLaunchDescription,
    LaunchConfiguration,
    LaunchContext,
    LaunchDescription,
    LaunchError,
    Node,
    OpaqueFunction,
)
from energizeos.runtime.args import load_params_file
from energizeos.runtime.names import InvalidNameError, normalize_namespace, validate_node_name
from energizeos.runtime.parameters import ParameterError

NODE_PACKAGE = "energizeos.nodes"
SCALARS = (bool, int, float, str)


@dataclass
class ProcessSpec:
    name: str
    cmd: list[str]
    source: str  # launch file that declared it, for error messages
    respawn: bool = False
    respawn_delay: float = 1.0
    shutdown_order: int = 100
    env: dict[str, str] = field(default_factory=dict)
    cwd: str | None = None
    params: dict[str, Any] = field(default_factory=dict)  # node parameters, written to a params file
    is_node: bool = False


def parse_launch_arguments(items: list[str]) -> dict[str, str]:
    """``name:=value`` pairs from the command line."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition(":=")
        if not sep or not name:
            raise LaunchError(f"launch argument {item!r} must be written name:=value")
        out[name] = value
    return out


def load_launch_file(path: str | Path, arguments: dict[str, str] | None = None) -> list[ProcessSpec]:
    specs: list[ProcessSpec] = []
    used: set[str] = set()
    _load(Path(path), dict(arguments or {}), specs, used, top=True)
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise LaunchError(f"{path}: more than one process named {', '.join(dupes)}")
    return specs


def _import_launch_file(path: Path) -> LaunchDescription:
    if not path.is_file():
        raise LaunchError(f"launch file {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"_launch_{abs(hash(path))}", path)
    if spec is None or spec.loader is None:
        raise LaunchError(f"launch file {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise LaunchError(f"launch file {path} failed to load: {type(exc).__name__}: {exc}") from exc
    generate = getattr(module, "generate_launch_description", None)
    if not callable(generate):
        raise LaunchError(f"launch file {path} has no generate_launch_description() function")
    try:
        description = generate()
    except Exception as exc:
        raise LaunchError(f"launch file {path}: generate_launch_description() raised "
                          f"{type(exc).__name__}: {exc}") from exc
    if not isinstance(description, LaunchDescription):
        raise LaunchError(f"launch file {path}: generate_launch_description() must return a LaunchDescription")
    return description


def _load(path: Path, given: dict[str, str], specs: list[ProcessSpec], used: set[str], top: bool) -> None:
    description = _import_launch_file(path)
    context: dict[str, str] = {}
    declared = {e.name for e in description.entities if isinstance(e, DeclareLaunchArgument)}
    if top:
        unknown = sorted(set(given) - declared)
        if unknown:
            raise LaunchError(f"launch file {path}: unknown argument(s) {', '.join(unknown)}; "
                              f"it declares: {', '.join(sorted(declared)) or 'none'}")

    def resolve(value: Any, where: str) -> Any:
        if isinstance(value, LaunchConfiguration):
            if value.name in context:
                return context[value.name]
            if value.default is not None:
                return value.default
            raise LaunchError(f"launch file {path}: {where} uses argument {value.name!r}, which is not declared")
        if isinstance(value, list):
            return [resolve(v, where) for v in value]
        if isinstance(value, tuple):
            return tuple(resolve(v, where) for v in value)
        if isinstance(value, dict):
            return {k: resolve(v, f"{where}, parameter {k!r}") for k, v in value.items()}
        return value

    pending = list(description.entities)
    while pending:
        entity = pending.pop(0)
        if isinstance(entity, DeclareLaunchArgument):
            if entity.name in given:
                context[entity.name] = given[entity.name]
            elif entity.default_value is not None:
                context[entity.name] = entity.default_value
            else:
                hint = f": {entity.description}" if entity.description else ""
                raise LaunchError(f"launch file {path}: argument {entity.name!r} is required "
                                  f"(give {entity.name}:=VALUE){hint}")
        elif isinstance(entity, Node):
            specs.append(_node_spec(path, entity, resolve))
        elif isinstance(entity, ExecuteProcess):
            cmd = [str(c) for c in resolve(entity.cmd, f"process {entity.name!r}")]
            specs.append(ProcessSpec(entity.name, cmd, str(path), entity.respawn, entity.respawn_delay,
                                     entity.shutdown_order, dict(entity.env), entity.cwd))
        elif isinstance(entity, IncludeLaunchDescription):
            include = Path(str(resolve(entity.path, "include")))
            include = include if include.is_absolute() else path.parent / include
            items = entity.launch_arguments
            pairs = items.items() if isinstance(items, dict) else items
            args = {k: str(resolve(v, f"include {include.name}")) for k, v in pairs}
            _load(include, args, specs, used, top=False)
        elif isinstance(entity, OpaqueFunction):
            try:
                produced = entity.function(LaunchContext(dict(context)))
            except LaunchError as exc:
                raise LaunchError(f"launch file {path}: {exc}") from exc
            except Exception as exc:
                raise LaunchError(f"launch file {path}: {getattr(entity.function, '__name__', 'function')} "
                                  f"raised {type(exc).__name__}: {exc}") from exc
            pending[:0] = list(produced or [])
        else:
            raise LaunchError(f"launch file {path}: unsupported entity {type(entity).__name__}")


def _node_spec(path: Path, node: Node, resolve: Any) -> ProcessSpec:
    label = f"node {node.name or node.executable or node.module!r}"
    if not node.name:
        raise LaunchError(f"launch file {path}: {label} needs a name=")
    try:
        validate_node_name(node.name)
        namespace = normalize_namespace(str(resolve(node.namespace, label)))
    except InvalidNameError as exc:
        raise LaunchError(f"launch file {path}: {label}: {exc}") from exc
    target = _resolve_target(path, node, label)
    params: dict[str, Any] = {}
    for item in node.parameters:
        item = resolve(item, label)
        if isinstance(item, dict):
            params.update(item)
        elif isinstance(item, str):
            params_file = Path(item) if Path(item).is_absolute() else path.parent / item
            try:
                sections = load_params_file(params_file)
            except ParameterError as exc:
                raise LaunchError(f"launch file {path}: {label}: {exc}") from exc
            fq = f"{namespace.rstrip('/')}/{node.name}"
            for key in ("/**", "**", node.name, fq, fq.lstrip("/")):
                params.update(sections.get(key, {}))
        else:
            raise LaunchError(f"launch file {path}: {label}: parameters must be dicts or YAML file paths")
    for pname, value in params.items():
        params[pname] = _parameter_value(path, label, pname, value)
    cmd = [sys.executable, "-m", "energizeos.launch.node_process", target, *map(str, resolve(node.arguments, label)),
           "--ros-args", "-r", f"__node:={node.name}", "-r", f"__ns:={namespace}"]
    for src, dst in resolve(node.remappings, label):
        cmd += ["-r", f"{src}:={dst}"]
    if node.log_level:
        cmd += ["--log-level", node.log_level]
    return ProcessSpec(node.name, cmd, str(path), node.respawn, float(node.respawn_delay), node.shutdown_order,
                       dict(node.env), None, params, is_node=True)


def _parameter_value(path: Path, label: str, name: str, value: Any) -> Any:
    """Launch arguments arrive as text: read them as YAML scalars, as ROS 2 does."""
    if isinstance(value, str):
        try:
            value = yaml.safe_load(value) if value.strip() else value
        except yaml.YAMLError:
            pass
        if value is None:
            value = ""
    ok = isinstance(value, SCALARS) or (isinstance(value, list) and all(isinstance(v, SCALARS) for v in value))
    if not ok:
        raise LaunchError(f"launch file {path}: {label}: parameter {name!r} must be a bool, int, float, str "
                          f"or a list of those, got {type(value).__name__}")
    return value


def _resolve_target(path: Path, node: Node, label: str) -> str:
    """A module name or a .py path the node process can run; checked now so a typo fails at once."""
    if node.module:
        module = node.module
    elif node.executable and node.executable.endswith(".py"):
        script = Path(node.executable)
        script = script if script.is_absolute() else path.parent / script
        if not script.is_file():
            raise LaunchError(f"launch file {path}: {label}: script {script} does not exist")
        return str(script)
    elif node.executable:
        module = f"{NODE_PACKAGE}.{node.executable}"
    else:
        raise LaunchError(f"launch file {path}: {label} needs executable= or module=")
    try:
        found = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        found = None
    if found is None:
        raise LaunchError(f"launch file {path}: {label}: no module {module!r} (package {node.package!r})")
    return module


def write_params_file(spec: ProcessSpec, directory: Path) -> Path:
    """The node's parameters as a ROS 2 params file, passed with --params-file."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / f"{spec.name}.params.yaml"
    target.write_text(yaml.safe_dump({spec.name: {"ros__parameters": spec.params}}, sort_keys=True))
    return target
