"""Many hosts through Ansible: `stackcrate deploy -i INVENTORY <verb>`.

The inventory (Ansible's own format) says which host is in which group: `control` (databases, broker, APIs,
conductor, scheduler, OVN's databases; one host for now) and `compute` (nova-compute with Open vSwitch and
ovn-controller). A host in both is both.

Everything a host runs is decided here, on the deploy host, from services.yaml and configuration.yaml: each host's
own configuration.yaml (its address, its roles, where the control plane is, the secrets), the Debian packages it
needs and the services' packages it runs. Those come from the deploy host's apt repository (`stackcrate
publish`'s layout of the .deb artifacts), served over HTTP while the playbook runs; each host installs the
versions artifacts.json names, pinned, after checking the sha256 of every .deb fetched. The playbooks shipped
beside this module (ansible/) do that and run stackcrate itself there, in a venv of its own (from wheels made
here), which checks once more what dpkg installed against artifacts.json: on each host the same supervision,
configuration and health checks as a one-node deployment, started in the order the playbooks give (control,
then compute, then the compute hosts mapped into the cell). Ansible does all remote work; nothing here opens a
connection to a host.

A host with `stackcrate_backend: podman` (inventory) runs its processes in containers instead: it pulls the images
it runs (nova's and OVN's on a compute host) by digest from the deploy host's registry (Debian's docker-registry,
filled by `skopeo copy` from the artifacts' OCI layout; deploy/registry.py), checks their image IDs, and its
stackcrate runs them as a one-node container deployment does (`images_from: engine`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import tools
from ..cache import Cache, digest_of, link_or_copy, sha256_file
from ..errors import StackcrateError
from ..model.artifacts import ArtifactIndex
from ..package.oci import LaidOut
from ..publish import apt_repo
from . import containers, registry, secrets
from .backing import CONTAINER_HOST_PACKAGES, HOST_PACKAGES
from .config import HOST_NAME, Deployment, ip_address
from .containers import Image
from .debs import depends, package
from .install import artifacts

PLAYBOOKS = Path(__file__).with_name("ansible")
HOST_ROOT = "/var/lib/stackcrate"   # on each host: <id>/state, <id>/dist (artifacts), <id>/wheels, <id>/venv
HOST_ETC = "/etc/stackcrate"        # on each host: <id>/services.yaml, <id>/configuration.yaml (0600: secrets)
PLAY_TIMEOUT = 3600.0
NAME = re.compile(HOST_NAME)


BACKENDS = ("local", "podman")  # how a host runs its processes: supervisord and venvs, or podman containers


@dataclass(frozen=True)
class Host:
    name: str
    address: str            # where the other hosts reach it (stackcrate_address, else ansible_host)
    roles: tuple[str, ...]  # control, compute
    backend: str = "local"  # stackcrate_backend, else configuration.yaml's backend


@dataclass(frozen=True)
class Cloud:
    inventory: Path
    hosts: tuple[Host, ...]
    repo_address: str | None = None  # where the deploy host serves its apt repository (stackcrate_repo_address)
    repo_netns: str | None = None    # the network namespace it serves from (a lab's; stackcrate_repo_netns)

    @property
    def control(self) -> Host:
        return next(h for h in self.hosts if "control" in h.roles)

    @property
    def compute(self) -> list[Host]:
        return [h for h in self.hosts if "compute" in h.roles]

    def runs(self, backend: str) -> list[Host]:
        return [h for h in self.hosts if h.backend == backend]

    @property
    def formats(self) -> list[str]:
        """The artifact formats the hosts install: .deb packages (local hosts), images (podman hosts)."""
        return [f for f, b in (("deb", "local"), ("oci", "podman")) if self.runs(b)]


# ------------------------------------------------------------------------------------------------ the inventory

def ansible_program(name: str) -> str:
    """ansible-playbook and ansible-inventory come with ansible-core, a dependency: beside our interpreter."""
    path = Path(sys.executable).parent / name
    return str(path) if path.exists() else tools.which(name, "ansible-core (pip install ansible-core)")


def ansible_env(d: Deployment, home: Path | None = None) -> dict[str, str]:
    """Ansible keeps its files in the deployment's state folder (never ~/.ansible), or in `home`, and says what
    it does."""
    home = home or d.state / "ansible"
    return {"ANSIBLE_HOME": str(home), "ANSIBLE_LOCAL_TEMP": str(home / "tmp"),
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(home / "cp"), "ANSIBLE_PIPELINING": "True",
            "ANSIBLE_FORKS": "20", "ANSIBLE_RETRY_FILES_ENABLED": "False", "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_DEPRECATION_WARNINGS": "False", "ANSIBLE_PYTHON_INTERPRETER": "/usr/bin/python3"}


def read_inventory(d: Deployment, inventory: Path) -> Cloud:
    """The inventory as Ansible reads it, checked: one control host, at least one compute host, names and
    addresses stackcrate can use."""
    if not inventory.exists():
        raise StackcrateError(f"the inventory {inventory} does not exist",
                              hint="make one (see examples/multinode/hosts.yml), or `stackcrate lab up` for a lab")
    # an inventory Ansible cannot parse is an error, not a warning and an empty inventory; reading it makes
    # nothing in the state folder (a bad inventory leaves no trace)
    with tempfile.TemporaryDirectory(prefix="stackcrate-ansible-") as home:
        r = tools.run([ansible_program("ansible-inventory"), "-i", str(inventory), "--list"],
                      env={**ansible_env(d, Path(home)), "ANSIBLE_INVENTORY_UNPARSED_FAILED": "True"}, check=False,
                      timeout=120)
    try:
        data = json.loads(r.stdout) if r.returncode == 0 else None
    except ValueError:
        data = None
    if data is None:
        raise StackcrateError(f"Ansible cannot read the inventory {inventory}: {r.stderr.strip()[-800:]}",
                              hint="fix it; `ansible-inventory -i FILE --list` shows what Ansible understands")
    return cloud_of(inventory, data, d.config.backend)


def cloud_of(inventory: Path, data: dict, backend: str = "local") -> Cloud:
    """The hosts of `ansible-inventory --list` output, with their roles and addresses."""
    def members(group: str) -> list[str]:
        seen, todo = [], [group]
        while todo:
            g = data.get(todo.pop(0), {})
            seen += [h for h in g.get("hosts", []) if h not in seen]
            todo += g.get("children", [])
        return seen

    control, compute = members("control"), members("compute")
    where = str(inventory)
    if len(control) != 1:
        raise StackcrateError(f"the group `control` has {len(control)} host(s): {', '.join(control) or 'none'}",
                              hint="put exactly one host in `control` (one database and broker host for now)",
                              where=where)
    if not compute:
        raise StackcrateError("the group `compute` has no host", hint="put the hosts nova-compute runs on in "
                              "`compute` (the control host may be one of them)", where=where)
    hostvars = data.get("_meta", {}).get("hostvars", {})
    hosts = []
    for name in dict.fromkeys(control + compute):
        if not NAME.match(name):
            raise StackcrateError(f"host {name!r}: a name of letters, digits, dots and dashes is needed (it becomes "
                                  "nova's host name)", hint="rename it in the inventory", where=where)
        v = hostvars.get(name, {})
        address = str(v.get("stackcrate_address") or v.get("ansible_host") or name)
        try:
            ip_address(address)
        except ValueError as exc:
            raise StackcrateError(f"host {name}: {exc}", where=where,
                                  hint="set `stackcrate_address` (the address other hosts reach it at) or an IP "
                                  "`ansible_host`") from None
        roles = tuple(r for r, group in (("control", control), ("compute", compute)) if name in group)
        runs = str(v.get("stackcrate_backend", backend))
        if runs not in BACKENDS:
            raise StackcrateError(f"host {name}: backend {runs!r}: a host of `deploy -i` runs its processes with "
                                  f"{' or '.join(BACKENDS)}", where=where,
                                  hint="set `stackcrate_backend: podman` (or local) for the host in the inventory")
        hosts.append(Host(name, address, roles, runs))
    v = hostvars.get(control[0], {})  # all:vars reach every host
    repo = v.get("stackcrate_repo_address")
    if repo is not None:
        try:
            ip_address(str(repo))
        except ValueError as exc:
            raise StackcrateError(f"stackcrate_repo_address: {exc}", where=where,
                                  hint="the deploy host's IP address as the hosts reach it") from None
    return Cloud(inventory, tuple(hosts), None if repo is None else str(repo), v.get("stackcrate_repo_netns"))


# ------------------------------------------------------------------------------------------------ per host

def host_root(d: Deployment) -> str:
    return f"{HOST_ROOT}/{d.id}"


def host_configuration(d: Deployment, cloud: Cloud, host: Host, values: dict[str, str]) -> dict:
    """The host's configuration.yaml: the deploy host's, with the host's address, roles and folders, where the
    control plane is, and the cloud's secrets that the host uses (a compute host: not the databases')."""
    raw = yaml.safe_load(d.config_path.read_text()) or {}
    raw.pop("manifest", None)  # hosts never build
    for key in ("backend", "venvs_from", "images_from"):
        raw.pop(key, None)
    # a local host runs the venvs dpkg installed; a podman host the images pulled from the deploy host's registry
    source = {"venvs_from": "debs"} if host.backend == "local" else {"images_from": "engine"}
    root, uses = host_root(d), secrets.needed(list(host.roles))
    return {**raw, "listen": host.address, "state_dir": f"{root}/state", "artifacts": f"{root}/dist",
            "backend": host.backend, **source, "secrets": {n: v for n, v in values.items() if n in uses},
            "node": {"name": host.name, "roles": list(host.roles), "control_address": cloud.control.address,
                     "compute_hosts": [h.name for h in cloud.compute]}}


def host_debs(d: Deployment, host: Host) -> list[dict]:
    """The services' packages the host installs (nova's alone on a compute host): package, version, the .deb's
    name and sha256 (the host checks what apt fetched against it)."""
    if host.backend != "local":
        return []
    return [{"package": package(a), "version": a.version, "file": a.file, "sha256": a.sha256}
            for a in artifacts(_as_host(d, host), "deb").values()]


def host_images(d: Deployment, host: Host) -> dict[str, Image]:
    """The images a podman host runs (nova's and OVN's on a compute host), from the deploy host's artifacts."""
    return containers.images(_as_host(d, host)) if host.backend == "podman" else {}


