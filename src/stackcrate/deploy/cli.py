"""`stackcrate deploy <verb>`: thin wiring of the deployment lifecycle."""

from __future__ import annotations

import functools
import shlex
import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..errors import StackcrateError

if TYPE_CHECKING:
    from .config import Deployment
    from .timer import Timer


def deployment_options(f):
    @click.option("-s", "--services", "services_path", default="services.yaml", show_default=True,
                  type=click.Path(dir_okay=False), help="The services file.")
    @click.option("-c", "--config", "config_path", default="configuration.yaml", show_default=True,
                  type=click.Path(dir_okay=False), help="The configuration file.")
    @click.option("--state-dir", type=click.Path(file_okay=False), help="State folder (overrides the config).")
    @click.option("--artifacts", "artifacts_dir", type=click.Path(file_okay=False),
                  help="Folder with artifacts.json (overrides the config).")
    @click.option("--backend", type=click.Choice(["local", "podman", "docker"]),
                  help="Override the configuration's backend (a deployment keeps the one it was initialised with).")
    @functools.wraps(f)
    def wrapper(*args, services_path, config_path, state_dir, artifacts_dir, backend, **kw):
        from .config import Deployment

        cache = getattr(click.get_current_context().obj, "cache", None)
        d = Deployment(services_path, config_path, state_dir=state_dir, artifacts=artifacts_dir, backend=backend,
                       cache=cache)
        return f(*args, d=d, **kw)
    return wrapper


def _timer(obj) -> tuple[float, Timer]:
    from .timer import Timer

    return time.monotonic(), Timer(obj.ui)


def _finish(obj, t: Timer, verb: str, data: dict, text: str, started: float) -> None:
    total = time.monotonic() - started
    data = dict(data, steps=t.steps, seconds=round(total, 2))
    obj.ui.result(data, f"{text} ({verb} took {total:.1f}s)")


@click.group()
@click.option("-i", "--inventory", type=click.Path(dir_okay=False),
              help="An Ansible inventory: run the verb on its hosts (groups control and compute) through Ansible.")
@click.option("--limit", metavar="PATTERN", help="With -i: only these hosts (an Ansible host pattern, e.g. node3).")
@click.pass_obj
def deploy(obj, inventory: str | None, limit: str | None) -> None:
    """Run an OpenStack cloud from the built artifacts: on this host, or on many with -i INVENTORY."""
    if limit and not inventory:
        raise click.UsageError("--limit needs -i INVENTORY")
    if obj is not None:
        obj.inventory = Path(inventory).resolve() if inventory else None
        obj.limit = limit


def _many(obj, d: Deployment, *args: str) -> bool:
    """With -i: run the verb on the inventory's hosts (True); without: False, the verb runs here."""
    inventory = getattr(obj, "inventory", None)
    if inventory is None:
        return False
    from . import multinode

    t0 = time.monotonic()
    from rich.markup import escape

    # Ansible's lines are full of [brackets]: text, not markup
    cloud, texts = multinode.run_verb(d, inventory, obj.cache, list(args), lambda s: obj.ui.info(escape(s)),
                                      limit=getattr(obj, "limit", None))
    took = time.monotonic() - t0
    verb = args[0]
    if verb in ("logs", "openstack"):
        for h in cloud.hosts:
            if h.name in texts:
                if verb == "logs":
                    click.echo(f"======== {h.name}")
                click.echo(texts[h.name].rstrip())
        return True
    answers = {h: multinode.as_json(t) for h, t in texts.items()}
    if verb == "status":
        lines, code = [], 0
        for h in cloud.hosts:
            if h.name not in answers:
                continue
            a = answers[h.name]
            lines += [f"== {h.name} ({'+'.join(h.roles)}, {h.address})", *status_lines(a.get("processes", [])), ""]
            code = max(code, a.get("code", 1))
        obj.ui.result(answers, "\n".join(lines).rstrip())
        if code:
            raise SystemExit(code)
        return True
    if verb == "verify":
        a = answers.get(cloud.control.name, {})
        obj.ui.result({"hosts": answers, "seconds": round(took, 2)},
                      f"verified on {cloud.control.name}: token, image round trip, network, server "
                      f"{a.get('server_status')} with its port on {a.get('port', {}).get('host')} "
                      f"({took:.1f}s)")
        return True
    obj.ui.result({"hosts": answers, "seconds": round(took, 2)},
                  f"{verb}: done on {', '.join(h.name for h in cloud.hosts if h.name in answers)} "
                  f"({verb} took {took:.1f}s)")
    return True


