"""deploy upgrade and rollback on a real cloud: examples/upgrade's 2025.2 release, with an image, a network and a
server made before, moved to examples/deploy's 2026.1 and back; then an upgrade whose nova migration fails, and
the rollback that restores it. The 2026.1 artifacts are the ones the other deploy modules use (deploy_dist).

Set STACKCRATE_TEST_UPGRADE_DIST=DIR to reuse artifacts already built from examples/upgrade/stackcrate-2025.2.yaml.
"""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from stackcrate.deploy.supervisor import orphans
from tests.integration.deploy.conftest import STOP_TIMEOUT, copy_manifest, deployment_files, server_on_a_network

pytestmark = pytest.mark.timeout(1800)

UPGRADE_EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "upgrade" / "stackcrate-2025.2.yaml"
OLD = {"keystone": "28.1.0", "glance": "31.1.0", "placement": "14.0.0", "neutron": "27.0.4", "nova-api": "32.2.1",
       "nova-compute": "32.2.1"}
NEW = {"keystone": "29.1.0", "glance": "32.0.0", "placement": "15.0.0", "neutron": "28.0.2", "nova-api": "33.0.2",
       "nova-compute": "33.0.2"}


def client(d):
    from stackcrate.deploy.config import Deployment
    from stackcrate.deploy.verify import Client

    return Client(Deployment(d.root / "services.yaml", d.root / "configuration.yaml"))


def versions(d) -> dict[str, str]:
    st = d.status()
    assert all((r["state"], r["health"]) == ("running", "ok") for r in st.values()), st
    return {n: st[n]["version"] for n in OLD}


@pytest.fixture(scope="module")
def new_dist(sc_env, deploy_dist, tmp_path_factory) -> Path:
    """examples/deploy's 2026.1 artifacts (built here only when no other module built them yet)."""
    deployment_files(tmp_path_factory.mktemp("new"), deploy_dist, sc_env).ok("build", timeout=3600)
    return deploy_dist


@pytest.fixture(scope="module")
def cloud(sc_env, tmp_path_factory, new_dist):
    """A 2025.2 cloud that `run` started, with an image, a network and a server made before any upgrade."""
    given = os.environ.get("STACKCRATE_TEST_UPGRADE_DIST")
    root = tmp_path_factory.mktemp("upgrade")
    d = deployment_files(root, Path(given) if given else root / "dist-2025.2", sc_env)
    copy_manifest(root, UPGRADE_EXAMPLE)  # over examples/deploy's, where the configuration names the manifest
    d.set_config(stop_timeout=STOP_TIMEOUT)
    d.ok("build", timeout=3600)
    try:
        d.ok("run")
        os_ = client(d)
        d.before = server_on_a_network(d, os_, "before")
        d.image_bytes = (d.state / "data" / "verify" / "before.img").read_bytes()
        yield d
    finally:
        d.sc("rm", "--purge", "--yes", timeout=300)
        for pids in orphans(d.state).values():
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
        print("\nupgrade timings (s):")
        for verb, steps in d.timings.items():
            print(f"  {verb}: " + ", ".join(f"{s['step']} {s['seconds']}" for s in steps))


def still_there_and_usable(d, name: str) -> None:
    """What was made before the upgrade: the server ACTIVE on its host, the image byte for byte, the network
    able to take a new server."""
    os_ = client(d)
    before = d.before
    server = os_("server", "show", before["server"]["id"])
    assert server["status"] == "ACTIVE" and server["OS-EXT-SRV-ATTR:host"] == before["server"]["OS-EXT-SRV-ATTR:host"]
    back = d.state / "data" / "verify" / f"{name}.download"
    os_("image", "save", "--file", str(back), before["image"], fmt=False)
    assert back.read_bytes() == d.image_bytes
    back.unlink()
    assert os_("network", "show", "before")["id"] == before["port"]["network_id"]
    new = os_("server", "create", "--flavor", before["flavor"], "--image", before["image"], "--network", "before",
              "--wait", name)
    assert new["status"] == "ACTIVE"
    os_("server", "delete", "--wait", new["id"], fmt=False)


def test_upgrade_to_2026_1_runs_the_new_versions_and_keeps_what_was_made_before(cloud, new_dist):
    assert versions(cloud) == OLD
    out = cloud.ok("upgrade", "--to", str(new_dist), timeout=1800)
    assert out["from"]["series"] == "2025.2" and out["to"]["series"] == "2026.1"
    assert out["verify"]["server_status"] == "ACTIVE" and out["verify"]["deleted"]
    assert {n: out["versions"][n] for n in NEW} == NEW == versions(cloud)
    assert out["snapshot_bytes"] > 100_000 and (cloud.state / "upgrade" / "snapshot" / "databases.sql").is_file()
    assert set(out["phases"]) == {"preflight", "snapshot", "stop", "migrations", "switch", "verify",
                                   "online data migrations"}
    status = cloud.ok("status")
    assert status["release"]["series"] == "2026.1" and status["release"]["upgrade"]["phase"] == "done"
    still_there_and_usable(cloud, "after-upgrade")


def test_rollback_brings_back_2025_2_as_it_was_before_the_upgrade(cloud):
    out = cloud.ok("rollback", timeout=1800)
    assert out["series"] == "2025.2" and out["verify"]["server_status"] == "ACTIVE"
    assert versions(cloud) == OLD
    assert not (cloud.state / "upgrade").exists()
    assert cloud.ok("status")["release"]["upgrade"] is None
    still_there_and_usable(cloud, "after-rollback")
    assert not any(Path(f"/opt/openstack/{c}-{v}").exists() for c, v in
                   (("nova", NEW["nova-api"]), ("keystone", NEW["keystone"])))  # the new venvs went with it


def test_a_failing_migration_stops_the_upgrade_at_its_step_and_rollback_restores_the_cloud(cloud, new_dist):
    # a planted failure: the new nova-manage fails (the venv is installed first, then its program replaced)
    nova_manage = Path(f"/opt/openstack/nova-{NEW['nova-api']}/bin/nova-manage")
    from stackcrate.deploy.config import Deployment
    from stackcrate.deploy.install import install
    from stackcrate.deploy.timer import Timer
    from stackcrate.deploy.upgrade import running
    from stackcrate.ui import UI

    d = running(Deployment(cloud.root / "services.yaml", cloud.root / "configuration.yaml"), new_dist)
    install(d, Timer(UI(quiet=True)))
    real = nova_manage.read_text()
    nova_manage.write_text("#!/bin/sh\necho 'planted: this migration fails' >&2\nexit 3\n")
    try:
        res = cloud.sc("upgrade", "--to", str(new_dist), timeout=1800)
    finally:
        nova_manage.write_text(real)
    assert res.returncode == 2, res.stderr
    assert "stopped at step 'migrations'" in res.stderr and "planted: this migration fails" in res.stderr
    assert "`stackcrate deploy rollback` brings back 2025.2" in res.stderr
    st, code = cloud.status_with_code()
    assert code == 3 and all(r["state"] == "stopped" for r in st.values())  # stopped, not half-running
    res = cloud.sc("status")
    assert json.loads(res.stdout)["release"]["upgrade"]["failed"]["step"] == "migrations"
    out = cloud.ok("rollback", timeout=1800)
    assert out["series"] == "2025.2" and versions(cloud) == OLD
    still_there_and_usable(cloud, "after-failed-upgrade")