def _as_host(d: Deployment, host: Host) -> Deployment:
    """The deployment as `host` sees it (its roles), for what depends on them."""
    import copy

    there = copy.copy(d)
    there.config = d.config.model_copy(update={"node": d.config.node.model_copy(update={"roles": list(host.roles)})})
    return there


def host_vars(d: Deployment, cloud: Cloud, values: dict[str, str],
              pushed: dict[str, registry.Pushed] | None = None) -> dict[str, dict]:
    """What each host gets: its configuration, the Debian packages it needs, the services' packages (local
    hosts) or the images and where it pulls them from (podman hosts; `pushed`, by component)."""
    out: dict[str, dict] = {}
    needs: dict[str, list[str]] = {}
    for host in cloud.hosts:
        debs = host_debs(d, host)
        for deb in debs:
            if deb["file"] not in needs:
                needs[deb["file"]] = depends(d.artifacts_dir / deb["file"])
        # apt installs the services' packages from the deploy host's repository alone: what they depend on
        # comes first, from the host's own Debian sources
        if host.backend == "local":
            packages = [p for r in host.roles for p in HOST_PACKAGES[r]]
        else:
            packages = list(CONTAINER_HOST_PACKAGES)
        packages += [p for deb in debs for p in needs[deb["file"]]]
        images = [(pushed or {})[c].to_json() for c in host_images(d, host)]
        out[host.name] = {"configuration": host_configuration(d, cloud, host, values),
                          "packages": list(dict.fromkeys(packages)), "debs": debs, "images": images}
    return out


