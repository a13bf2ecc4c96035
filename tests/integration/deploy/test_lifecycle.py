"""The lifecycle of the local backend on one shared deployment (see conftest.py): each test starts from a running,
healthy cloud, does one thing to it, checks the outcome with the real `openstack` client or the processes
themselves, and leaves the cloud running."""

from __future__ import annotations

import json
import os
import signal
import stat
from urllib.parse import urlparse

import yaml

from stackcrate.deploy import procs
from tests.integration.deploy.conftest import ALL, wait_for


def test_build_made_every_artifact_and_a_second_build_makes_none(running):
    arts = {a["component"] for a in json.loads((running.dist / "artifacts.json").read_text())["artifacts"]}
    assert {"keystone", "glance", "openstack-placement", "nova", "neutron", "python-openstackclient"} <= arts
    assert running.ok("build")["built"] is False


def test_run_started_every_process_and_logs_show_them(running):
    assert list(running.status()) == ALL
    logs = running.sc("logs", "keystone", "-n", "5", json_out=False)
    assert logs.returncode == 0 and logs.stdout.startswith("==> keystone.log <==\n"), logs.stderr
    assert running.ok("run")["started"] == []  # run again: everything already runs


def test_verify_boots_a_server_and_round_trips_an_image(running):
    data = running.ok("verify")
    assert data["server_status"] == "ACTIVE" and data["token"] == "ok"
    assert len(data["image_sha256"]) == 64


def test_every_catalog_endpoint_goes_through_haproxy(running):
    from stackcrate.deploy.config import Deployment
    from stackcrate.deploy.verify import Client

    d = Deployment(running.root / "services.yaml", running.root / "configuration.yaml")
    endpoints = Client(d)("endpoint", "list")  # the real openstack client, as `deploy verify` runs it
    assert {e["Service Name"] for e in endpoints} == {"keystone", "glance", "placement", "nova", "neutron"}
    frontends = {s.port for s in d.services.enabled().values()}
    backends = {s.backend_port for s in d.services.enabled().values()}
    cfg = (running.state / "etc" / "haproxy" / "haproxy.cfg").read_text()
    for e in endpoints:
        url = urlparse(e["URL"])
        assert url.hostname == "127.0.0.1" and url.port in frontends and url.port not in backends, e
        assert f"bind 127.0.0.1:{url.port}" in cfg
    # and the frontends really are HAProxy's: they stop answering when it is gone (and come back with it)
    assert all(procs.port_open("127.0.0.1", p) for p in frontends)
    os.kill(running.pid("haproxy"), signal.SIGKILL)
    wait_for(lambda: not any(procs.port_open("127.0.0.1", p) for p in frontends), 10, "frontends closed")
    assert running.status()["haproxy"]["state"] == "down"
    assert running.ok("start")["started"] == ["haproxy"]
    assert all(procs.port_open("127.0.0.1", p) for p in frontends)


def test_a_killed_api_is_shown_down_and_start_brings_only_it_back(running):
    os.kill(running.pid("keystone"), signal.SIGKILL)
    st = wait_for(lambda: (s := running.status())["keystone"]["state"] == "down" and s, 10, "keystone down")
    assert all(r["state"] == "running" for n, r in st.items() if n != "keystone")
    assert running.ok("start")["started"] == ["keystone"]
    assert running.status()["keystone"]["health"] == "ok"


def test_stop_closes_every_port_and_start_keeps_the_data(running):
    before = running.ok("verify")
    running.ok("stop")
    assert {r["state"] for r in running.status().values()} == {"stopped"}
    svc = running.services
    ports = [svc["backing"]["mariadb"]["port"], svc["backing"]["rabbitmq"]["port"],
             *(s["port"] for s in svc["services"].values())]
    assert not any(procs.port_open("127.0.0.1", p) for p in ports)
    running.ok("start")
    after = running.ok("verify")
    assert after["server_status"] == "ACTIVE"
    assert (after["server_id"], after["image_sha256"]) == (before["server_id"], before["image_sha256"])


def test_init_again_loses_nothing(running):
    before = (running.state / "secrets.yaml").read_text()
    keys = sorted(p.name for p in (running.state / "data" / "keystone" / "fernet-keys").iterdir())
    assert running.ok("init")["created_in_keystone"] == 0
    assert (running.state / "secrets.yaml").read_text() == before
    assert sorted(p.name for p in (running.state / "data" / "keystone" / "fernet-keys").iterdir()) == keys


def test_rm_keeps_data_and_run_brings_it_back(running):
    before = running.ok("verify")
    running.ok("rm")
    assert not (running.state / "run").exists() and not (running.state / "etc").exists()
    assert (running.state / "data" / "mariadb").is_dir()
    running.ok("run")
    after = running.ok("verify")
    assert (after["server_id"], after["image_sha256"]) == (before["server_id"], before["image_sha256"])


def test_no_secret_in_logs_status_or_world_readable_files(running):
    secrets = yaml.safe_load((running.state / "secrets.yaml").read_text())
    assert stat.S_IMODE((running.state / "secrets.yaml").stat().st_mode) == 0o600
    values = [v for v in secrets.values() if len(v) >= 16]
    assert len(values) == len(secrets)
    outputs = [running.sc("status").stdout, running.sc("status", json_out=False).stdout]
    checked = 0
    for path in running.state.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        if running.state / "log" in path.parents or mode & 0o004:
            outputs.append(path.read_bytes().decode(errors="replace"))
            checked += 1
    assert checked > 10
    for text in outputs:
        for v in values:
            assert v not in text


def test_rm_purge_stops_everything_and_removes_the_state(running):
    pids = [running.pid(n) for n in ALL]
    assert all(pids)
    running.ok("rm", "--purge", "--yes")
    assert not running.state.exists()
    wait_for(lambda: not any(_running(p) for p in pids), 10, "every process gone")
    running.ok("run")  # a new cloud from nothing, for the tests after this one


def _running(pid: int) -> bool:
    # A killed process may stay a zombie for a moment until its new parent (init) reaps it: that counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
