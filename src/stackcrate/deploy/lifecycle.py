"""The lifecycle of a local deployment: install, init, start, stop, status, rm."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..package.tarball import extract_tar_zst
from ..ui import UI
from . import backing, procs, services
from .config import Deployment
from .keystone_api import register
from .procs import Proc
from .secrets import load_or_create


class Timer:
    """ui.step that also records each step's duration for the verb's JSON result."""

    def __init__(self, ui: UI):
        self.ui = ui
        self.steps: list[dict] = []

    @contextlib.contextmanager
    def step(self, text: str):
        with self.ui.step(text) as info:
            yield info
        self.steps.append({"step": text, "seconds": info["seconds"], **({"note": info["note"]} if
                                                                          info.get("note") else {})})


# ---------------------------------------------------------------------------------------------- artifacts

def artifacts(d: Deployment, fmt: str = "tar") -> dict[str, dict]:
    """component -> its artifacts.json entry of format `fmt`, for every service (and, for tar, the client)."""
    index = d.artifacts_dir / "artifacts.json"
    try:
        entries = json.loads(index.read_text())["artifacts"]
    except FileNotFoundError:
        raise StackcrateError(f"no artifacts: {index} does not exist",
                              hint="run `stackcrate deploy build` (or `stackcrate build --out DIR`)") from None
    by = {a["component"]: a for a in entries if a.get("format", "tar") == fmt}
    needed = [s.component for s in d.services.enabled().values()] + ([d.services.client] if fmt == "tar" else [])
    missing = [c for c in needed if c not in by or not (d.artifacts_dir / by[c]["file"]).is_file()]
    if missing:
        raise StackcrateError(f"missing artifact(s) ({fmt}) in {d.artifacts_dir}: {', '.join(missing)}",
                              hint="run `stackcrate deploy build` (with the configuration's backend), "
                                   "or add the component(s) to the manifest")
    return by


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _install_marker(install_path: str) -> Path:
    # Beside the venvs, not inside one (a venv holds exactly its artifact's files).
    p = Path(install_path)
    return p.parent / ".stackcrate-installed" / f"{p.name}.sha256"


def install(d: Deployment, t: Timer) -> None:
    """Extract each artifact at / (its venv must live at the path it was built for); skip unchanged ones."""
    arts = artifacts(d)
    for comp in sorted({s.component for s in d.services.enabled().values()} | {d.services.client}):
        a = arts[comp]
        marker = _install_marker(a["install_path"])
        if (marker.exists() and marker.read_text().strip() == a["sha256"]
                and Path(a["install_path"], "bin", "python").exists()):
            continue
        with t.step(f"Installing {a['file']} at {a['install_path']}"):
            f = d.artifacts_dir / a["file"]
            if _sha256(f) != a["sha256"]:
                raise StackcrateError(f"{f} does not match the sha256 in artifacts.json", hint="rebuild it")
            extract_tar_zst(f, Path("/"))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(a["sha256"] + "\n")


def venvs(d: Deployment) -> dict[str, str]:
    out = {c: a["install_path"] for c, a in artifacts(d).items()}
    for s in d.services.enabled().values():
        if not Path(out[s.component], "bin", "python").exists():
            raise StackcrateError(f"{s.component} is not installed at {out[s.component]}",
                                  hint="run `stackcrate deploy init`")
    return out


# ---------------------------------------------------------------------------------------------- processes

def layout(d: Deployment) -> services.Layout:
    return services.Layout(d, venvs(d), load_or_create(d.state, d.config.secrets))


def all_procs(d: Deployment, lay: services.Layout | None = None) -> list[Proc]:
    lay = lay or layout(d)
    return backing.procs(d) + services.procs(lay)


def write_configs(lay: services.Layout) -> None:
    backing.write_configs(lay.d, lay.secrets)
    services.write_configs(lay)


def binds(d: Deployment) -> dict[str, list[int]]:
    """The ports each process listens on (checked free before it starts)."""
    b = d.services.backing
    out = {"mariadb": [b.mariadb.port], "epmd": [b.rabbitmq.epmd_port],
           "rabbitmq": [b.rabbitmq.port, b.rabbitmq.dist_port], "memcached": [b.memcached.port],
           "haproxy": [s.port for s in d.services.enabled().values()]}
    for name, s in d.services.enabled().items():
        out["nova-api" if name == "nova" else name] = [s.backend_port]
    return out


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _ephemeral_range() -> tuple[int, int]:
    try:
        lo, hi = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        return int(lo), int(hi)
    except (OSError, ValueError):
        return 32768, 60999


def preflight(d: Deployment) -> None:
    """Refuse before changing anything: artifacts and programs present, every port of a stopped process free."""
    artifacts(d)
    backing.check_programs()
    run_dir = d.state / "run"
    busy = []
    for name, ports in binds(d).items():
        if procs.alive(run_dir / f"{name}.pid"):
            continue
        procs.reap(run_dir / f"{name}.pid")  # a killed master's workers may still hold its port
        busy += [f"{port} ({name})" for port in ports if not _port_free(d.listen, port)]
    if busy:
        raise StackcrateError(f"port(s) already in use on {d.listen}: {', '.join(busy)}",
                              hint="stop what uses them, or change the ports in the services file")
    lo, hi = _ephemeral_range()
    risky = [f"{port} ({name})" for name, ports in binds(d).items() for port in ports if lo <= port <= hi]
    if risky:
        # Seen: an outgoing connection took 38774 as its source port and HAProxy could not bind it on restart.
        raise StackcrateError(f"port(s) in this machine's ephemeral range {lo}-{hi}: {', '.join(risky)}",
                              hint="outgoing connections may take them at any time; pick ports below "
                              f"{lo} in the services file")


def start_procs(d: Deployment, plist: list[Proc], t: Timer) -> list[str]:
    run_dir, log_dir = d.state / "run", d.state / "log"
    run_dir.mkdir(parents=True, exist_ok=True)
    started = []
    for p in plist:
        if procs.alive(run_dir / f"{p.name}.pid"):
            continue
        with t.step(f"Starting {p.name}"):
            procs.start(p, run_dir, log_dir)
            procs.wait_healthy(p, d.listen, run_dir, log_dir)
        started.append(p.name)
    return started


def stop_all(d: Deployment, t: Timer) -> dict[str, str]:
    """OpenStack processes in parallel (nova's ignore SIGTERM: each waits out the deadline), then backing ones
    one by one in reverse dependency order."""
    run_dir = d.state / "run"
    present = [n for n in STOP_ORDER if (run_dir / f"{n}.pid").exists()]
    tier1 = [n for n in present if n not in BACKING]
    out: dict[str, str] = {}
    if tier1:
        with t.step(f"Stopping {', '.join(tier1)}") as info:
            with ThreadPoolExecutor(max_workers=len(tier1)) as pool:
                results = pool.map(lambda n: procs.stop(n, run_dir, d.config.stop_timeout), tier1)
                out.update(zip(tier1, results, strict=True))
            killed = [n for n in tier1 if out[n] != "stopped"]
            info["note"] = f"killed after {d.config.stop_timeout:g}s: {', '.join(killed)}" if killed else ""
    for name in [n for n in present if n in BACKING]:
        with t.step(f"Stopping {name}") as info:
            out[name] = info["note"] = procs.stop(name, run_dir, d.config.stop_timeout)
    return out


BACKING = ["haproxy", "memcached", "rabbitmq", "epmd", "mariadb"]
STOP_ORDER = ["nova-compute", "nova-scheduler", "nova-conductor", "nova-api", "neutron", "placement", "glance",
              "keystone", *BACKING]


def discover_hosts(lay: services.Layout, t: Timer) -> None:
    """Map the fake compute host into cell1 once it has registered (nova-compute does that on start)."""
    if "nova" not in lay.d.services.enabled() or "compute" not in lay.d.services.services.nova.processes:
        return
    conf = ["--config-file", services.conf_file(lay, "nova")]

    def count(q: str) -> int:
        return int(backing.sql(lay.d, q).strip() or 0)

    with t.step("Mapping the compute host (nova-manage cell_v2 discover_hosts)") as info:
        if count("SELECT COUNT(*) FROM nova_api.host_mappings WHERE host='stackcrate';"):
            info["note"] = "already mapped"
            return
        deadline = time.monotonic() + 120
        # Polling the database is instant; nova-manage takes ~3 s to start, so run it once the node exists.
        while not count("SELECT COUNT(*) FROM nova.compute_nodes WHERE host='stackcrate' AND deleted=0;"):
            if time.monotonic() > deadline:
                raise StackcrateError("nova-compute did not register within 120s",
                                      hint="see `stackcrate deploy logs nova-compute`")
            time.sleep(0.5)
        tools.run([lay.bin("nova", "nova-manage"), *conf, "cell_v2", "discover_hosts"])


# ---------------------------------------------------------------------------------------------- verbs

def _marker(d: Deployment) -> Path:
    return d.state / "data" / "deployment.json"


def initialised(d: Deployment) -> bool:
    return _marker(d).exists()


def init(d: Deployment, t: Timer) -> dict:
    """Install, configure, create databases/users/keys/catalog. Idempotent. Leaves backing+keystone running."""
    preflight(d)
    with t.step("Secrets (generated once, mode 0600)"):
        load_or_create(d.state, d.config.secrets)
    install(d, t)
    lay = layout(d)
    everything = all_procs(d, lay)
    with t.step("Writing configuration files"):
        write_configs(lay)
    with t.step("MariaDB data directory") as info:
        info["note"] = "created" if backing.mariadb_install(d) else "kept"
    start_procs(d, [p for p in everything if p.kind == "backing"], t)
    with t.step("Databases and database users"):
        backing.sql(d, services.db_sql(d, lay.secrets))
    others = [s for s in d.services.enabled() if s != "keystone"]

    def sync(service: str) -> tuple[str, float]:
        t0 = time.monotonic()
        if service == "keystone":
            services.keystone_init(lay)
        else:
            services.db_sync(lay, service)
        return service, time.monotonic() - t0

    # Each service's migrations touch only its own database: run them all at once (keystone's include its
    # key setup and bootstrap).
    with t.step("Schema migrations and keystone bootstrap (in parallel)") as info:
        with ThreadPoolExecutor(max_workers=len(others) + 1) as pool:
            took = list(pool.map(sync, ["keystone", *others]))
        info["note"] = ", ".join(f"{s} {sec:.1f}s" for s, sec in took)
    start_procs(d, [p for p in everything if p.name == "keystone"], t)
    with t.step("Service users, services and endpoints in keystone") as info:
        made = register(lay)
        info["note"] = f"{made} created" if made else "all present"
    _marker(d).write_text(json.dumps({"services": list(d.services.enabled()), "time": time.time()}))
    return {"state": str(d.state), "created_in_keystone": made}


def start(d: Deployment, t: Timer, require_init: bool = True) -> dict:
    if require_init and not initialised(d):
        raise StackcrateError(f"the deployment in {d.state} is not initialised", hint="run `stackcrate deploy init`"
                              " (or `stackcrate deploy run`, which does it)")
    preflight(d)
    lay = layout(d)
    everything = all_procs(d, lay)
    with t.step("Writing configuration files"):
        write_configs(lay)  # `rm` removed them; regenerating is cheap and picks up config changes
    started = start_procs(d, everything, t)
    discover_hosts(lay, t)
    return {"started": started}


def run(d: Deployment, t: Timer) -> dict:
    out = {}
    if not initialised(d):
        out["init"] = init(d, t)
    out.update(start(d, t))
    return out


def process_names(d: Deployment) -> list[str]:
    """Every process of this deployment, in start order (from the services file alone)."""
    names = list(binds(d))
    if "nova" in d.services.enabled():
        nova = d.services.services.nova.processes
        names = [n for n in names if n != "nova-api" or "api" in nova]
        names += [f"nova-{p}" for p in ("conductor", "scheduler", "compute") if p in nova]
    return names


def status(d: Deployment) -> list[dict]:
    """State (running/down/stopped) and health of each process; needs neither the venvs nor the programs."""
    run_dir, ports = d.state / "run", binds(d)
    rows = []
    for name in process_names(d):
        pidfile = run_dir / f"{name}.pid"
        pid = procs.alive(pidfile)
        port = ports.get(name, [None])[0]
        if pid:
            state = "running"
            if name in BACKING or name == "epmd":
                good = procs.port_open(d.listen, port)
            elif port:
                good = procs.http_ok(f"http://{d.listen}:{port}/")
            else:
                good = True  # nova's conductor/scheduler/compute have no port; running is all we can see here
            health = "ok" if good else "failing"
        else:
            state, health = ("down" if pidfile.exists() else "stopped"), "-"
        kind = "backing" if name in BACKING or name == "epmd" else "service"
        rows.append({"name": name, "kind": kind, "state": state, "health": health, "pid": pid, "port": port})
    return rows


def rm(d: Deployment, t: Timer, purge: bool) -> dict:
    stopped = stop_all(d, t)
    if purge:
        with t.step(f"Removing {d.state}"):
            shutil.rmtree(d.state, ignore_errors=True)
    else:
        with t.step("Removing runtime files (run/, etc/); keeping data/, secrets and logs"):
            for sub in ("run", "etc"):
                shutil.rmtree(d.state / sub, ignore_errors=True)
    return {"stopped": stopped, "purged": purge}