def image_sources(d: Deployment, cloud: Cloud) -> dict[str, tuple[LaidOut, str]]:
    """component -> (its image in the artifacts' OCI layout, the name the engine gives it), for every image a
    podman host runs."""
    out: dict[str, tuple[LaidOut, str]] = {}
    for host in cloud.runs("podman"):
        for c, image in host_images(d, host).items():
            out[c] = (image.laid_out, image.name)  # type: ignore[assignment] - the deploy host's artifacts
    return out


# ------------------------------------------------------------------------------------------------ the apt repository

def repository(d: Deployment) -> Path:
    """The deployment's .deb artifacts as an apt repository (stackcrate publish's flat layout) in the state
    folder, made again only when they change; its files are hard links to the artifacts where possible."""
    index = ArtifactIndex.load(d.artifacts_dir)
    debs = [a for a in index.artifacts if a.format == "deb"]
    key = digest_of({a.file: a.sha256 for a in debs})[:16]
    repo = d.state / "ansible" / "apt"
    if (repo / "KEY").is_file() and (repo / "KEY").read_text() == key:
        return repo
    work = repo.with_name(f".apt-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    apt_repo([index.path(a) for a in debs], work, max((a.source_date_epoch for a in debs), default=0),
             place=link_or_copy)
    (work / "KEY").write_text(key)
    shutil.rmtree(repo, ignore_errors=True)
    work.rename(repo)
    return repo


