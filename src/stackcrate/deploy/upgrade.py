"""`stackcrate deploy upgrade --to DIR`, `rollback` and `upgrade --commit`: move a deployment to the artifacts of
another series, and back.

The new release's venvs are installed beside the old ones (each at its versioned path; on a container backend,
its images are copied into the engine's store beside the old ones), so switching is a matter of which artifacts
the deployment runs (config.RELEASE). Before anything changes, a snapshot keeps what
the migrations change and cannot undo: every service database (one consistent dump), OVN's databases, keystone's
keys, the secrets and the generated configuration, and the record of what ran. OpenStack's migrations go one
way; rollback restores the snapshot, so writes made after it are lost.

Steps and what a failure leaves: preflight, install and snapshot change nothing the old cloud uses (a failure
there leaves it running as it was, the new venvs released); from the stop on, a failure stops the cloud on the
new release and `rollback` brings the old one back.
"""

from __future__ import annotations

import copy
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from ..errors import StackcrateError
from . import backing, bootstrap, lifecycle, ovn, startstop
from .config import RELEASE, Deployment
from .install import artifacts, install, prepare, record_use, release, summary, target
from .layout import Layout
from .manager import manager_for
from .openstack import SERVICES, Command
from .processes import all_processes, process_names, services_here
from .secrets import FILE as SECRETS
from .secrets import private_file
from .timer import Timer

FOLDER = "upgrade"          # <state>/upgrade: upgrade.json and the snapshot
MIGRATION_ROUNDS = 50       # online data migrations: runs before giving up (each runs to the end of its batches)
CHECK_TIMEOUT = 300


@dataclass(frozen=True)
class Release:
    artifacts: str
    series: str
    versions: dict[str, str]

    def to_json(self) -> dict:
        return {"artifacts": self.artifacts, "series": self.series, "versions": self.versions}


def release_of(d: Deployment) -> Release:
    """What the deployment's artifacts are: their series (one for all) and each component's version."""
    found = artifacts(d)
    series = sorted({a.series for a in found.values()})
    if len(series) != 1:
        raise StackcrateError(f"the artifacts in {d.artifacts_dir} are of several series ({', '.join(series)})",
                              hint="build every component of a release from one manifest")
    return Release(str(d.artifacts_dir), series[0], {c: a.version for c, a in sorted(found.items())})


def _series_key(series: str) -> tuple[int, int]:
    try:
        year, half = series.split(".")
        return int(year), int(half)
    except ValueError:
        raise StackcrateError(f"series {series!r} is not YEAR.N (e.g. 2026.1)",
                              hint="upgrades go between the series OpenStack names since 2023.1") from None


def check_path(old: str, new: str) -> None:
    """Adjacent series (2025.2 → 2026.1) or SLURP to SLURP (2025.1 → 2026.1): the paths OpenStack tests."""
    (y0, h0), (y1, h1) = _series_key(old), _series_key(new)
    if (y1, h1) <= (y0, h0):
        raise StackcrateError(f"the artifacts are of series {new}, not newer than the running {old}",
                              hint="an upgrade goes to a newer series; going back is `stackcrate deploy rollback`")
    adjacent = (y1, h1) == ((y0, 2) if h0 == 1 else (y0 + 1, 1))
    slurp = h0 == h1 == 1 and y1 == y0 + 1
    if not (adjacent or slurp):
        raise StackcrateError(f"{old} → {new} is not an upgrade path OpenStack supports (the next series, or "
                              "SLURP to SLURP: YEAR.1 → YEAR+1.1)", hint="upgrade through the series between them")


# ------------------------------------------------------------------------------------------------------- records

def folder(d: Deployment) -> Path:
    return d.state / FOLDER


def record(d: Deployment) -> dict | None:
    """The upgrade awaiting commit or rollback, if any. One whose record cannot be read is an error, not none:
    taken for none, `rollback` would say there is nothing to roll back and `upgrade` would write over it."""
    path = folder(d) / "upgrade.json"

    def unreadable(why: str = "") -> StackcrateError:
        return StackcrateError(f"{path}, the record of the upgrade awaiting commit or rollback, cannot be read{why}",
                               hint=f"restore it from a backup; the old release's snapshot is in {folder(d)}/snapshot")

    try:
        rec = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise unreadable(f" ({exc})") from None
    if not (isinstance(rec, dict) and isinstance(rec.get("from"), dict) and isinstance(rec.get("to"), dict)):
        raise unreadable()
    return rec


