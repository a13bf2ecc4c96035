"""The whole lifecycle on the local backend, with real MariaDB, RabbitMQ, Memcached and HAProxy (Debian's
packages), the five services from the artifacts built from examples/deploy/stackcrate.yaml, and the real
`openstack` client:

build → init → run → verify → (kill one: status down, start: back) → stop → start → verify (data still there)
→ init again (nothing lost) → rm → run → verify (data kept) → rm --purge.

One deployment is shared by the tests of this module, in order (each step needs the one before).
Set STACKCRATE_TEST_DEPLOY_DIST=DIR to reuse artifacts already built from examples/deploy/stackcrate.yaml.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import yaml

from stackcrate.deploy import procs

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[3]
TIMINGS: dict[str, list] = {}


@pytest.fixture(scope="module")
def dep(stackcrate, tmp_path_factory):
    """The deployment's files; whatever happens, every process is stopped and the state removed at the end."""
    root = tmp_path_factory.mktemp("deploy")
    shutil.copy(REPO / "examples" / "deploy" / "services.yaml", root / "services.yaml")
    shutil.copy(REPO / "examples" / "deploy" / "stackcrate.yaml", root / "stackcrate.yaml")  # its lock goes beside
    conf = yaml.safe_load((REPO / "examples" / "deploy" / "configuration.yaml").read_text())
    dist = os.environ.get("STACKCRATE_TEST_DEPLOY_DIST") or str(root / "dist")
    conf.update(state_dir=str(root / "state"), artifacts=dist, manifest=str(root / "stackcrate.yaml"))
    (root / "configuration.yaml").write_text(yaml.safe_dump(conf))

    def sc(verb: str, *args: str, json_out: bool = True, timeout: float = 900) -> subprocess.CompletedProcess:
        pre = ["--json"] if json_out else []
        return stackcrate(*pre, "deploy", verb, "-s", root / "services.yaml", "-c", root / "configuration.yaml",
                          *args, timeout=timeout)

    info = {"root": root, "state": root / "state", "sc": sc, "dist": Path(dist)}
    yield info
    sc("rm", "--purge", "--yes", timeout=300)
    run_dir = root / "state" / "run"
    for pidfile in run_dir.glob("*.pid") if run_dir.is_dir() else []:  # only if rm itself failed
        pid = procs.alive(pidfile)
        if pid:
            os.killpg(pid, signal.SIGKILL)
    if TIMINGS:
        print("\ndeploy timings (s):")
        for verb, steps in TIMINGS.items():
            print(f"  {verb}: " + ", ".join(f"{s['step']} {s['seconds']}" for s in steps))


def ok(res: subprocess.CompletedProcess, verb: str) -> dict:
    assert res.returncode == 0, f"{verb} failed:\n{res.stderr[-4000:]}"
    data = json.loads(res.stdout)
    if "steps" in data:
        TIMINGS[verb] = data["steps"] + [{"step": "total", "seconds": data["seconds"]}]
    return data


def status(dep) -> dict[str, dict]:
    return {r["name"]: r for r in ok(dep["sc"]("status"), "status")["processes"]}


ALL = ["mariadb", "epmd", "rabbitmq", "memcached", "haproxy", "keystone", "glance", "placement", "neutron",
       "nova-api", "nova-conductor", "nova-scheduler", "nova-compute"]


def test_build(dep):
    prebuilt = (dep["dist"] / "artifacts.json").exists()
    data = ok(dep["sc"]("build", timeout=3600), "build")
    assert data["built"] is not prebuilt
    arts = {a["component"] for a in json.loads((dep["dist"] / "artifacts.json").read_text())["artifacts"]}
    assert {"keystone", "glance", "openstack-placement", "nova", "neutron", "python-openstackclient"} <= arts
    assert ok(dep["sc"]("build"), "build (again)")["built"] is False


def test_init(dep):
    data = ok(dep["sc"]("init"), "init")
    assert data["created_in_keystone"] > 0
    secrets = dep["state"] / "secrets.yaml"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600


def test_run(dep):
    ok(dep["sc"]("run"), "run")
    st = status(dep)
    assert list(st) == ALL
    for name, row in st.items():
        assert (row["state"], row["health"]) == ("running", "ok"), name
    logs = dep["sc"]("logs", "keystone", "-n", "5", json_out=False)
    assert logs.returncode == 0 and logs.stdout.startswith("==> keystone.log <==\n"), logs.stderr


def test_verify(dep):
    data = ok(dep["sc"]("verify"), "verify")
    assert (data["image"], data["server"], data["server_status"]) == ("created", "created", "ACTIVE")
    dep["server_id"], dep["image_sha"] = data["server_id"], data["image_sha256"]