def repo_address(cloud: Cloud) -> str:
    """Where the hosts reach the deploy host: stackcrate_repo_address, else this host's address on the route to
    the control host."""
    if cloud.repo_address:
        return cloud.repo_address
    with socket.socket(socket.AF_INET6 if ":" in cloud.control.address else socket.AF_INET,
                       socket.SOCK_DGRAM) as s:
        try:
            s.connect((cloud.control.address, 9))  # a datagram socket: picks the route, sends nothing
            return s.getsockname()[0]
        except OSError as exc:
            raise StackcrateError(f"this host has no route to the control host {cloud.control.address} ({exc}), "
                                  "so the hosts cannot fetch the services' packages from it",
                                  where=str(cloud.inventory),
                                  hint="set stackcrate_repo_address (all:vars) to this host's address as the "
                                       "hosts reach it") from None


# ------------------------------------------------------------------------------------------------ stackcrate itself

def source_tree() -> Path:
    """stackcrate's own source (an editable or source install), from which the hosts' wheel is built."""
    top = Path(__file__).resolve().parents[3]
    if not (top / "pyproject.toml").is_file():
        raise StackcrateError("stackcrate's source tree is not beside its code, so no wheel can be built for the "
                              "hosts", hint="install stackcrate from its source (pip install -e . or pip install .)")
    return top


def wheelhouse(cache: Cache) -> Path:
    """stackcrate's wheel and those of its dependencies (and wheels.tar holding them all), for the hosts' venv;
    made once per source content."""
    top = source_tree()
    files = sorted(p for p in [top / "pyproject.toml", *(top / "src" / "stackcrate").rglob("*")]
                   if p.is_file() and "__pycache__" not in p.parts)
    key = digest_of({"python": sys.version_info[:2],
                     "files": {str(p.relative_to(top)): sha256_file(p) for p in files}})[:16]
    final = cache.dir("host-wheels") / key
    if final.is_dir():
        cache.used(final)
        return final
    with cache.locked(f"host-wheels:{key}"):
        if final.is_dir():
            return final
        work = cache.tempdir("host-wheels-")
        r = tools.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(work), str(top)],
                      env={"PIP_DISABLE_PIP_VERSION_CHECK": "1"}, check=False, timeout=900)
        if r.returncode != 0:
            raise StackcrateError(f"pip could not make the wheels of stackcrate for the hosts: {r.stderr[-1500:]}",
                                  hint="the deploy host needs PyPI (or a mirror pip is configured for)")
        (work / "KEY").write_text(key + "\n")
        # one file to send (Ansible copies a folder file by file, ~0.6 s each): wheels are compressed already
        with tarfile.open(work / "wheels.tar", "w", format=tarfile.PAX_FORMAT) as tf:
            for wheel in sorted(work.iterdir()):
                if wheel.name != "wheels.tar":
                    tf.add(wheel, arcname=wheel.name)
        Cache.commit(work, final)
    return final


