"""Node parameters (defaults, overrides, --ros-args, params files, checks) and ROS 2 name rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from energizeos.runtime import (
    InvalidNameError,
    Node,
    Parameter,
    ParameterDescriptor,
    ParameterError,
    SimExecutor,
)
from energizeos.runtime.args import load_params_file, parse_ros_args
from energizeos.runtime.names import (
    expand_topic_name,
    fully_qualified_node_name,
    normalize_namespace,
    validate_node_name,
    validate_topic_name,
)
from energizeos_msgs.msg import MeterReading

PARAMS_YAML = """\
/**:
  ros__parameters:
    site: lab
renamed:
  ros__parameters:
    x: 1
    gain: 2
    limits:
      soc_min: 10.0
      soc_max: 90
/site/renamed:
  ros__parameters:
    mode: peak_shaving
other_node:
  ros__parameters:
    x: 99
"""


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "site.yaml"
    path.write_text(PARAMS_YAML)
    return path


def make_node(name: str = "n", **kwargs) -> Node:
    ex = kwargs.pop("executor", None) or SimExecutor(ros_args=kwargs.pop("ros_args", None))
    return Node(name, executor=ex, **kwargs)


# --------------------------------------------------------------------------------------------
# declare / override
# --------------------------------------------------------------------------------------------
def test_declare_with_default():
    node = make_node()
    p = node.declare_parameter("rated_kw", 250.0)
    assert isinstance(p, Parameter) and p.value == 250.0 and p.type_ is float
    assert node.has_parameter("rated_kw") and not node.has_parameter("other")
    assert node.get_parameter("rated_kw").value == 250.0
    params = node.declare_parameters("limits", [("soc_min", 10.0), ("soc_max", 90.0)])
    assert [q.name for q in params] == ["limits.soc_min", "limits.soc_max"]
    assert [q.value for q in node.get_parameters(["limits.soc_min", "limits.soc_max"])] == [10.0, 90.0]
    for value in (True, 3, "abc", [1, 2]):
        name = f"p_{type(value).__name__}"
        assert node.declare_parameter(name, value).value == value


def test_parameter_overrides_argument():
    node = make_node(parameter_overrides={"rated_kw": 500.0, "site": "plant"})
    assert node.declare_parameter("rated_kw", 250.0).value == 500.0
    assert node.declare_parameter("site", "lab").value == "plant"
    node.check_unused_overrides()


def test_override_without_default_and_missing_value():
    node = make_node(parameter_overrides={"token": "abc"})
    assert node.declare_parameter("token").value == "abc"
    with pytest.raises(ParameterError, match=r"'needed'"):
        node.declare_parameter("needed")


def test_declare_twice_and_undeclared_get():
    node = make_node("pcs_node")
    node.declare_parameter("a", 1)
    with pytest.raises(ParameterError, match=r"declared twice"):
        node.declare_parameter("a", 2)
    with pytest.raises(ParameterError, match=r"'pcs_node'.*'never_declared'"):
        node.get_parameter("never_declared")


def test_ros_args_params_file_and_remaps(params_file):
    argv = [
        "prog",
        "--ros-args",
        "-p",
        "x:=3",
        "--params-file",
        str(params_file),
        "-r",
        "__node:=renamed",
        "-r",
        "__ns:=/site",
    ]
    args = parse_ros_args(argv)
    assert args.node_name == "renamed" and args.namespace == "/site"
    node = Node("original_name", namespace="/ignored", executor=SimExecutor(ros_args=args))
    assert node.get_name() == "renamed" and node.get_namespace() == "/site"
    assert node.get_fully_qualified_name() == "/site/renamed"
    assert node.declare_parameter("x", 0).value == 3  # -p beats the params file
    assert node.declare_parameter("gain", 1.0).value == 2.0  # file int widens to a float default
    assert node.declare_parameter("limits.soc_min", 0.0).value == 10.0  # nested mapping -> dotted name
    assert node.declare_parameter("limits.soc_max", 0.0).value == 90.0
    assert node.declare_parameter("mode", "standby").value == "peak_shaving"  # /site/renamed section
    assert node.declare_parameter("site", "").value == "lab"  # /** wildcard section
    node.check_unused_overrides()


def test_parameter_overrides_beat_ros_args(params_file):
    args = parse_ros_args(
        ["--ros-args", "-p", "x:=3", "--params-file", str(params_file), "-r", "__node:=renamed"]
    )
    node = Node("n", executor=SimExecutor(ros_args=args), parameter_overrides={"x": 7})
    assert node.declare_parameter("x", 0).value == 7


def test_ros_args_value_types():
    args = parse_ros_args(
        [
            "--ros-args",
            "-p",
            "i:=3",
            "-p",
            "f:=2.5",
            "-p",
            "b:=true",
            "-p",
            "s:=abc",
            "-p",
            "l:=[1, 2]",
            "-p",
            "e:=",
            "--log-level",
            "debug",
        ]
    )
    assert args.global_params == {"i": 3, "f": 2.5, "b": True, "s": "abc", "l": [1, 2], "e": ""}
    assert args.log_level == "DEBUG"
    assert parse_ros_args(["prog", "--verbose"]).global_params == {}
    assert parse_ros_args(None).node_name is None
    stop = parse_ros_args(["--ros-args", "-p", "a:=1", "--", "-p", "b:=2"])
    assert stop.global_params == {"a": 1}


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--ros-args", "-p"], "needs a value"),
        (["--ros-args", "-p", "novalue"], "NAME:=VALUE"),
        (["--ros-args", "-r", "a"], "FROM:=TO"),
        (["--ros-args", "--bogus"], "--bogus"),
    ],
)
def test_ros_args_errors(argv, match):
    with pytest.raises(ParameterError, match=match):
        parse_ros_args(argv)


def test_int_widens_to_float():
    node = make_node(parameter_overrides={"gain": 3})
    p = node.declare_parameter("gain", 1.5)
    assert p.value == 3.0 and isinstance(p.value, float)
    node.set_parameters([Parameter("gain", 4)])
    assert node.get_parameter("gain").value == 4.0 and isinstance(node.get_parameter("gain").value, float)


@pytest.mark.parametrize(
    ("default", "wrong"),
    [
        (1, "abc"),
        (1, 2.5),
        (1, True),
        (1.5, "1.5"),
        (1.5, False),
        ("s", 3),
        (True, 1),
        (True, "true"),
        ([1], 1),
    ],
)
def test_wrong_type_override_names_node_and_parameter(default, wrong):
    node = make_node("bms_node", parameter_overrides={"param_x": wrong})
    with pytest.raises(ParameterError) as info:
        node.declare_parameter("param_x", default)
    text = str(info.value)
    assert "'bms_node'" in text and "'param_x'" in text


def test_wrong_type_from_ros_args_names_renamed_node():
    args = parse_ros_args(["--ros-args", "-p", "x:=abc", "-r", "__node:=renamed"])
    node = Node("n", executor=SimExecutor(ros_args=args))
    with pytest.raises(ParameterError, match=r"'renamed'.*'x'.*expects int"):
        node.declare_parameter("x", 0)


def test_set_parameters_wrong_type_keeps_old_value():
    node = make_node("dispatcher")
    node.declare_parameter("mode", "standby")
    with pytest.raises(ParameterError, match=r"'dispatcher'.*'mode'"):
        node.set_parameters([Parameter("mode", 3)])
    assert node.get_parameter("mode").value == "standby"
    with pytest.raises(ParameterError, match=r"never declared"):
        node.set_parameters([Parameter("undeclared", 3)])


def test_range_check():
    desc = ParameterDescriptor(min_value=0.0, max_value=100.0)
    node = make_node("bms_node", parameter_overrides={"soc_min": 120.0})
    with pytest.raises(ParameterError, match=r"'bms_node'.*'soc_min'.*above its maximum 100"):
        node.declare_parameter("soc_min", 10.0, desc)
    node2 = make_node("bms_node")
    node2.declare_parameter("soc_min", 10.0, desc)
    with pytest.raises(ParameterError, match=r"below its minimum"):
        node2.set_parameters([Parameter("soc_min", -1)])
    assert node2.get_parameter("soc_min").value == 10.0
    node2.set_parameters([Parameter("soc_min", 100)])  # bounds are inclusive
    assert node2.get_parameter("soc_min").value == 100.0
    with pytest.raises(ParameterError, match=r"below its minimum"):
        make_node("x").declare_parameter("p", -5.0, desc)


def test_choices():
    desc = ParameterDescriptor(choices=("standby", "peak_shaving"))
    node = make_node("dispatcher", parameter_overrides={"mode": "turbo"})
    with pytest.raises(ParameterError, match=r"'mode'.*turbo.*not one of"):
        node.declare_parameter("mode", "standby", desc)


def test_read_only():
    node = make_node("safety_arbiter", parameter_overrides={"site_id": "plant_7"})
    p = node.declare_parameter("site_id", "lab", ParameterDescriptor(read_only=True))
    assert p.value == "plant_7"  # set once at start-up from launch / overrides
    with pytest.raises(ParameterError, match=r"'safety_arbiter'.*'site_id'.*read-only"):
        node.set_parameters([Parameter("site_id", "other")])
    assert node.get_parameter("site_id").value == "plant_7"


def test_check_unused_overrides_names_unknown_parameter(params_file):
    node = make_node("meter_node", parameter_overrides={"ct_ratio": 400.0, "ct_ratoi": 600.0})
    node.declare_parameter("ct_ratio", 1.0)
    with pytest.raises(ParameterError) as info:
        node.check_unused_overrides()
    text = str(info.value)
    assert "ct_ratoi" in text and "'meter_node'" in text and "ct_ratio" in text
    # from a params file: a typo in the node's section
    args = parse_ros_args(["--ros-args", "--params-file", str(params_file)])
    other = Node("other_node", executor=SimExecutor(ros_args=args))
    other.declare_parameter("site", "")
    with pytest.raises(ParameterError, match=r"unknown parameter.*'?x'?"):
        other.check_unused_overrides()


# --------------------------------------------------------------------------------------------
# params YAML file errors name the file
# --------------------------------------------------------------------------------------------
def test_params_file_missing(tmp_path):
    path = tmp_path / "nope.yaml"
    with pytest.raises(ParameterError, match=r"nope.yaml") as info:
        parse_ros_args(["--ros-args", "--params-file", str(path)])
    assert "does not exist" in str(info.value)


def test_params_file_bad_yaml(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("node:\n  ros__parameters: {a: 1\n   - broken: [")
    with pytest.raises(ParameterError, match=r"bad\.yaml.*not valid YAML"):
        parse_ros_args(["--ros-args", "--params-file", str(path)])


@pytest.mark.parametrize(
    "text",
    ["node:\n  a: 1\n", "node:\n  ros__parameters: 5\n", "node: 3\n", "- a\n- b\n"],
    ids=["no-ros__parameters", "not-a-mapping", "section-not-mapping", "top-level-list"],
)
def test_params_file_structure_errors_name_the_file(tmp_path, text):
    path = tmp_path / "structure.yaml"
    path.write_text(text)
    with pytest.raises(ParameterError, match=r"structure\.yaml"):
        load_params_file(path)


def test_params_file_empty_is_no_overrides(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_params_file(path) == {}


# --------------------------------------------------------------------------------------------
# names
# --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("name", "node", "ns", "expected"),
    [
        ("meter", "meter_node", "/site", "/site/meter"),
        ("poi/meter", "meter_node", "/site", "/site/poi/meter"),
        ("meter", "meter_node", "/", "/meter"),
        ("meter", "meter_node", "", "/meter"),
        ("/bess/pcs/command", "meter_node", "/site", "/bess/pcs/command"),
        ("~", "meter_node", "/site", "/site/meter_node"),
        ("~/status", "meter_node", "/site", "/site/meter_node/status"),
        ("~/a/b", "arbiter", "/", "/arbiter/a/b"),
        ("_private_ok", "n", "/a/b", "/a/b/_private_ok"),
        ("x2", "n", "site", "/site/x2"),
    ],
)
def test_expand_topic_name(name, node, ns, expected):
    assert expand_topic_name(name, node, ns) == expected


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/",
        "meter/",
        "/site//meter",
        "/site/1meter",
        "1meter",
        "/bad-char",
        "/sp ace",
        "/a/~/b",
        "/a.b",
        "/site/meter/",
        "~~",
        "/é",
    ],
)
def test_invalid_topic_names_raise(name):
    with pytest.raises(InvalidNameError):
        expand_topic_name(name, "n", "/site")


def test_tilde_must_be_followed_by_slash():
    """ROS 2 (rcl) rejects '~foo': RCL_TOPIC_NAME_INVALID_TILDE_NOT_FOLLOWED_BY_FORWARD_SLASH."""
    try:
        result = expand_topic_name("~foo", "meter_node", "/site")
    except InvalidNameError:
        return
    raise AssertionError(f"'~foo' should be an invalid name, but expanded to {result!r}")


@pytest.mark.parametrize("full", ["/site/meter", "/a", "/_x/y_2"])
def test_validate_topic_name_accepts(full):
    assert validate_topic_name(full) == full


@pytest.mark.parametrize("full", ["site/meter", "/a/", "//a", "/a//b", "/2a"])
def test_validate_topic_name_rejects(full):
    with pytest.raises(InvalidNameError):
        validate_topic_name(full)


def test_node_names_and_namespaces():
    assert validate_node_name("safety_arbiter") == "safety_arbiter"
    for bad in ("", "1node", "my-node", "a/b", "with space", "~"):
        with pytest.raises(InvalidNameError):
            validate_node_name(bad)
    assert normalize_namespace(None) == "/"
    assert normalize_namespace("") == "/"
    assert normalize_namespace("site") == "/site"
    assert normalize_namespace("/site/bess/") == "/site/bess"
    for bad in ("/1site", "/si-te", "/a//b"):
        with pytest.raises(InvalidNameError):
            normalize_namespace(bad)
    assert fully_qualified_node_name("n", "/") == "/n"
    assert fully_qualified_node_name("n", "site") == "/site/n"


def test_node_rejects_invalid_names():
    ex = SimExecutor()
    with pytest.raises(InvalidNameError):
        Node("bad-name", executor=ex)
    with pytest.raises(InvalidNameError):
        Node("ok", namespace="/9lives", executor=ex)
    bad_args = parse_ros_args(["--ros-args", "-r", "__node:=bad-name"])
    with pytest.raises(InvalidNameError):
        Node("n", executor=SimExecutor(ros_args=bad_args))
    node = Node("ok", executor=ex)
    with pytest.raises(InvalidNameError):
        node.create_publisher(MeterReading, "bad topic", 10)
    with pytest.raises(InvalidNameError):
        node.create_subscription(MeterReading, "/a//b", lambda m: None, 10)


def test_node_resolves_relative_private_and_absolute_names():
    node = make_node("meter_node", namespace="/site")
    assert node.resolve_name("poi/meter") == "/site/poi/meter"
    assert node.resolve_name("~/health") == "/site/meter_node/health"
    assert node.resolve_name("/ems/alarms") == "/ems/alarms"
    assert node.create_publisher(MeterReading, "poi/meter", 10).topic_name == "/site/poi/meter"


def test_absolute_remap():
    args = parse_ros_args(["--ros-args", "-r", "/site/poi/meter:=/site/poi/meter_b"])
    node = Node("meter_node", namespace="/site", executor=SimExecutor(ros_args=args))
    assert node.resolve_name("poi/meter") == "/site/poi/meter_b"
    assert node.resolve_name("/site/poi/meter") == "/site/poi/meter_b"
    assert node.resolve_name("poi/other") == "/site/poi/other"


def test_relative_remap_target_is_expanded_like_ros2():
    """ROS 2: '-r chatter:=my_chatter' in namespace /site gives '/site/my_chatter'."""
    args = parse_ros_args(["--ros-args", "-r", "chatter:=my_chatter"])
    node = Node("talker", namespace="/site", executor=SimExecutor(ros_args=args))
    resolved = node.resolve_name("chatter")
    assert resolved == "/site/my_chatter", f"remap target left unexpanded/unvalidated: {resolved!r}"


def test_remap_to_invalid_name_is_rejected():
    args = parse_ros_args(["--ros-args", "-r", "/a:=/bad name"])
    node = Node("talker", executor=SimExecutor(ros_args=args))
    try:
        resolved = node.resolve_name("/a")
    except InvalidNameError:
        return
    raise AssertionError(f"remap to an invalid topic name was accepted: {resolved!r}")
