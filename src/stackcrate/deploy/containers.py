"""Container backend (podman, or docker by the same commands): every process of the deployment in a container
of an image the build made, managed like the local backend's supervisord (same interface, see supervisor.py).

- Images: each component's and backing service's image, from the artifacts folder's OCI layout, is copied into
  the engine's store by skopeo as `localhost/stackcrate/<name>:<version>`: nothing is pulled from a registry.
- Processes: the same definitions as the local backend (processes.py). The program is the entrypoint, the
  arguments and environment are passed unchanged, what the process reads is mounted read-only and what it writes
  read-write at the same paths, so the generated configs work as they are. Host networking (as Kolla does; a
  process with a network namespace of its own, ovs-vswitchd, in that one, with the devices it opens); a
  restart policy (`always`: a process that dies is started again by the engine; `stop` stays stopped); the log
  of each container is the file log/<name>.log of the state folder (rotated by the engine). Secrets stay in the
  mounted 0600 files: none is on a command line, in an environment or in `inspect`.
- Management commands (migrations, the database client, rabbitmqctl, the `openstack` client) run as one-shot
  containers of the same images (`run --rm`).
- Engine settings (runtime, rlimits, more arguments) come from configuration.yaml's `engine:`, with defaults
  from the host: the runc runtime where the host's cgroup layout is hybrid (crun refuses it), rlimits no higher
  than the host's hard limits (podman's own defaults exceed them and then nothing starts).
"""

from __future__ import annotations

import hashlib
import json
import resource
import shlex
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..package.oci import LaidOut, laid_out, tag
from .config import Deployment
from .install import artifacts
from .processes import Call, ProcessDef, make_written_folders
from .supervisor import State

ENGINE_STORE = {"podman": "containers-storage", "docker": "docker-daemon"}  # where `skopeo copy` puts an image
DEFAULT_ULIMITS = {"nofile": 20000, "nproc": 32768}  # what the services need, within what these hosts allow
LIMITS = {"nofile": resource.RLIMIT_NOFILE, "nproc": resource.RLIMIT_NPROC}
RUN_TIMEOUT = 120.0


# images_from: engine (a host of `deploy -i`): the images are in the engine's store already, pulled by digest from
# the deploy host's registry; this file beside artifacts.json says which, by name and image ID.
HELD_IMAGES = "images.json"


@dataclass(frozen=True)
class Image:
    component: str
    laid_out: LaidOut | None  # the image in the artifacts folder's OCI layout; None: the engine's store holds it
    name: str                 # what the engine calls it once copied in
    held_id: str = ""         # images_from engine: the image ID (hex) the deploy host's build gave it

    @property
    def image_id(self) -> str:
        return self.laid_out.image_id if self.laid_out else self.held_id


def images(d: Deployment) -> dict[str, Image]:
    """component -> its image, for every component the deployment runs in a container."""
    found = artifacts(d, "oci")
    named = {c: f"localhost/stackcrate/{c}:{tag(a.version)}" for c, a in found.items()}
    if d.config.images_from == "engine":
        return held_images(d, named)
    return {c: Image(c, laid_out((d.artifacts_dir / a.file).resolve()), named[c]) for c, a in found.items()}


def held_images(d: Deployment, named: dict[str, str]) -> dict[str, Image]:
    """The images `deploy -i` put into the engine's store (images.json), checked against artifacts.json."""
    path = d.artifacts_dir / HELD_IMAGES
    hint = "run `stackcrate deploy -i INVENTORY run` (or init) on the deploy host: it writes it with the images"
    try:
        listed = json.loads(path.read_text())
        held = {c: Image(c, None, listed[c]["name"], listed[c]["id"]) for c in named if c in listed}
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise StackcrateError(f"{path} cannot be read ({exc}), so the images to run are unknown", hint=hint) from None
    wrong = [c for c in named if c not in held or held[c].name != named[c]]
    if wrong:
        raise StackcrateError(f"{path} does not list the images artifacts.json names for: {', '.join(wrong)}",
                              hint=hint)
    return held


def hybrid_cgroups() -> bool:
    """cgroup v1 controllers beside a v2 hierarchy (crun refuses to run containers there; runc does not)."""
    return Path("/sys/fs/cgroup/unified").is_dir() or not Path("/sys/fs/cgroup/cgroup.controllers").exists()


def ulimits(d: Deployment) -> dict[str, int]:
    """rlimits for every container: the configured ones, else the defaults, never above the host's hard limits."""
    out = {}
    for name, want in {**DEFAULT_ULIMITS, **d.config.engine.ulimits}.items():
        hard = resource.getrlimit(LIMITS[name])[1] if name in LIMITS else resource.RLIM_INFINITY
        out[name] = want if hard == resource.RLIM_INFINITY else min(want, hard)
    return out


