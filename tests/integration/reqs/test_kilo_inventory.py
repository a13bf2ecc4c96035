"""A kilo inventory from kilo-era sdists on PyPI (the services' own kilo releases never were on PyPI; these
libraries' were): every package at a version each component accepts, the upper-constraints conflicts flagged."""

from __future__ import annotations

import json

from packaging.specifiers import SpecifierSet

KILO = {"python-novaclient": "2.23.2", "keystonemiddleware": "1.5.2", "oslo.messaging": "1.8.3",
        "python-glanceclient": "0.17.3"}


def test_kilo_inventory_reports_versions_every_component_accepts_and_flags_upper_constraints(stackcrate):
    res = stackcrate("reqs", "inventory", "-s", "kilo", *(a for c, v in KILO.items() for a in ("-c", f"{c}=={v}")),
                     "--format", "json")
    assert res.returncode == 0, res.stderr
    inv = json.loads(res.stdout)
    libs = {n: p for n, p in inv["packages"].items() if p["kind"] != "component"}
    for name, p in libs.items():
        assert p["version"], (name, p["why"])
        for comp, spec in p["specifiers"].items():
            assert SpecifierSet(spec).contains(p["version"], prereleases=True), (name, comp, spec, p["version"])
        rejecting = {c for c, s in p["specifiers"].items() if p["upper_constraints"]
                     and not SpecifierSet(s).contains(p["upper_constraints"], prereleases=True)}
        assert set(p["conflicts"]) == rejecting, name
        assert (p["version_from"] == "upper-constraints") == (not rejecting and p["upper_constraints"] is not None)
    # kilo's last upper-constraints pin oslo.config 1.13.0 (liberty's); these components cap it below 1.10.0
    oslo_config = inv["packages"]["oslo-config"]
    assert oslo_config["upper_constraints"] == "1.13.0" and oslo_config["version"] == "1.9.3"
    assert oslo_config["version_from"] == "newest inside the range"
    assert sum(1 for p in libs.values() if p["conflicts"]) >= 8
    md = stackcrate("reqs", "inventory", "-s", "kilo", *(a for c, v in KILO.items() for a in ("-c", f"{c}=={v}")))
    assert "| oslo.config | 1.9.3 ⚠ |" in md.stdout and "## Upper-constraints conflicts" in md.stdout