def test_every_catalog_endpoint_goes_through_haproxy(dep):
    from stackcrate.deploy.config import Deployment
    from stackcrate.deploy.verify import Client

    d = Deployment(dep["root"] / "services.yaml", dep["root"] / "configuration.yaml")
    endpoints = Client(d)("endpoint", "list")  # the real openstack client, as `deploy verify` runs it
    assert {e["Service Name"] for e in endpoints} == {"keystone", "glance", "placement", "nova", "neutron"}
    frontends = {s.port for s in d.services.enabled().values()}
    backends = {s.backend_port for s in d.services.enabled().values()}
    cfg = (dep["state"] / "etc" / "haproxy" / "haproxy.cfg").read_text()
    for e in endpoints:
        url = urlparse(e["URL"])
        assert url.hostname == "127.0.0.1" and url.port in frontends and url.port not in backends, e
        assert f"bind 127.0.0.1:{url.port}" in cfg
    # and the frontends really are HAProxy's: they stop answering when it is gone (and come back with it)
    hp = procs.alive(dep["state"] / "run" / "haproxy.pid")
    assert all(procs.port_open("127.0.0.1", p) for p in frontends)
    os.kill(hp, signal.SIGKILL)
    time.sleep(0.5)
    assert not any(procs.port_open("127.0.0.1", p) for p in frontends)
    assert status(dep)["haproxy"]["state"] == "down"
    ok(dep["sc"]("start"), "start (haproxy)")
    assert all(procs.port_open("127.0.0.1", p) for p in frontends)


def test_killed_service_shown_down_then_started(dep):
    pid = procs.alive(dep["state"] / "run" / "keystone.pid")
    os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    st = status(dep)
    assert st["keystone"]["state"] == "down"
    assert all(r["state"] == "running" for n, r in st.items() if n != "keystone")
    data = ok(dep["sc"]("start"), "start (keystone)")
    assert data["started"] == ["keystone"]
    assert status(dep)["keystone"]["health"] == "ok"


def test_stop_start_verify(dep):
    ok(dep["sc"]("stop"), "stop")
    assert {r["state"] for r in status(dep).values()} == {"stopped"}
    services = yaml.safe_load((dep["root"] / "services.yaml").read_text())
    ports = [services["backing"]["mariadb"]["port"], services["backing"]["rabbitmq"]["port"],
             *(s["port"] for s in services["services"].values())]
    assert not any(procs.port_open("127.0.0.1", p) for p in ports)
    ok(dep["sc"]("start"), "start")
    data = ok(dep["sc"]("verify"), "verify (after stop/start)")
    assert (data["image"], data["server"], data["server_status"]) == ("existing", "existing", "ACTIVE")
    assert (data["server_id"], data["image_sha256"]) == (dep["server_id"], dep["image_sha"])


def test_init_again_loses_nothing(dep):
    before = (dep["state"] / "secrets.yaml").read_text()
    keys = sorted(p.name for p in (dep["state"] / "data" / "keystone" / "fernet-keys").iterdir())
    data = ok(dep["sc"]("init"), "init (again)")
    assert data["created_in_keystone"] == 0
    assert (dep["state"] / "secrets.yaml").read_text() == before
    assert sorted(p.name for p in (dep["state"] / "data" / "keystone" / "fernet-keys").iterdir()) == keys


def test_rm_keeps_data_and_run_brings_it_back(dep):
    ok(dep["sc"]("rm"), "rm")
    assert not (dep["state"] / "run").exists() and not (dep["state"] / "etc").exists()
    assert (dep["state"] / "data" / "mariadb").is_dir()
    ok(dep["sc"]("run"), "run (after rm)")
    data = ok(dep["sc"]("verify"), "verify (after rm/run)")
    assert (data["image"], data["server"], data["server_id"]) == ("existing", "existing", dep["server_id"])


def test_no_secret_in_logs_status_or_world_readable_files(dep):
    secrets = yaml.safe_load((dep["state"] / "secrets.yaml").read_text())
    values = [v for v in secrets.values() if len(v) >= 16]
    assert len(values) == len(secrets)
    outputs = [dep["sc"]("status").stdout, dep["sc"]("status", json_out=False).stdout]
    checked = 0
    for path in dep["state"].rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        mode = stat.S_IMODE(path.stat().st_mode)
        in_logs = dep["state"] / "log" in path.parents
        if in_logs or mode & 0o004:
            text = path.read_bytes().decode(errors="replace")
            outputs.append(text)
            checked += 1
    assert checked > 10
    assert list((dep["state"] / "log").glob("*.log"))
    for text in outputs:
        for v in values:
            assert v not in text


def test_rm_purge(dep):
    pids = [procs.alive(p) for p in (dep["state"] / "run").glob("*.pid")]
    assert len([p for p in pids if p]) == len(ALL)
    ok(dep["sc"]("rm", "--purge", "--yes"), "rm --purge")
    assert not dep["state"].exists()
    assert not [p for p in pids if p and _running(p)]


def _running(pid: int) -> bool:
    # A killed process may stay a zombie for a moment until its new parent (init) reaps it: that counts as gone.
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