def oci_runtime(d: Deployment) -> str | None:
    """The OCI runtime podman runs containers with here: the configured one, else runc where the cgroup layout is
    hybrid (crun refuses it), else podman's own choice (None)."""
    if d.config.engine.runtime:
        return d.config.engine.runtime
    if hybrid_cgroups():
        return shutil.which("runc") or shutil.which("runc", path="/usr/sbin:/sbin") or "/usr/sbin/runc"
    return None


def runtime(d: Deployment) -> str | None:
    """The backend engine's runtime option (docker keeps its daemon's)."""
    return d.config.engine.runtime if d.backend != "podman" else oci_runtime(d)


def global_args(d: Deployment) -> list[str]:
    rt = runtime(d)
    return ["--runtime", rt] if rt and d.backend == "podman" else []


def network(d: Deployment, netns: str | None) -> list[str]:
    """Host networking (as Kolla does); a process with a network namespace of its own joins it (podman: by its
    path; docker can join only another container's, so there it stays on the host's)."""
    if netns and d.backend == "podman":
        return ["--network", f"ns:/run/netns/{netns}"]
    return ["--network", "host"]


def run_args(d: Deployment, netns: str | None = None) -> list[str]:
    """What every `<engine> run` gets besides the process's own definition."""
    out = network(d, netns)
    for name, value in ulimits(d).items():
        out += ["--ulimit", f"{name}={value}:{value}"]
    if d.backend == "podman":
        out += ["--umask", "0027"]  # files the services write are not world-readable (docker has no such option)
    # a small init as PID 1: signals reach the process (a PID 1 without a handler ignores SIGTERM), zombies reaped
    return [*out, "--init", *d.config.engine.args]


def container_name(d: Deployment, name: str) -> str:
    return f"stackcrate-{d.id}-{name}"


def mounts(p: ProcessDef | Call) -> list[str]:
    """Every folder (or file) it reads, read-only, and writes, read-write, at the same path; a folder before what
    lies inside it (a later mount of the parent would hide the child's)."""
    wanted = [(path, "ro") for path in p.reads] + [(path, "rw") for path in p.writes]
    out = []
    for path, mode in sorted(wanted, key=lambda pm: (Path(pm[0]).parts, pm[1])):
        out += ["--volume", f"{path}:{path}:{mode}"]
    return out


def env_args(env: dict[str, str]) -> list[str]:
    return [a for k, v in sorted(env.items()) for a in ("--env", f"{k}={v}")]


def run_command(d: Deployment, p: ProcessDef, image: str, digest: str = "") -> list[str]:
    """`run ...` (after `<engine> <global options>`) of one process definition from its image, detached, with its
    restart policy and log file."""
    log = d.state / "log" / f"{p.name}.log"
    cmd = ["run", "--detach", "--name", container_name(d, p.name), *run_args(d, p.netns),
           *(a for dev in p.devices for a in ("--device", dev)),
           *(a for cap in p.capabilities for a in ("--cap-add", cap)),
           "--restart", "always", "--label", f"stackcrate.state={d.state}", "--label", f"stackcrate.process={p.name}",
           "--label", f"stackcrate.spec={digest}", "--stop-timeout", str(int(d.config.stop_timeout)),
           "--entrypoint", p.program, *mounts(p), *env_args(p.env)]
    if d.backend == "podman":
        cmd += ["--log-driver", "k8s-file", "--log-opt", f"path={log}", "--log-opt", "max-size=20mb"]
    return [*cmd, image, *p.args]


# A one-shot container's environment arrives on its standard input, one NAME=value per line, ahead of the
# command's own input: a secret (keystone's bootstrap password) is then on no command line and in no `inspect`.
ENV_FROM_STDIN = 'n=$1; shift; while [ "$n" -gt 0 ]; do IFS= read -r kv; export "$kv"; n=$((n-1)); done; exec "$@"'


def call_command(d: Deployment, call: Call, image: str) -> list[str]:
    """`run ...` of a one-shot container running a management command (standard input passed through, see
    call_input for its environment)."""
    if not call.env:
        return ["run", "--rm", "--interactive", *run_args(d), "--entrypoint", call.program, *mounts(call), image,
                *call.args]
    return ["run", "--rm", "--interactive", *run_args(d), "--entrypoint", "/bin/sh", *mounts(call), image,
            "-c", ENV_FROM_STDIN, "sh", str(len(call.env)), call.program, *call.args]


