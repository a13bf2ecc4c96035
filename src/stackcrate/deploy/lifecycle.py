"""The lifecycle of a deployment: init, start, run, stop, status, rm, add-compute (the verbs of `stackcrate
deploy`).

Processes run under the backend's manager (manager.py: supervisord, which restarts one that dies, or the
container engine); `start` refuses what would fail halfway first (preflight.py), starts them in dependency order
and returns only once each is healthy (startstop.py, health.py) and the cloud can build a server (readiness.py).
A process that exits while starting fails `start` at once with the end of its log, and the deployment is left
stopped rather than half-started.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from . import backing, bootstrap, configs, options, ovn, podman_api, secrets
from .config import Deployment
from .health import Checker, Tokens
from .install import artifacts, backend_format, install, prefixes, prepare, record_use, release, summary, venvs
from .keystone_api import register_with
from .layout import Layout
from .manager import STOPPED, Manager, manager_for, running_names
from .preflight import ports, preflight, refuse_pending_secrets
from .processes import Call, ProcessDef, all_processes, process_names, running_version, services_here
from .readiness import ComputeReadiness, wait_cloud_ready
from .startstop import config_digest, start_processes, started_with, stop_all, wait_settled, waves
from .supervisor import orphans
from .timer import Timer


def layout(d: Deployment, values: dict[str, str] | None = None) -> Layout:
    """The deployment with its venvs (installed on the host, or inside the images of a container backend) and its
    secrets (the applied ones unless given)."""
    arts = artifacts(d, backend_format(d))  # read once: the venvs' paths and the releases (Layout.release)
    where = venvs(d, needed=arts) if d.backend == "local" else {c: a.install_path for c, a in arts.items()}
    lay = Layout(d, where, values if values is not None else secrets.ensure(d.state, d.config.secrets,
                                                                             secrets.needed(d.config.node.roles)),
                 {c: a.version for c, a in arts.items()})
    if d.backend == "local":
        configs.refuse_token_cache_without_crypto(lay)
    return lay



def private_dirs(d: Deployment) -> None:
    """The state folder and its parts, readable by their owner only (secrets, keys, images, logs inside)."""
    for path in (d.state, d.state / "etc", d.state / "data", d.state / "run", d.state / "log"):
        path.mkdir(parents=True, exist_ok=True)
        os.chmod(path, 0o700)


def write_configs(lay: Layout) -> int:
    """Every generated file (backing services, OpenStack services, clouds.yaml); how many changed."""
    before = _digests(lay.d.state / "etc") | _digests(lay.wsgi_dir())
    backing.write_configs(lay.d, lay.secrets)
    configs.write_configs(lay)
    configs.write_clouds_yaml(lay)
    configs.write_boot_unit(lay.d)
    after = _digests(lay.d.state / "etc") | _digests(lay.wsgi_dir())
    return len({p for p in after.keys() | before.keys() if before.get(p) != after.get(p)})


def _digests(folder: Path) -> dict[str, str]:
    if not folder.is_dir():
        return {}
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()}


# ---------------------------------------------------------------------------------------------- verbs

def add_compute(d: Deployment, t: Timer, hosts: list[str]) -> dict:
    """On the control host: map compute hosts that now run nova-compute into the cell and wait until placement
    offers them (what a one-node `start` does for its own compute service)."""
    if not d.has("control"):
        raise StackcrateError(f"{d.host} is not a control host: add compute hosts where the databases run",
                              hint="run it on the control host (configuration.yaml: node.roles has control)")
    sup = manager_for(d)
    if not sup.running():
        raise StackcrateError(f"the deployment in {d.state} is not running", hint="run `stackcrate deploy start`")
    lay = layout(d)
    wait_cloud_ready(lay, sup, t, hosts or d.compute_hosts)
    return {"compute_hosts": hosts or d.compute_hosts}



def _marker(d: Deployment) -> Path:
    return d.state / "data" / "deployment.json"


def _record_init(d: Deployment, values: dict[str, str]) -> None:
    """The end of a successful init: the secrets every service now uses, and the marker `start` looks for."""
    secrets.record(d.state, values)
    secrets.finish_applying(d.state)
    _marker(d).write_text(json.dumps({"services": services_here(d), "backend": d.backend, "time": time.time()}))


def initialised(d: Deployment) -> bool:
    return _marker(d).exists()


def _converge(d: Deployment, lay: Layout, sup: Manager, t: Timer, only: set[str] | None = None,
              settle: bool = True, then: Callable[[ProcessDef], None] | None = None,
              gate: Callable[[ProcessDef], None] | None = None, tokens: Tokens | None = None) -> list[str]:
    """Start what does not run and restart what runs with another configuration than the one now written (then,
    gate, tokens: see start_processes)."""
    plist = [p for p in all_processes(lay) if only is None or p.name in only]
    restart = set()
    for p in plist:
        recorded = started_with(d, p.name)
        if not recorded.exists() or recorded.read_text() != config_digest(lay, p):
            restart.add(p.name)
    return start_processes(d, sup, plist, lay.secrets, t, restart, lay, settle=settle, then=then, gate=gate,
                           tokens=tokens)


def init(d: Deployment, t: Timer, reinstall: bool = False, ordered: bool = False, keep_venvs: list[Path] = (),
         and_start: bool = False) -> dict:
    """Install, configure, create databases/users/keys/catalog, apply changed secrets. Idempotent. Leaves the
    backing services and keystone running (and restarts what runs with a changed config).
    reinstall: replace installed venvs that differ from the artifacts (refused otherwise).
    ordered: migrations one service after the other in the table's order (an upgrade's documented order:
    keystone, glance, placement before nova); keep_venvs: venvs the deployment keeps a claim on.
    and_start (`run`, not ordered): also start every other process, each as soon as its service's migrations
    are done and those it needs serve (placement serves while nova still migrates), and return once the cloud
    is ready (`cloud_ready` in the answer)."""
    preflight(d, t)
    sup = manager_for(d)
    # a new deployment's database folder is made while the venvs unpack (mariadb-install-db: ~2 s on one core,
    # the archives take two); should anything fail until it is made, the state folder this init made goes whole
    fresh = False
    datadir: Future | None = None
    changed_venvs: set[str] = set()  # components whose installed files changed (kept as they are)
    try:
        if d.backend == "local":
            with t.step("Checking the artifacts and the installed venvs") as info:
                planned = prepare(d, reinstall)  # refuses before anything is written
                info["note"] = summary(planned)
            changed_venvs = {p.component for p in planned if p.action == "keep" and p.why}
            with ThreadPoolExecutor(max_workers=1) as beside:
                if d.has("control") and not d.state.exists():
                    d.state.parent.mkdir(parents=True, exist_ok=True)
                    try:
                        d.state.mkdir()  # this init's own (removed whole if it fails early)
                    except FileExistsError:
                        raise StackcrateError(f"another command made {d.state} meanwhile",
                                              hint="run one `init` or `run` of a deployment at a time") from None
                    fresh = True
                    private_dirs(d)
                    datadir = beside.submit(backing.mariadb_install, d, sup)
                install(d, t, reinstall, planned=planned)
        options.check(d, t, options_runner(d, sup))  # needs the venvs; before anything else of the deployment
        private_dirs(d)
        if d.backend == "local":
            record_use(d, also=keep_venvs)
        uses = secrets.needed(d.config.node.roles)
        pending = secrets.pending(d.state, d.config.secrets, uses)
        values = secrets.desired(d.state, d.config.secrets, uses)
        secrets.begin_applying(d.state, pending)  # before the first file or service holds a new value
        lay = layout(d, values)
        was_running = running_names(sup)
        with t.step("Writing configuration files") as info:
            changed = write_configs(lay)
            info["note"] = f"{changed} changed" if changed else "unchanged"
        if d.has("control"):
            with t.step("MariaDB data directory") as info:
                made = datadir.result() if datadir is not None else backing.mariadb_install(d, sup)
                info["note"] = "created" if made else "kept"
    except BaseException:
        if fresh:
            shutil.rmtree(d.state, ignore_errors=True)
        raise
    if ovn.enabled(d):
        with t.step("OVN and Open vSwitch databases") as info:
            info["note"] = ", ".join(ovn.create_databases(d, sup)) or "kept"
    sup.ensure(all_processes(lay))
    plist = all_processes(lay)
    backing_plist = [p for p in plist if p.kind == "backing"]
    if not d.has("control"):  # a compute host: nothing of the databases, the broker or keystone is here
        started = start_processes(d, sup, backing_plist, values, t, lay=lay)
        _record_init(d, values)
        return {"state": str(d.state), "started": started, "restarted": [], "secrets_applied": pending,
                "created_in_keystone": 0}
    first, rest = _database_first(backing_plist)

    def rest_of_backing() -> list[str]:
        # the broker may still hold an old password (set below): one that answers counts as started
        out = start_processes(d, sup, rest, values, t, lay=lay, login_optional=True, settle=False)
        if "rabbitmq_password" in pending or not Checker(d, values).amqp(d.services.backing.rabbitmq.port).ok:
            # also when an earlier init stopped half-way: the broker must hold the password every service gets
            with t.step("RabbitMQ: the OpenStack user's password"):
                backing.rabbitmq_set_password(d, values["rabbitmq_password"], sup)
        return out

    def keystone_serving() -> int:
        """keystone started (with the cache and the broker up) and the catalog registered in it."""
        started.extend(rest_started.result())
        started.extend(_converge(d, lay, sup, t, only={"keystone"}, settle=False, tokens=tokens))
        with t.step("Service users, services and endpoints in keystone") as info:
            made = register_with(lay, tokens, Checker(d, values).issue_token)
            info["note"] = f"{made} created" if made else "all present"
        return made

    pipelined = and_start and not ordered
    synced: dict[str, Future] = {name: Future() for name in d.services.enabled()}
    # one admin token for init's checks and the catalog (keystone hashes the password of each it issues)
    tokens = Tokens()
    compute = ComputeReadiness(lay, sup, t, tokens)

    def gate(p: ProcessDef) -> None:
        if p.service in synced:
            synced[p.service].result()  # raises what its migrations raised

    def sync(service: str) -> tuple[str, float, int | None, str]:
        t0 = time.monotonic()
        try:
            # nova-manage, loaded once: it runs nova's migrations, then maps the compute host at the end
            warm = compute.warm_up() if service == "nova" and pipelined else None
            # a venv changed by hand may migrate otherwise than its artifact: it migrates itself
            note = bootstrap.sync(lay, service, sup, warm=warm,
                                  kept_schema=d.services.enabled()[service].component not in changed_venvs)
        except BaseException as exc:
            synced[service].set_exception(exc)
            raise
        synced[service].set_result(None)
        took = time.monotonic() - t0
        made = keystone_serving() if service == "keystone" and not ordered else None
        if service == "keystone" and pipelined:
            starting.append(side.submit(_converge, d, lay, sup, t, None, False, compute.then, gate, tokens))
        return service, took, made, note

    try:
        started = start_processes(d, sup, first, values, t, lay=lay, login_optional=True, settle=False)
        starting: list[Future] = []  # pipelined: the start of every other process, once keystone serves
        # The migrations need only the database: the other backing services (the broker takes ~5 s) start beside
        # them; keystone starts once its own migrations are done, and takes the catalog, while the others' run.
        with ThreadPoolExecutor(max_workers=1) as side:
            rest_started = side.submit(rest_of_backing)
            with t.step("Databases and database users"):
                backing.sql(d, bootstrap.db_sql(d, values), sup)
            # Each service's migrations touch only its own database: run them all at once (keystone's include its
            # key setup and bootstrap, which also re-sets the admin password).
            names = list(d.services.enabled())
            how = "in order" if ordered else "in parallel"
            with t.step(f"Schema migrations and keystone bootstrap ({how})") as info:
                if ordered:  # a failed migration stops the ones after it
                    took = [sync(n) for n in names]
                else:
                    with ThreadPoolExecutor(max_workers=len(names)) as pool:
                        took = list(pool.map(sync, names))
                info["note"] = ", ".join(f"{s} {sec:.1f}s" + (f" ({note})" if note else "")
                                         for s, sec, _, note in took)
            made = next((m for _, _, m, _ in took if m is not None), None)
            if made is None:  # in order: keystone after every migration, as an upgrade documents
                made = keystone_serving()
        started.extend(starting[0].result() if starting else [])
        if pipelined and not compute.ready:  # nova-compute ran already (or there is none here)
            wait_cloud_ready(lay, sup, t, manage=compute.manage, tokens=tokens)
    finally:
        compute.close()
    # what ran before init with a config that changed now runs with the new one (pipelined: done just above)
    restarted = _converge(d, lay, sup, t, only=was_running - {"keystone"}, settle=False, tokens=tokens) \
        if was_running and not pipelined else []
    wait_settled(d, sup, [p for p in plist if p.name in {*started, *restarted}])
    _record_init(d, values)
    return {"state": str(d.state), "created_in_keystone": made, "secrets_applied": pending, "started": started,
            "restarted": restarted, "boot_unit": str(d.state / "etc" / "systemd" / configs.boot_unit_name(d)),
            "cloud_ready": pipelined}


def _database_first(backing_plist: list[ProcessDef]) -> tuple[list[ProcessDef], list[ProcessDef]]:
    """The backing processes split in two: the waves up to the database's (what the migrations need), and the
    rest."""
    grouped = waves(backing_plist)
    upto = next((i for i, wave in enumerate(grouped) if any(p.name == "mariadb" for p in wave)), len(grouped) - 1)
    first = {p.name for wave in grouped[:upto + 1] for p in wave}
    return [p for p in backing_plist if p.name in first], [p for p in backing_plist if p.name not in first]


def start(d: Deployment, t: Timer, require_init: bool = True) -> dict:
    """Start what does not run (restart what runs with a changed config) and wait until the cloud is ready."""
    if require_init and not initialised(d):
        raise StackcrateError(f"the deployment in {d.state} is not initialised", hint="run `stackcrate deploy init`"
                              " (or `stackcrate deploy run`, which does it)")
    refuse_pending_secrets(d)
    preflight(d, t)
    sup = manager_for(d)
    options.check(d, t, options_runner(d, sup))
    private_dirs(d)
    lay = layout(d)  # refuses venvs missing or installed from another artifact (init installs)
    try:
        with t.step("Writing configuration files"):
            write_configs(lay)  # `rm` removed them; a changed override takes effect (restart)
        plist = all_processes(lay)
        sup.ensure(plist)
        tokens = Tokens()
        compute = ComputeReadiness(lay, sup, t, tokens)
        started = _converge(d, lay, sup, t, settle=False, then=compute.then, tokens=tokens)
        if not compute.ready:  # nova-compute ran already (or there is none here)
            # meanwhile the processes started last count up to their `settle`
            wait_cloud_ready(lay, sup, t, tokens=tokens)
        wait_settled(d, sup, [p for p in plist if p.name in started])
    except StackcrateError:
        with t.step("Stopping everything (start failed)"):
            stop_all(d, t)
        raise
    return {"started": started}


def run(d: Deployment, t: Timer) -> dict:
    out: dict = {}
    if not initialised(d):
        try:
            out["init"] = init(d, t, and_start=True)
        except StackcrateError:
            stop_all(d, t)
            raise
        if out["init"].get("cloud_ready"):  # init started everything, each checked healthy: nothing left to start
            return {**out, "started": []}
    out.update(start(d, t))
    return out


def status(d: Deployment) -> dict:
    """Each process's state (from supervisord), health (its check) and version; needs neither the venvs nor the
    programs. `code`: 0 all running and healthy, 3 nothing runs, 1 anything else."""
    from .processes import definitions_for_status

    sup = manager_for(d)
    states = sup.states() if sup.running() else {}
    left = {} if states or d.backend != "local" else orphans(d.state)
    defs = definitions_for_status(d)
    try:
        versions = {c: a.version for c, a in artifacts(d, backend_format(d)).items()}
    except StackcrateError:
        versions = {}
    values = secrets.applied(d.state)
    checker = Checker(d, values)

    def one(name: str) -> dict:
        st = states.get(name)
        p = defs.get(name)
        row = {"name": name, "kind": "backing" if name in backing.backing_names(d) else "service", "pid": None,
               "port": (ports(d).get(name) or [None])[0], "version": None, "health": "-", "detail": ""}
        if st is None:
            row["state"] = "unsupervised" if name in left else "stopped"
            row["pid"] = left[name][0] if name in left else None
        else:
            row["state"] = {"RUNNING": "running", "STARTING": "starting", "BACKOFF": "restarting",
                            "STOPPING": "stopping", "EXITED": "exited", "FATAL": "failed"}.get(st.state, "stopped")
            row["pid"] = st.pid
            if st.state not in STOPPED:
                row["detail"] = st.description
        if row["state"] in ("running", "unsupervised") and p is not None:
            v = checker.check(p, row["pid"])
            row.update(health="ok" if v.ok else "failing", detail=v.detail, version=v.version)
        if st is not None and st.restarts is not None:
            row["restarts"] = st.restarts
            if st.restarts:  # it died and the engine's restart policy brought it back: say so
                row["detail"] = f"{row['detail']}; restarted {st.restarts}× by {d.backend}".lstrip("; ")
        if p is not None and p.component and not row["version"]:
            # what the process says first, else the venv it runs from (an upgrade's two releases are both
            # installed), else its artifact
            running = running_version(st.pid, p.component) if st and st.pid and d.backend == "local" else None
            row["version"] = running or versions.get(p.component)
        return row

    names = process_names(d)
    with ThreadPoolExecutor(max_workers=8) as pool:
        rows = list(pool.map(one, names))
    if all(r["state"] == "running" and r["health"] == "ok" for r in rows):
        code = 0
    elif all(r["state"] == "stopped" for r in rows):
        code = 3
    else:
        code = 1
    return {"processes": rows, "code": code, "supervisor": "running" if states else "stopped"}


def rm(d: Deployment, t: Timer, purge: bool) -> dict:
    stopped = stop_all(d, t)
    out: dict = {"stopped": stopped, "purged": purge}
    if d.backend != "local":
        with t.step(f"Removing the containers{' and the images loaded' if purge else ''}") as info:
            out["containers"] = manager_for(d).remove(purge)
            info["note"] = f"{len(out['containers']['containers'])} containers"
    if purge and d.backend == "local":
        with t.step("Removing the venvs no other deployment uses") as info:
            out["venvs"] = release(d.state, where=prefixes(d))
            info["note"] = f"{len(out['venvs']['removed'])} removed, {len(out['venvs']['kept'])} kept"
        for k in out["venvs"]["kept"]:
            t.ui.info(f"  kept {k['venv']}: {k['why']}")
    if ovn.enabled(d):
        with t.step(f"Removing the network namespace {ovn.netns(d)}") as info:
            info["note"] = "removed" if ovn.remove_netns(d) else "there was none"
    if purge and podman_api.enabled(d):
        with t.step("Removing the instances' containers and images") as info:
            gone = podman_api.remove_instances(d)
            info["note"] = f"{len(gone['containers'])} container(s), {len(gone['images'])} image tag(s)"
    if purge:
        with t.step(f"Removing {d.state}"):
            shutil.rmtree(d.state, ignore_errors=True)
    else:
        with t.step("Removing runtime files (run/, etc/); keeping data/, secrets and logs"):
            for sub in ("run", "etc"):
                shutil.rmtree(d.state / sub, ignore_errors=True)
            (d.state / "clouds.yaml").unlink(missing_ok=True)
    return out



def options_runner(d: Deployment, sup: Manager):
    """How options.check runs its probe: the venv's Python on the host, or in a one-shot container of the image
    that holds the venv (the probe's own file mounted read-only)."""
    if d.backend == "local":
        return tools.run
    from .options import PROBE

    owner = {a.install_path: c for c, a in artifacts(d, "oci").items()}

    def run(argv: list[str], input: str | None = None, timeout: float = 120) -> tools.CompletedProcess:
        component = owner[str(Path(argv[0]).parent.parent)]
        return sup.run(Call(component, argv[0], tuple(argv[1:]), input=input, reads=(str(PROBE.parent),)),
                       timeout=timeout)
    return run