@deploy.command()
@deployment_options
@click.option("--constraints-dir", type=click.Path(file_okay=False),
              help="Air-gapped constraints folder (<series>/upper-constraints.txt); "
              "default $STACKCRATE_CONSTRAINTS_DIR.")
@click.pass_obj
def build(obj, d: Deployment, constraints_dir: str | None) -> None:
    """Build the artifacts the deployment runs from the configuration's manifest (only what changed).

    The local backend runs the tarballs; a container backend also needs the services' OCI images. Without a
    manifest in the configuration, only checks that every artifact is there.
    """
    from .install import artifacts, backend_format

    t0 = time.monotonic()
    # many hosts (-i) install the services' Debian packages from the deploy host's apt repository, or (podman
    # hosts) pull the images from its registry
    inventory = getattr(obj, "inventory", None)
    if inventory:
        from .multinode import read_inventory

        formats = read_inventory(d, inventory).formats
    else:
        formats = [backend_format(d)]
    if d.manifest is None:
        for fmt in formats:
            artifacts(d, fmt)
        obj.ui.result({"built": False}, f"all artifacts present in {d.artifacts_dir} (no manifest to build from)")
        return
    from ..manifest import load
    from ..pipeline import build as run_build
    from .backing import SYSTEM_IMAGES

    manifest = load(d.manifest)
    report = run_build(manifest, manifest.lock_path(), d.artifacts_dir, obj.cache, obj.ui, formats=formats,
                       constraints_dir=constraints_dir,
                       system_images=SYSTEM_IMAGES if "oci" in formats else ())
    data: dict = {}
    for fmt in formats:
        found = artifacts(d, fmt)  # the manifest makes every artifact the services file needs
        if fmt == "oci":
            data["images"] = _image_sizes(obj, {c: d.artifacts_dir / a.file for c, a in found.items()})  # manifests
    n = sum(report.rebuilt)
    t = _timer(obj)[1]
    t.steps.extend(obj.ui.steps)  # the build's own steps (the pipeline shows them with the ui)
    _finish(obj, t, "build", {"built": n > 0, "rebuilt": n, "artifacts": len(report.artifacts), **data},
            f"{n} of {len(report.artifacts)} artifact(s) built → {d.artifacts_dir}", t0)


def _image_sizes(obj, manifests: dict[str, Path]) -> dict:
    """Each image's size and what all of them take once their shared layers are stored once, shown and returned."""
    from ..package.oci import image_sizes

    sizes = image_sizes(manifests)
    for name, size in sorted(sizes.per_image.items()):
        obj.ui.info(f"  image {name:<22} {size / 1e6:8.1f} MB")
    info = sizes.to_json()
    obj.ui.info(f"  images: {sizes.summed / 1e6:.1f} MB summed, {sizes.unique / 1e6:.1f} MB unique "
                f"({info['unique_percent']} %: layers shared between images are stored once)")
    return info


@deploy.command()
@deployment_options
@click.option("--reinstall", is_flag=True,
              help="Replace installed venvs that differ from the artifacts (rebuilt under the same version, "
                   "changed by hand, not installed by stackcrate); refused while a process runs from one.")
@click.pass_obj
def init(obj, d: Deployment, reinstall: bool) -> None:
    """Install artifacts; create databases, users, keys, catalog (idempotent)."""
    from . import lifecycle

    if _many(obj, d, "init"):
        return

    t0, t = _timer(obj)
    data = lifecycle.init(d, t, reinstall)
    _finish(obj, t, "init", data, f"initialised {d.state}", t0)


