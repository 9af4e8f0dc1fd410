"""Every Python package folder of the project is listed in setup.cfg, so a normal (not editable)
install carries it too."""

from __future__ import annotations

import configparser

from tests.conftest import REPO

FOLDERS = {"energizeos": "energizeos", "nodes": "energizeos.nodes", "sim": "energizeos.sim", "ui": "energizeos.ui",
           "knowledge": "energizeos.knowledge", "msgs": "energizeos_msgs"}


def test_setup_cfg_lists_every_package():
    config = configparser.ConfigParser()
    config.read(REPO / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    found = set()
    for folder, name in FOLDERS.items():
        for init in (REPO / folder).rglob("__init__.py"):
            parts = init.parent.relative_to(REPO / folder).parts
            if "__pycache__" not in parts:
                found.add(".".join([name, *parts]))
    assert found - listed == set()
