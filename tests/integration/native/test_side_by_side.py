"""Two releases of one component are two .debs that install and run side by side."""

from __future__ import annotations

import json
import shutil

from tests.fixtures import pbr_project
from tests.integration.conftest import chroot


def test_two_versions_install_side_by_side(stackcrate, tmp_path, fresh_rootfs):
    svc = pbr_project(tmp_path, "fixture-svc", tags=("1.2.0", "1.3.0"))
    debs = []
    for ref in ("1.2.0", "1.3.0"):
        m = tmp_path / f"svc-{ref}.yaml"
        m.write_text(f'series: "2026.1"\ncomponents:\n  - name: fixture-svc\n    git: {{url: "{svc}", ref: "{ref}"}}\n')
        res = stackcrate("build", "-m", m, "--format", "deb", "--out", tmp_path / ref)
        assert res.returncode == 0, res.stderr
        arts = json.loads((tmp_path / ref / "artifacts.json").read_text())["artifacts"]
        (deb,) = [tmp_path / ref / a["file"] for a in arts if a["format"] == "deb"]
        shutil.copy(deb, fresh_rootfs / "tmp" / deb.name)
        debs.append(f"/tmp/{deb.name}")
    chroot(fresh_rootfs, "dpkg", "-i", *debs)  # the base rootfs has python3.11 and libc6 already
    for ref in ("1.2.0", "1.3.0"):
        out = chroot(fresh_rootfs, f"/opt/openstack/fixture-svc-{ref}/bin/fixture-svc").stdout.strip()
        assert out == f"hello from fixture-svc {ref}"
        res = chroot(fresh_rootfs, "dpkg", "--verify", f"openstack-fixture-svc-{ref}", check=False)
        assert (res.returncode, res.stdout) == (0, "")
    chroot(fresh_rootfs, "dpkg", "--purge", "openstack-fixture-svc-1.2.0")
    assert not (fresh_rootfs / "opt/openstack/fixture-svc-1.2.0").exists()
    assert (fresh_rootfs / "opt/openstack/fixture-svc-1.3.0/bin/fixture-svc").exists()