@deploy.command()
@deployment_options
@click.option("--dry-run", is_flag=True, help="Print what would run (container backends: the commands).")
@click.pass_obj
def run(obj, d: Deployment, dry_run: bool) -> None:
    """Init if needed, then start everything in dependency order, each checked healthy."""
    from . import lifecycle

    if not dry_run and _many(obj, d, "run"):
        return

    if dry_run and d.backend != "local":
        from .containers import dry_run as commands
        from .processes import definitions_for_status

        lines = commands(d, list(definitions_for_status(d).values()))
        obj.ui.result({"backend": d.backend, "commands": lines}, "\n".join(lines))
        return
    if dry_run:
        from .processes import process_names

        names = process_names(d)
        obj.ui.result({"backend": "local", "processes": names}, "would start: " + ", ".join(names))
        return
    t0, t = _timer(obj)
    data = lifecycle.run(d, t)
    n = len(lifecycle.process_names(d))
    _finish(obj, t, "run", data, f"running: all {n} processes healthy and the cloud ready "
            f"({len(set(data['started']) | set(data.get('init', {}).get('started', [])))} started by this run)", t0)


@deploy.command()
@deployment_options
@click.pass_obj
def start(obj, d: Deployment) -> None:
    """Start an initialised deployment (only what is not running)."""
    from . import lifecycle

    if _many(obj, d, "start"):
        return

    t0, t = _timer(obj)
    data = lifecycle.start(d, t)
    _finish(obj, t, "start", data, f"started {', '.join(data['started']) or 'nothing (all running)'}", t0)


@deploy.command()
@deployment_options
@click.pass_obj
def stop(obj, d: Deployment) -> None:
    """Stop every process (SIGTERM, then SIGKILL after the deadline)."""
    from . import lifecycle

    if _many(obj, d, "stop"):
        return

    t0, t = _timer(obj)
    data = lifecycle.stop_all(d, t)
    _finish(obj, t, "stop", {"stopped": data}, f"stopped {len(data)} process(es)", t0)


@deploy.command()
@deployment_options
@click.option("--purge", is_flag=True, help="Also remove the data (databases, images, keys, secrets) and the "
              "venvs it installed that no other deployment uses.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation of --purge.")
@click.pass_obj
def rm(obj, d: Deployment, purge: bool, yes: bool) -> None:
    """Stop and remove runtime files, keeping data (--purge: remove data too)."""
    from . import lifecycle

    if purge and not yes and not click.confirm(f"Remove {d.state} with all its data, and the venvs only it uses?",
                                               err=True):
        obj.ui.info("nothing removed")
        raise SystemExit(1)
    if _many(obj, d, "rm", *(["--purge", "--yes"] if purge else [])):
        return
    t0, t = _timer(obj)
    data = lifecycle.rm(d, t, purge)
    _finish(obj, t, "rm", data, f"removed {'everything in ' if purge else 'runtime files of '}{d.state}", t0)


@deploy.command()
@deployment_options
@click.option("--to", "to", type=click.Path(file_okay=False, exists=True),
              help="The artifacts of the next series (a folder with artifacts.json, built from its manifest).")
@click.option("--commit", is_flag=True, help="End the upgrade that awaits commit: remove its snapshot (no "
              "rollback after this).")
@click.option("--remove-old", is_flag=True, help="With --commit: also remove the old release's venvs that no "
              "other deployment uses.")
@click.pass_obj
def upgrade(obj, d: Deployment, to: str | None, commit: bool, remove_old: bool) -> None:
    """Move the cloud to the next series: preflight, snapshot, install beside, migrate, switch, verify.

    Until `--commit`, `stackcrate deploy rollback` restores the snapshot and the old release; writes made after
    the snapshot are lost on rollback.
    """
    from . import upgrade as upgrading

    if bool(to) == commit:
        raise click.UsageError("give either --to ARTIFACTS_DIR or --commit")
    if remove_old and not commit:
        raise click.UsageError("--remove-old goes with --commit")
    t0, t = _timer(obj)
    if commit:
        data = upgrading.commit(d, t, remove_old)
        _finish(obj, t, "commit", data, f"upgrade to {data['series']} committed: snapshot removed", t0)
        return
    data = upgrading.upgrade(d, Path(to), t)
    phases = ", ".join(f"{k} {v:.0f}s" for k, v in data["phases"].items())
    _finish(obj, t, "upgrade", data, f"upgraded {data['from']['series']} → {data['to']['series']} ({phases}; "
            f"snapshot {data['snapshot_bytes'] / 1e6:.1f} MB): {_versions(data['versions'])}; "
            "`stackcrate deploy rollback` until `stackcrate deploy upgrade --commit`", t0)