# ------------------------------------------------------------------------------------------------ playbooks

def playbook(d: Deployment, cloud: Cloud, name: str, extra: dict, progress, what: str,
             timeout: float = PLAY_TIMEOUT, limit: str | None = None) -> dict[str, str]:
    """Run ansible/<name> on the cloud's inventory with extra vars (written 0600: they hold secrets); what each
    host's stackcrate answered (ansible/results/<host>.json). A failure names the host and what it said."""
    home = d.state / "ansible"
    results = home / "results"
    results.mkdir(parents=True, exist_ok=True)
    os.chmod(d.state, 0o700)
    for old in results.glob("*.json"):
        old.unlink()
    vars_file = home / "vars.json"
    secrets.private_file(vars_file, json.dumps({**extra, "stackcrate_results": str(results)}))
    log = d.state / "log" / "ansible.log"
    progress(f"{what}: ansible-playbook {name} on {', '.join(h.name for h in cloud.hosts)} (log: {log})")
    failures: list[str] = []
    started = time.monotonic()

    def line(text: str) -> None:
        if text.startswith(("TASK [", "PLAY [")):  # where the time goes: seconds since the start
            progress(f"  {time.monotonic() - started:6.1f}s  {text.rstrip(' *')}")
        elif text.startswith(("fatal: [", "failed: [")):
            failures.append(text)

    rc = tools.run_streaming([ansible_program("ansible-playbook"), "-i", str(cloud.inventory),
                              *(["--limit", limit] if limit else []), "-e", f"@{vars_file}", str(PLAYBOOKS / name)],
                             on_line=line, log_file=log, env=ansible_env(d), timeout=timeout)
    answers = {p.stem: p.read_text() for p in results.glob("*.json")}
    if rc != 0:
        raise StackcrateError(f"{what} failed: {explain(failures) or f'ansible-playbook exited with {rc}'}",
                              hint=f"the whole run is in {log}")
    return answers


def as_json(text: str) -> dict:
    """A host's answer (`stackcrate --json deploy ...`'s output) as data."""
    try:
        data = json.loads(text)
    except ValueError:
        return {"output": text}
    return data if isinstance(data, dict) else {"output": data}


def explain(failures: list[str]) -> str:
    """What Ansible's `fatal: [host]: FAILED! => {...}` lines say, shortly: the host and the command's error."""
    out = []
    for f in failures:
        host = f.split("[", 1)[1].split("]", 1)[0]
        try:
            result = json.loads(f.split("=> ", 1)[1])
        except (IndexError, ValueError):
            out.append(f"{host}: {f[-400:]}")
            continue
        said = (result.get("stderr") or result.get("msg") or result.get("stdout") or "").strip()
        out.append(f"{host}: {said[-1500:]}")
    return "\n".join(out)


def common_vars(d: Deployment, cloud: Cloud, cache: Cache, verb_args: list[str], with_hosts: bool,
                pushed: dict[str, registry.Pushed] | None = None) -> dict:
    extra = {"stackcrate_id": d.id, "stackcrate_root": host_root(d), "stackcrate_etc": f"{HOST_ETC}/{d.id}",
             "stackcrate_args": verb_args,
             "stackcrate_services": yaml.safe_load(d.services_path.read_text())}
    if with_hosts:
        values = secrets.desired(d.state, d.config.secrets)  # made once here: each host gets those it uses
        wheels = wheelhouse(cache)
        extra.update(stackcrate_hosts=host_vars(d, cloud, values, pushed), stackcrate_wheels=str(wheels),
                     stackcrate_repo=str(repository(d)),
                     stackcrate_wheels_key=(wheels / "KEY").read_text().strip(),
                     stackcrate_artifacts_index=str(d.artifacts_dir / "artifacts.json"))
    return extra


