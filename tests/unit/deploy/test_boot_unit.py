"""The systemd unit that starts a deployment at boot."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from stackcrate.deploy.config import Deployment
from stackcrate.deploy.configs import boot_unit_name, write_boot_unit


def test_unit_starts_and_stops_this_deployment(dep):
    d = Deployment(dep["services"], dep["config"])
    unit = write_boot_unit(d)
    assert unit.name == boot_unit_name(d) and unit.parent == d.state / "etc" / "systemd"
    text = unit.read_text()
    assert f"-s {d.services_path} -c {d.config_path}" in text
    assert "ExecStart=" in text and " deploy start -s " in text and " deploy stop -s " in text
    assert "WantedBy=multi-user.target" in text and "RemainAfterExit=yes" in text
    other = Deployment(dep["services"], dep["config"], state_dir=str(dep["dir"] / "other"))
    assert boot_unit_name(other) != boot_unit_name(d)


@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="needs systemd-analyze")
def test_systemd_accepts_the_unit(dep):
    unit = write_boot_unit(Deployment(dep["services"], dep["config"]))
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", str(unit)], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stdout + res.stderr  # e.g. "Command ... is not executable" fails it