def call_input(call: Call) -> str | None:
    """What a one-shot container reads on its standard input: its environment, then the command's own input."""
    if not call.env:
        return call.input
    for k, v in call.env.items():
        if "\n" in v or "\n" in k:
            raise StackcrateError(f"the value of {k} for `{call.program}` holds a line break",
                                  hint="use a value without line breaks (e.g. a password in configuration.yaml)")
    return "".join(f"{k}={v}\n" for k, v in sorted(call.env.items())) + (call.input or "")


def load_commands(d: Deployment) -> list[list[str]]:
    return [["skopeo", "copy", i.laid_out.source, f"{ENGINE_STORE[d.backend]}:{i.name}"]
            for i in images(d).values() if i.laid_out]


def dry_run(d: Deployment, procs: list[ProcessDef]) -> list[str]:
    """The commands that load the images and start every process (nothing is run)."""
    imgs = images(d)
    engine = [d.backend, *global_args(d)]
    cmds = load_commands(d) + [[*engine, *run_command(d, p, imgs[p.component].name)]  # type: ignore[index]
                               for p in procs]
    return [shlex.join(c) for c in cmds]


def _state_of(info: dict) -> str:
    status = str(info.get("State") or info.get("state") or "").lower()
    if status == "exited" and info.get("ExitCode") not in (0, 137, 143):
        return "EXITED"  # it failed, and the engine did not (or could not) start it again
    # a container of ours stays exited only once stopped: the restart policy starts one that dies again
    return {"running": "RUNNING", "created": "STOPPED", "exited": "STOPPED", "stopped": "STOPPED",
            "stopping": "STOPPING", "restarting": "BACKOFF", "paused": "STOPPED", "configured": "STOPPED",
            "initialized": "STOPPED"}.get(status, "UNKNOWN")