# ------------------------------------------------------------------------------------------------ the verbs

# verb -> (playbook, whether the hosts are prepared first, the hosts it runs on for each.yml, exit codes that are
# answers rather than failures)
VERBS = {
    "run": ("site.yml", True, None, (0,)),
    "init": ("site.yml", True, None, (0,)),
    "start": ("start.yml", False, None, (0,)),
    "stop": ("stop.yml", False, None, (0,)),
    "rm": ("stop.yml", False, None, (0,)),
    "status": ("each.yml", False, "control:compute", (0, 1, 3)),
    "logs": ("each.yml", False, "control:compute", (0,)),
    "verify": ("each.yml", False, "control", (0,)),
    "openstack": ("each.yml", False, "control", (0,)),
}


def close_connections(d: Deployment) -> list[str]:
    """End the SSH connections Ansible keeps open to the hosts (ControlPersist masters, one per host, in
    state/ansible/cp): `rm --purge` leaves no process behind. The sockets closed."""
    closed = []
    for sock in sorted((d.state / "ansible" / "cp").glob("*")):
        r = tools.run([tools.which("ssh", "openssh-client"), "-o", f"ControlPath={sock}", "-O", "exit", "host"],
                      check=False, timeout=15)
        if r.returncode == 0:
            closed.append(sock.name)
    return closed


def _verb_vars(ok: tuple[int, ...], target: str | None) -> dict:
    """The exit codes that are answers, and the hosts each.yml runs on."""
    return {"stackcrate_ok": list(ok), **({"stackcrate_target": target} if target else {})}


def run_verb(d: Deployment, inventory: Path, cache: Cache, args: list[str], progress,
             limit: str | None = None) -> tuple[Cloud, dict[str, str]]:
    """`stackcrate deploy -i INVENTORY <args>` on every host it concerns; each host's answer."""
    verb = args[0]
    book, prepare, target, ok = VERBS[verb]
    cloud = read_inventory(d, inventory)
    roles = ", ".join(f"{h.name} ({'+'.join(h.roles)}{', podman' if h.backend == 'podman' else ''})"
                      for h in cloud.hosts)
    what = f"{verb} on {roles}{f' (limit: {limit})' if limit else ''}"
    if not prepare:
        extra = common_vars(d, cloud, cache, args, with_hosts=False)
        answers = playbook(d, cloud, book, {**extra, **_verb_vars(ok, target)}, progress, what, limit=limit)
    else:  # the hosts fetch the services' packages and images from here, over HTTP, while the playbook runs
        with contextlib.ExitStack() as serving:
            address = repo_address(cloud)
            pushed: dict[str, registry.Pushed] = {}
            if cloud.runs("podman"):
                where = serving.enter_context(registry.served(d, address, cloud.repo_netns))
                progress(f"registry {registry.folder(d)} served at http://{where}")
                pushed = {p.component: p for p in
                          registry.push(d, image_sources(d, cloud), where, cloud.repo_netns, progress)}
            extra = common_vars(d, cloud, cache, args, with_hosts=True, pushed=pushed)
            url = serving.enter_context(tools.serve_folder(Path(extra["stackcrate_repo"]), address, cloud.repo_netns))
            progress(f"apt repository {extra['stackcrate_repo']} served at {url}")
            answers = playbook(d, cloud, book, {**extra, **_verb_vars(ok, target), "stackcrate_repo_url": url},
                               progress, what, limit=limit)
    if verb == "rm" and "--purge" in args:
        close_connections(d)
        shutil.rmtree(d.state / "ansible", ignore_errors=True)
        (d.state / "secrets.yaml").unlink(missing_ok=True)  # the cloud's secrets go with its data
    return cloud, answers