def _write_record(d: Deployment, rec: dict) -> None:
    private_file(folder(d) / "upgrade.json", json.dumps(rec, indent=2) + "\n")


def _switch(d: Deployment, to: Path) -> None:
    """From now on the deployment runs the artifacts in `to` (config.RELEASE)."""
    private_file(d.state / RELEASE, json.dumps({"artifacts": str(to), "time": time.time()}) + "\n")


def running(d: Deployment, to: str | Path) -> Deployment:
    """The deployment as it is once switched to other artifacts."""
    there = copy.copy(d)
    there.artifacts_dir = Path(to)
    return there


def _venvs_of(d: Deployment) -> list[Path]:
    """The venvs the deployment's artifacts put on this host (a container backend's are inside its images)."""
    return [target(a) for a in artifacts(d).values()] if d.backend == "local" else []


def _claim(d: Deployment, also: list[Path] = ()) -> None:
    """Record the venvs the deployment uses (and keeps a claim on) on this host; images need no such record."""
    if d.backend == "local":
        record_use(d, also=also)


def _release(d: Deployment, venvs: list[Path]) -> dict[str, list]:
    """Remove these venvs where no other deployment uses them (a container backend's images stay in the
    engine's store, where `deploy rm --purge` removes them)."""
    return release(d.state, venvs) if d.backend == "local" else {"removed": [], "kept": []}


# ------------------------------------------------------------------------------------------------------- steps

def _run_command(lay: Layout, service: str, cmd: Command, timeout: float = CHECK_TIMEOUT):
    argv, env = bootstrap.command_argv(lay, service, cmd)
    return manager_for(lay.d).run(bootstrap.management_call(lay, service, argv, env), timeout=timeout, check=False)


def _tail(proc, lines: int = 15) -> str:
    return "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-lines:])


def _not_passed(report: str) -> str:
    """The checks of an upgrade-check table (oslo.upgradecheck's) whose result is not Success, with details."""
    blocks, cur = [], []
    for line in report.splitlines():
        text = line.strip("|+- ").strip()
        if text.startswith("Check:"):
            cur = [text]
            blocks.append(cur)
        elif cur and text:
            cur.append(text)
    bad = [" ".join(b) for b in blocks if not any(x.startswith("Result: Success") for x in b)]
    return "\n".join(f"  {b}" for b in bad) or report.strip()[-1500:]


def upgrade_checks(lay: Layout, t: Timer) -> list[str]:
    """The new release's `<service>-status upgrade check` against the running cloud (its configuration and
    databases); a failure refuses the upgrade, warnings are shown."""
    warned = []
    for service in lay.d.services.enabled():
        cmd = SERVICES[service].upgrade_check
        if cmd is None:
            continue
        proc = _run_command(lay, service, cmd)
        if proc.returncode == 1:
            warned.append(service)
            t.ui.warn(f"{cmd.program} upgrade check warns:\n{_not_passed(proc.stdout + proc.stderr)}")
        elif proc.returncode not in cmd.ok_exit:
            raise StackcrateError(f"{cmd.program} upgrade check failed (exit {proc.returncode}):\n"
                                  f"{_not_passed(proc.stdout + proc.stderr)}",
                                  hint="fix what it names in the running cloud, then upgrade again")
    return warned


def online_migrations(lay: Layout) -> int:
    """Each service's online data migrations until they report nothing left; the runs it took."""
    runs = 0
    for service in lay.d.services.enabled():
        cmd = SERVICES[service].online_migrations
        if cmd is None:
            continue
        for _ in range(MIGRATION_ROUNDS):
            proc = _run_command(lay, service, cmd, timeout=600)
            runs += 1
            if proc.returncode == 0:
                break
            if proc.returncode not in cmd.ok_exit:
                raise StackcrateError(f"{cmd.program} {' '.join(cmd.args[2:])} failed (exit {proc.returncode}):"
                                      f"\n{_tail(proc)}", hint=f"see {lay.d.state / 'log'}")
        else:
            raise StackcrateError(f"{service}'s online data migrations did not finish in {MIGRATION_ROUNDS} runs")
    return runs