@deploy.command()
@deployment_options
@click.pass_obj
def rollback(obj, d: Deployment) -> None:
    """Go back to the release an upgrade started from: its snapshot restored (later writes are lost)."""
    from . import upgrade as upgrading

    t0, t = _timer(obj)
    data = upgrading.rollback(d, t)
    _finish(obj, t, "rollback", data, f"rolled back to {data['series']}: {_versions(data['versions'])}", t0)


def _versions(versions: dict[str, str]) -> str:
    return ", ".join(f"{n} {v}" for n, v in versions.items())


@deploy.command()
@deployment_options
@click.pass_obj
def status(obj, d: Deployment) -> None:
    """Each process: state, health (a check that exercises what it depends on), version, pid, port.

    Exit status 0 when every process runs and is healthy, 3 when nothing runs, 1 otherwise.
    """
    from . import lifecycle

    if _many(obj, d, "status"):
        return
    from .dashboard import enabled, url
    from .upgrade import describe

    data = lifecycle.status(d)
    data["release"] = rel = describe(d)
    lines = [*status_lines(data["processes"]), rel["text"]]
    if enabled(d):
        data["dashboard"] = url(d)
        lines.append(f"dashboard: {data['dashboard']} (user admin, password: admin_password in "
                     f"{d.state / 'secrets.yaml'})")
    obj.ui.result({"state_dir": str(d.state), **data}, "\n".join(lines))
    if data["code"]:
        raise SystemExit(data["code"])


def status_lines(rows: list[dict]) -> list[str]:
    vw = max([len(r["version"] or "-") for r in rows] + [len("VERSION")]) + 2  # Debian's versions are long
    nw = max([len(r["name"]) for r in rows] + [len("NAME")]) + 2
    lines = [f"{'NAME':<{nw}}{'KIND':<9}{'STATE':<13}{'HEALTH':<9}{'VERSION':<{vw}}{'PID':<9}{'PORT':<7}DETAIL"]
    for r in rows:
        lines.append(f"{r['name']:<{nw}}{r['kind']:<9}{r['state']:<13}{r['health']:<9}{r['version'] or '-':<{vw}}"
                     f"{str(r['pid'] or '-'):<9}{str(r['port'] or '-'):<7}{r['detail']}")
    return lines