class Containers:
    """The engine as the lifecycle's process manager (the same interface as supervisor.Supervisor)."""

    def __init__(self, d: Deployment):
        self.d = d
        self.engine = d.backend
        self._specs: dict[str, tuple[ProcessDef, str]] = {}
        self._started: dict[str, object] = {}  # when each container we started began (a restart changes it)

    def _cli(self, *args: str, check: bool = True, timeout: float = RUN_TIMEOUT,
             input: str | None = None) -> tools.CompletedProcess:
        return tools.run([tools.which(self.engine), *global_args(self.d), *args], check=check, timeout=timeout,
                         input=input)

    # ---------------------------------------------------------------- the engine itself

    def preflight(self) -> list[str]:
        """The engine can start a container on this host (else: why, and what to set), before anything changes.
        Returns the images it copied into the engine's store."""
        tools.which(self.engine)
        tools.which("skopeo")
        imgs = images(self.d)
        copied = self.load(imgs)
        probe = next(iter(imgs.values()))
        res = self._cli("run", "--rm", *run_args(self.d), "--entrypoint", "/bin/true", probe.name, check=False)
        if res.returncode != 0:
            said = "\n".join((res.stderr or res.stdout).strip().splitlines()[-6:])
            raise StackcrateError(
                f"{self.engine} cannot start a container on this host (runtime {runtime(self.d) or 'default'}, "
                f"rlimits {ulimits(self.d)}):\n{said}",
                hint="set configuration.yaml's `engine:` (runtime: /usr/sbin/runc where the cgroup layout is hybrid; "
                     "ulimits no higher than `ulimit -Hn` / `ulimit -Hu`; args: more `run` arguments), install "
                     "catatonit (podman's --init), or use the local backend; nothing was changed")
        return copied

    def load(self, imgs: dict[str, Image] | None = None) -> list[str]:
        """Copy into the engine's store every image it does not hold yet, or holds under that name from another
        build (same version, other bits: a rebuild with other system packages); returns the ones copied."""
        copied = []
        for i in (imgs or images(self.d)).values():
            held = self._cli("image", "inspect", "--format", "{{.Id}}", i.name, check=False)
            holds = held.stdout.strip().removeprefix("sha256:") if held.returncode == 0 else ""
            if holds == i.image_id:
                continue
            if i.laid_out is None:
                raise StackcrateError(
                    f"{self.engine}'s store does not hold {i.name} as the deploy host built it (image ID "
                    f"{i.image_id[:12]}; {f'it holds {holds[:12]}' if holds else 'it has no such image'})",
                    hint="run `stackcrate deploy -i INVENTORY run` (or init) on the deploy host: it pulls the images "
                         "from its registry")
            tools.run([tools.which("skopeo"), "copy", "--quiet", i.laid_out.source,
                       f"{ENGINE_STORE[self.engine]}:{i.name}"], timeout=1800)
            copied.append(i.name)
        return copied

    def running(self) -> bool:
        return True  # no daemon of ours: the engine answers for itself

    # ---------------------------------------------------------------- processes

    def ensure(self, procs: list[ProcessDef]) -> None:
        """Remember every process's definition; a stopped container made from another definition is removed (the
        next start makes it anew)."""
        self.load()
        current = self._containers()
        for p in procs:
            spec = _digest(run_command(self.d, p, "", ""))
            self._specs[p.name] = (p, spec)
            info = current.get(p.name)
            if info and info["labels"].get("stackcrate.spec") != spec and _state_of(info) != "RUNNING":
                self._cli("rm", "--force", container_name(self.d, p.name))

    def _containers(self) -> dict[str, dict]:
        res = self._cli("ps", "--all", "--format", "json", "--filter", f"label=stackcrate.state={self.d.state}",
                        check=False, timeout=60)
        if res.returncode != 0:
            return {}
        try:
            listed = json.loads(res.stdout or "[]")
        except ValueError:
            return {}
        out = {}
        for info in listed:
            labels = info.get("Labels") or {}
            if labels.get("stackcrate.process"):
                out[labels["stackcrate.process"]] = {**info, "labels": labels}
        return out

    def states(self) -> dict[str, State]:
        listed = self._containers()
        restarts = self._restart_counts([n for n, i in listed.items() if _state_of(i) == "RUNNING"])
        out = {}
        for name, info in listed.items():
            state = _state_of(info)
            if state == "RUNNING" and name in self._started and info.get("StartedAt") != self._started[name]:
                state = "BACKOFF"  # died since we started it (the engine started it again)
            pid = int(info.get("Pid") or 0) or None
            out[name] = State(state, pid if state in ("RUNNING", "BACKOFF") else None,
                              str(info.get("Status") or ""), info.get("ExitCode"), restarts.get(name, 0))
        return out

    def _restart_counts(self, names: list[str]) -> dict[str, int]:
        """How often the engine restarted each running container (its restart policy; `ps` does not say)."""
        if not names:
            return {}
        res = self._cli("inspect", "--format", "{{.RestartCount}}",
                        *(container_name(self.d, n) for n in names), check=False, timeout=60)
        counts = res.stdout.split()
        if res.returncode != 0 or len(counts) != len(names):
            return {}
        return {n: int(c) for n, c in zip(names, counts, strict=True) if c.isdigit()}

    def start(self, name: str) -> None:
        p, spec = self._specs[name]
        cname = container_name(self.d, name)
        info = self._containers().get(name)
        if info and info["labels"].get("stackcrate.spec") == spec:
            self._cli("start", cname)
        else:
            if info:
                self._cli("rm", "--force", cname)
            image = images(self.d)[p.component].name  # type: ignore[index]
            self._cli(*run_command(self.d, p, image, spec))
        self._started[name] = (self._containers().get(name) or {}).get("StartedAt")

    def stop(self, name: str) -> None:
        self._cli("stop", "--time", str(int(self.d.config.stop_timeout)), container_name(self.d, name),
                  timeout=self.d.config.stop_timeout + 60)

    def shutdown(self) -> None:
        pass  # the engine stays; the containers are stopped

    def stop_orphans(self, timeout: float = 10) -> list[str]:
        return []  # a container is never an orphan: the engine knows them all

    def remove(self, purge: bool) -> dict:
        """Remove the deployment's containers (their data stays in the state folder); with purge, the images it
        loaded too, unless another deployment's container uses them."""
        names = sorted(self._containers())
        for name in names:
            self._cli("rm", "--force", container_name(self.d, name), check=False)
        removed = []
        if purge:
            in_use = self._cli("ps", "--all", "--format", "{{.Image}}", check=False).stdout.split()
            for i in images(self.d).values():
                if i.name not in in_use and self._cli("rmi", i.name, check=False).returncode == 0:
                    removed.append(i.name)
        return {"containers": names, "images_removed": removed}

    def run(self, call: Call, timeout: float = 600, check: bool = True) -> tools.CompletedProcess:
        """A management command in a one-shot container of its component's image."""
        make_written_folders(call)  # an engine refuses a missing mount source
        return self._cli(*call_command(self.d, call, images(self.d)[call.component].name), input=call_input(call),
                         timeout=timeout, check=check)

    def log_file(self, name: str) -> Path:
        return self.d.state / "log" / f"{name}.log"

    def logs(self, name: str, lines: int) -> str:
        """The last lines a process's container wrote, as the engine tells them (empty: no such container)."""
        res = self._cli("logs", "--tail", str(lines), container_name(self.d, name), check=False, timeout=60)
        return (res.stdout + res.stderr).rstrip("\n") if res.returncode == 0 else ""


def _digest(cmd: list[str]) -> str:
    return hashlib.sha256("\0".join(cmd).encode()).hexdigest()[:16]