def snapshot(d: Deployment, lay: Layout) -> int:
    """The databases (one consistent dump of every service database), OVN's databases, keystone's keys, the
    secrets and the generated configuration, into <state>/upgrade/snapshot; its size in bytes."""
    snap = folder(d) / "snapshot"
    shutil.rmtree(snap, ignore_errors=True)
    snap.mkdir(parents=True)
    sup = manager_for(d)
    dbs = [db for names in bootstrap.databases(d).values() for db in names]
    private_file(snap / "databases.sql", backing.dump(d, dbs, sup))
    if ovn.enabled(d):
        for name, text in ovn.backup(d, sup).items():
            private_file(snap / f"{name}.db", text)
    for keys in SERVICES["keystone"].data_dirs:
        src = lay.data("keystone") / keys
        if src.is_dir():
            shutil.copytree(src, snap / "keystone" / keys, symlinks=True)
    for part in ("etc", SECRETS, "data/deployment.json"):
        src = d.state / part
        if src.is_dir():
            shutil.copytree(src, snap / part, symlinks=True)
        elif src.is_file():
            (snap / part).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, snap / part)
    return sum(f.stat().st_size for f in snap.rglob("*") if f.is_file())


def restore_files(d: Deployment, lay: Layout) -> None:
    """Put back the snapshot's files while nothing runs: OVN's databases (a backup is a database file
    ovsdb-server opens as it is), keystone's keys and the secrets."""
    snap = folder(d) / "snapshot"
    if ovn.enabled(d):
        for saved in snap.glob("*.db"):
            shutil.copy2(saved, ovn.data_dir(d) / saved.name)
    for keys in SERVICES["keystone"].data_dirs:
        saved = snap / "keystone" / keys
        if saved.is_dir():
            shutil.rmtree(lay.data("keystone") / keys, ignore_errors=True)
            shutil.copytree(saved, lay.data("keystone") / keys, symlinks=True)
    if (snap / SECRETS).is_file():
        shutil.copy2(snap / SECRETS, d.state / SECRETS)


def restore_databases(d: Deployment) -> None:
    """Each service database dropped, then loaded from the snapshot's dump (MariaDB runs; no OpenStack process)."""
    sup = manager_for(d)
    dbs = [db for names in bootstrap.databases(d).values() for db in names]
    backing.sql(d, "".join(f"DROP DATABASE IF EXISTS `{db}`;\n" for db in dbs), sup)
    backing.load(d, (folder(d) / "snapshot" / "databases.sql").read_text(), sup)


# ------------------------------------------------------------------------------------------------------- verbs

