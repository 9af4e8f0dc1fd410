"""The remote: section of a site config and the launch's uplink node parameters."""

from __future__ import annotations

import pytest

from energizeos.site_config import SiteConfigError, device_node_parameters, load_site_config

REMOTE = ("remote:\n  site_id: plant-a\n  endpoint: tls/fleet.example.com:7450\n  user: edge-a\n"
          "  password_file: secrets/pw\n  tls: {ca: pki/ca.pem, cert: pki/c.pem, key: pki/c.key}\n")


def test_a_site_with_a_remote_section_gets_an_uplink_node_with_resolved_paths(tmp_path):
    (tmp_path / "site.yaml").write_text(REMOTE)
    params = device_node_parameters(load_site_config(tmp_path / "site.yaml"))["uplink"]
    assert params["site_id"] == "plant-a" and params["endpoint"] == "tls/fleet.example.com:7450"
    assert params["password_file"] == str(tmp_path / "secrets" / "pw")
    assert (params["tls_ca"], params["tls_key"]) == (str(tmp_path / "pki/ca.pem"), str(tmp_path / "pki/c.key"))
    assert params["telemetry_period_s"] == 1.0 and params["outbox"] == ""


def test_no_remote_section_no_uplink_and_a_bad_one_is_named(tmp_path):
    (tmp_path / "site.yaml").write_text("site: x\n")
    assert "uplink" not in device_node_parameters(load_site_config(tmp_path / "site.yaml"))
    (tmp_path / "site.yaml").write_text(REMOTE.replace("tls/fleet.example.com:7450", "fleet.example.com"))
    with pytest.raises(SiteConfigError, match=r"remote\.endpoint: .*'fleet\.example\.com' is not an endpoint"):
        load_site_config(tmp_path / "site.yaml")
    (tmp_path / "site.yaml").write_text(REMOTE.replace("  tls: {ca: pki/ca.pem, cert: pki/c.pem, key: pki/c.key}\n",
                                                       ""))
    with pytest.raises(SiteConfigError, match="needs a tls: section"):
        load_site_config(tmp_path / "site.yaml")


def test_the_shipped_fleet_example_is_a_valid_server_file():
    import yaml

    from energizeos.remote.config import ServerSettings
    from tests.conftest import REPO

    settings = ServerSettings.model_validate(yaml.safe_load((REPO / "config/fleet/fleet.example.yaml").read_text()))
    assert settings.site_users() == {"plant-a": "edge-plant-a"} and settings.tls.mutual


def test_the_shipped_party_example_and_the_commented_grants_are_valid():
    import yaml

    from energizeos.remote.config import PartySettings, UplinkSettings
    from tests.conftest import REPO

    party = PartySettings.model_validate(yaml.safe_load((REPO / "config/fleet/party.example.yaml").read_text()))
    assert party.user == "noc" and party.tls is not None and party.tls.cert is not None
    # the site config's commented remote: section, uncommented, is a valid uplink with its grant
    lines = (REPO / "config/sim_site.yaml").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("# remote:"))
    block = "\n".join(line[2:].split("  #")[0] for line in lines[start:] if line.startswith("#"))
    remote = UplinkSettings.model_validate(yaml.safe_load(block)["remote"])
    assert [g.as_parameter() for g in remote.grants] == ["noc=remote-noc:acknowledge,shelve"]