@deploy.command()
@deployment_options
@click.argument("service", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new lines.")
@click.option("-n", "--lines", default=50, show_default=True, help="Lines to show from the end of each log.")
@click.pass_obj
def logs(obj, d: Deployment, service: str | None, follow: bool, lines: int) -> None:
    """Show the logs of one process (or all): the state folder's log files, or the container engine's logs."""
    if not follow and _many(obj, d, "logs", *([service] if service else []), "-n", str(lines)):
        return
    log_dir = d.state / "log"
    files = sorted(log_dir.glob("*.log")) if log_dir.is_dir() else []
    if service:
        files = [f for f in files if f.stem == service or f.stem.startswith(service + "-")]
        if not files:
            known = ", ".join(f.stem for f in sorted(log_dir.glob("*.log"))) or "none yet"
            raise StackcrateError(f"no log for {service!r}", hint=f"logs: {known}")
    if d.backend != "local" and not follow:
        from .containers import Containers

        engine = Containers(d)
        for f in files:
            click.echo(f"==> {f.stem} ({d.backend} logs) <==")
            click.echo(engine.logs(f.stem, lines))
        return
    for f in files:
        click.echo(f"==> {f.name} <==")
        click.echo("\n".join(f.read_text(errors="replace").splitlines()[-lines:]))
    if follow:
        obj.done_with_cache()  # following may last for days
        _follow(files)


def _follow(files: list[Path]) -> None:
    """Print what is appended to the logs until interrupted (like `tail -F`: a rotated log is read anew)."""
    pos = {f: f.stat().st_size for f in files}
    while True:
        for f in files:
            size = f.stat().st_size if f.exists() else 0
            if size < pos[f]:  # rotated by supervisord: the new file starts at 0
                pos[f] = 0
            if size > pos[f]:
                with open(f, errors="replace") as fh:
                    fh.seek(pos[f])
                    click.echo(fh.read(), nl=False)
                pos[f] = size
        time.sleep(0.5)


@deploy.command()
@deployment_options
@click.pass_obj
def env(obj, d: Deployment) -> None:
    """Print shell exports for the `openstack` client of this cloud: eval "$(stackcrate deploy env)".

    The password stays in <state>/clouds.yaml (mode 0600); nothing secret is printed.
    """
    from .configs import cloud_name
    from .install import artifacts

    clouds = d.state / "clouds.yaml"
    if not clouds.exists():
        raise StackcrateError(f"{clouds} does not exist", hint="run `stackcrate deploy init` (or `run`) first")
    exports = {"OS_CLIENT_CONFIG_FILE": str(clouds), "OS_CLOUD": cloud_name(d)}
    lines = [f"export {k}={shlex.quote(v)}" for k, v in exports.items()]
    if d.backend != "local":  # the client's venv is in its image, not on the host: bring your own `openstack`
        obj.ui.result(exports, "\n".join(lines))
        return
    client = artifacts(d)[d.services.client].install_path
    lines.append(f'export PATH={shlex.quote(client + "/bin")}:"$PATH"')
    obj.ui.result({**exports, "path": f"{client}/bin"}, "\n".join(lines))


@deploy.command()
@deployment_options
@click.pass_obj
def verify(obj, d: Deployment) -> None:
    """Token, image upload/download, a network with a subnet and a router, a server on it whose port goes ACTIVE
    on the compute host (compute_driver podman: a container server of stackcrate's busybox image, its console log):
    with the real `openstack` client; everything made is deleted."""
    from .lifecycle import initialised
    from .manager import manager_for, running_names
    from .verify import verify as do_verify

    if _many(obj, d, "verify"):
        return
    # said before anything is made (verify keeps its files in the state folder)
    if not initialised(d):
        raise StackcrateError(f"the deployment in {d.state} is not initialised: there is no cloud to verify",
                              hint="run `stackcrate deploy run`")
    if not running_names(manager_for(d)):
        raise StackcrateError(f"the deployment in {d.state} is not running", hint="run `stackcrate deploy start`")
    t0, t = _timer(obj)
    data = do_verify(d, t)
    server = (f"with its port {data['port']['status']} at {data['port']['ip']}" if "port" in data
              else f"(a container: {data.get('console', '')!r})")
    _finish(obj, t, "verify", data, f"verified: token, image round trip, network, server {data['server_status']} "
            f"{server}, all deleted", t0)


@deploy.command(context_settings={"ignore_unknown_options": True})
@deployment_options
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.pass_obj
def openstack(obj, d: Deployment, args: tuple[str, ...]) -> None:
    """Run the `openstack` client on this cloud as its admin (with -i: on the control host), e.g.
    stackcrate deploy openstack -- compute service list"""
    if _many(obj, d, "openstack", "--", *args):
        return
    from .verify import Client

    client = Client(d)
    proc = client.run(list(args))
    click.echo(proc.stdout, nl=False)
    click.echo(proc.stderr, nl=False, err=True)
    if proc.returncode:
        raise SystemExit(proc.returncode)


@deploy.command("add-compute")
@deployment_options
@click.argument("hosts", nargs=-1)
@click.pass_obj
def add_compute(obj, d: Deployment, hosts: tuple[str, ...]) -> None:
    """On the control host: map compute hosts (default: configuration.yaml's node.compute_hosts) into the cell
    once their nova-compute runs, and wait until placement offers them."""
    from . import lifecycle

    t0, t = _timer(obj)
    data = lifecycle.add_compute(d, t, list(hosts))
    _finish(obj, t, "add-compute", data, f"compute host(s) {', '.join(data['compute_hosts'])} ready", t0)


@deploy.command("instance-image")
@deployment_options
@click.option("-o", "--output", default="busybox.tar", show_default=True, type=click.Path(dir_okay=False),
              help="Where to write the image archive.")
@click.pass_obj
def instance_image_cmd(obj, d: Deployment, output: str) -> None:
    """Write the container image `verify` boots with compute_driver podman (busybox from the target's packages, as
    a `docker save` archive) for `openstack image create --container-format docker --disk-format raw --file`."""
    from .verify import instance_image

    out = instance_image(d, Path(output).resolve())
    obj.ui.result({"image": str(out), "bytes": out.stat().st_size},
                  f"{out} ({out.stat().st_size / 1e6:.1f} MB): openstack image create --container-format docker "
                  f"--disk-format raw --file {out.name} busybox")