def upgrade(d: Deployment, to: Path, t: Timer) -> dict:
    from .verify import verify

    if not lifecycle.initialised(d):
        raise StackcrateError(f"the deployment in {d.state} is not initialised: there is nothing to upgrade",
                              hint="`stackcrate deploy run` it first")
    if not d.has("control"):  # its checks, migrations and snapshot are of the databases, on the control host
        raise StackcrateError(f"the deployment in {d.state} is a compute host of several: an upgrade runs on a "
                              "cloud's control host", hint="upgrade a one-node cloud (roles control and compute)")
    if (rec := record(d)) is not None:
        raise StackcrateError(f"an upgrade from {rec['from']['series']} to {rec['to']['series']} awaits "
                              f"{'commit or rollback' if rec['phase'] == 'done' else 'rollback'} "
                              f"({rec['phase']})", hint="`stackcrate deploy upgrade --commit` or "
                                                        "`stackcrate deploy rollback` first")
    to = to.resolve()
    if to == d.artifacts_dir:
        raise StackcrateError(f"the deployment already runs the artifacts in {to}",
                              hint="--to names the artifacts of the next series")
    new = running(d, to)
    old_rel, new_rel = release_of(d), release_of(new)
    check_path(old_rel.series, new_rel.series)
    old_venvs, new_venvs = _venvs_of(d), _venvs_of(new)
    rec = {"from": old_rel.to_json(), "to": new_rel.to_json(), "started": time.time(), "phase": "preflight",
           "seconds": {}, "failed": None}
    sup = manager_for(d)
    took = rec["seconds"]

    def phase(name: str):
        rec["phase"] = name
        return t.step(name.capitalize())

    # -- nothing the old cloud uses changes here: a failure leaves it running as it was
    try:
        t0 = time.monotonic()
        with phase("preflight") as info:
            st = lifecycle.status(d)
            bad = [f"{r['name']} {r['state']}/{r['health']}" for r in st["processes"]
                   if not (r["state"] == "running" and r["health"] == "ok")]
            if bad:
                raise StackcrateError(f"the cloud is not healthy: {', '.join(bad)}",
                                      hint="`stackcrate deploy status`; upgrade a cloud that runs healthy")
            runs = online_migrations(lifecycle.layout(d))
            info["note"] = f"{old_rel.series} healthy; online data migrations done ({runs} run(s))"
        with phase("install") as info:
            if d.backend == "local":
                planned = prepare(new)
                info["note"] = summary(planned)
                install(new, t, planned=planned)
            else:  # the new images into the engine's store, and a container of one started as a test
                copied = manager_for(new).preflight()  # type: ignore[union-attr]
                info["note"] = f"{len(copied)} image(s) copied in" if copied else "images already there"
            _claim(d, also=new_venvs)  # both releases' venvs are this deployment's until commit or rollback
        with phase("upgrade checks") as info:
            warned = upgrade_checks(lifecycle.layout(new), t)
            info["note"] = f"warnings from {', '.join(warned)}" if warned else "passed"
        took["preflight"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        with phase("snapshot") as info:
            _write_record(d, rec)
            rec["snapshot_bytes"] = snapshot(d, lifecycle.layout(d))
            info["note"] = f"{rec['snapshot_bytes'] / 1e6:.1f} MB in {folder(d) / 'snapshot'}"
        took["snapshot"] = round(time.monotonic() - t0, 1)
    except StackcrateError:
        shutil.rmtree(folder(d), ignore_errors=True)
        _claim(d)
        _release(d, [v for v in new_venvs if v not in old_venvs])
        raise
    # -- from here a failure stops the cloud on the new release; rollback brings the old one back
    step = "stop"
    try:
        t0 = time.monotonic()
        with phase("stop"):
            services = [n for n in process_names(d) if n not in backing.backing_names(d)]
            startstop.stop_names(d, sup, services, t)
        took["stop"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        _switch(d, to)
        rec["phase"] = step = "migrations"
        _write_record(d, rec)
        lifecycle.init(new, t, ordered=True, keep_venvs=old_venvs)
        took["migrations"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        rec["phase"] = step = "start"
        lifecycle.start(new, t)
        took["switch"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        rec["phase"] = step = "verify"
        verified = verify(new, t)
        took["verify"] = round(time.monotonic() - t0, 1)
        t0 = time.monotonic()
        with phase("online data migrations") as info:
            step = "online data migrations"
            info["note"] = f"{online_migrations(lifecycle.layout(new))} run(s)"
        took["online data migrations"] = round(time.monotonic() - t0, 1)
    except StackcrateError as exc:
        rec.update(phase="failed", failed={"step": step, "error": str(exc)})
        _write_record(d, rec)
        with t.step("Stopping everything (the upgrade failed)"):
            startstop.stop_all(new, t)
        raise StackcrateError(f"the upgrade to {new_rel.series} stopped at step '{step}': {exc}",
                              hint=f"the cloud is stopped on {new_rel.series}; `stackcrate deploy rollback` brings "
                                   f"back {old_rel.series} as it was at the snapshot") from None
    rec["phase"] = "done"
    rec["finished"] = time.time()
    _write_record(d, rec)
    return {"from": rec["from"], "to": rec["to"], "phases": took, "snapshot_bytes": rec["snapshot_bytes"],
            "verify": verified, "versions": running_versions(new)}


def rollback(d: Deployment, t: Timer) -> dict:
    from .verify import verify

    rec = record(d)
    if rec is None:
        raise StackcrateError(f"no upgrade of the deployment in {d.state} awaits rollback",
                              hint="rollback is offered from `deploy upgrade` until `deploy upgrade --commit`")
    old = running(d, rec["from"]["artifacts"])
    new_venvs = _venvs_of(running(d, rec["to"]["artifacts"]))  # d may run either (a rollback run again)
    took: dict = {}
    t.ui.warn(f"rolling back to {rec['from']['series']} as it was at the snapshot of "
              f"{time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rec['started']))}: what was written after it "
              "(servers, images, networks, users made on the new release) is lost")
    t0 = time.monotonic()
    startstop.stop_all(d, t)
    _switch(d, Path(rec["from"]["artifacts"]))
    lay = lifecycle.layout(old)
    with t.step("Restoring the snapshot's files (OVN's databases, keystone's keys, secrets)"):
        restore_files(old, lay)
    sup = manager_for(old)
    sup.ensure(all_processes(lay))
    startstop.start_processes(old, sup, [p for p in all_processes(lay) if p.kind == "backing"],
                              lay.secrets, t, lay=lay)
    with t.step("Restoring the snapshot's databases") as info:
        restore_databases(old)
        info["note"] = f"taken {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(rec['started']))}"
    made = [s for s in services_here(old)
            if any(isinstance(c, Command) and c.unless_same for c in SERVICES[s].sync)]
    if made:  # the old release's own (the dashboard's static files were made again for the new one)
        with t.step(f"Files the old release makes from its venvs ({', '.join(made)})"):
            for service in made:
                bootstrap.sync(lay, service, sup, files_only=True)
    took["restore"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    lifecycle.start(old, t)
    took["start"] = round(time.monotonic() - t0, 1)
    t0 = time.monotonic()
    verified = verify(old, t)
    took["verify"] = round(time.monotonic() - t0, 1)
    _claim(old)
    if new_venvs:
        with t.step(f"Removing the {rec['to']['series']} venvs no other deployment uses") as info:
            gone = _release(old, [v for v in new_venvs if v not in _venvs_of(old)])
            info["note"] = f"{len(gone['removed'])} removed, {len(gone['kept'])} kept"
    shutil.rmtree(folder(d), ignore_errors=True)
    return {"series": rec["from"]["series"], "from": rec["to"], "phases": took, "verify": verified,
            "versions": running_versions(old)}


def commit(d: Deployment, t: Timer, remove_old: bool) -> dict:
    rec = record(d)
    if rec is None:
        raise StackcrateError(f"no upgrade of the deployment in {d.state} awaits commit")
    if rec["phase"] != "done":
        raise StackcrateError(f"the upgrade to {rec['to']['series']} did not finish (it stopped at "
                              f"{(rec.get('failed') or {}).get('step', rec['phase'])}): it cannot be committed",
                              hint="`stackcrate deploy rollback` brings back the old release")
    old_venvs = _venvs_of(running(d, rec["from"]["artifacts"]))
    _claim(d)
    out: dict = {"series": rec["to"]["series"], "snapshot_removed": str(folder(d) / "snapshot")}
    if remove_old and old_venvs:
        with t.step(f"Removing the {rec['from']['series']} venvs no other deployment uses") as info:
            out["venvs"] = _release(d, [v for v in old_venvs if v not in _venvs_of(d)])
            info["note"] = f"{len(out['venvs']['removed'])} removed, {len(out['venvs']['kept'])} kept"
    shutil.rmtree(folder(d), ignore_errors=True)
    return out


def running_versions(d: Deployment) -> dict[str, str]:
    """service -> the version of the venv its processes run from, as `deploy status` reports it."""
    rows = lifecycle.status(d)["processes"]
    return {r["name"]: r["version"] for r in rows if r["kind"] == "service" and r["version"]}


def describe(d: Deployment) -> dict:
    """For `deploy status`: the series and artifacts the deployment runs, and an upgrade awaiting commit."""
    try:
        series = release_of(d).series
    except StackcrateError:
        series = None
    out = {"series": series, "artifacts": str(d.artifacts_dir), "upgrade": None}
    text = f"release: {series or 'unknown'} (artifacts in {d.artifacts_dir})"
    if (rec := record(d)) is not None:
        out["upgrade"] = {k: rec.get(k) for k in ("phase", "failed", "started", "seconds")} | {
            "from": rec["from"]["series"], "to": rec["to"]["series"]}
        if rec["phase"] == "done":
            text += (f"; upgraded from {rec['from']['series']}, awaiting `stackcrate deploy upgrade --commit` "
                     "(or `stackcrate deploy rollback`)")
        else:
            text += (f"; the upgrade from {rec['from']['series']} stopped at "
                     f"{(rec.get('failed') or {}).get('step', rec['phase'])}: `stackcrate deploy rollback`")
    out["text"] = text
    return out
