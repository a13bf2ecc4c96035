"""The deploy host's OCI registry for the hosts of a cloud that run containers (`stackcrate_backend: podman`).

While `deploy -i ... run | init` runs, Debian's docker-registry serves the images of the build from the
deployment's state folder (state/ansible/registry: kept, so a second run pushes only what changed) over HTTP, at
the address the hosts reach the deploy host at. `skopeo copy` puts each image the hosts need there from the
artifacts' OCI layout, unchanged: its manifest digest is the one artifacts.json names, so a host pulls it by that
digest (skopeo checks every blob against it) and then checks the image ID (its config's digest) as well.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .. import tools
from ..errors import StackcrateError
from ..package.oci import LaidOut
from .config import Deployment

PROGRAM = "docker-registry"
READY_WAIT = 30.0  # seconds for the registry to answer /v2/
STOP_WAIT = 10.0


@dataclass(frozen=True)
class Pushed:
    component: str
    name: str        # what the host's engine calls it (localhost/stackcrate/<component>:<tag>)
    pull: str        # registry/stackcrate/<component>@sha256:... (pulled by digest)
    image_id: str    # the sha256 of its config (hex): the ID the engine gives it

    def to_json(self) -> dict:
        return {"component": self.component, "name": self.name, "pull": self.pull, "id": self.image_id}


def folder(d: Deployment) -> Path:
    return d.state / "ansible" / "registry"


def config(root: Path, address: str, port: int) -> dict:
    """docker-registry's configuration: the filesystem store in root, plain HTTP at address:port, no auth (it
    serves the hosts of the cloud while a playbook runs, on the deploy host's address for them)."""
    host = f"[{address}]" if ":" in address else address
    return {"version": 0.1, "log": {"level": "warn", "fields": {"service": "stackcrate-registry"}},
            "storage": {"filesystem": {"rootdirectory": str(root / "data")}, "delete": {"enabled": True}},
            "http": {"addr": f"{host}:{port}", "headers": {"X-Content-Type-Options": ["nosniff"]}}}


def _free_port(address: str, netns: str | None) -> int:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with tools.in_netns(netns), socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


def _wait_ready(url: str, netns: str | None, pid: int, log: Path) -> None:
    deadline = time.monotonic() + READY_WAIT
    while True:
        if not tools.alive(pid):
            raise StackcrateError(f"{PROGRAM} exited at once: {tools.log_end(log, 800)}", hint=f"its log is {log}")
        try:
            with tools.in_netns(netns):
                tools.http(f"{url}/v2/", timeout=5)
            return
        except StackcrateError:
            if time.monotonic() > deadline:
                raise StackcrateError(f"{PROGRAM} did not answer at {url}/v2/ within {READY_WAIT:.0f}s: "
                                      f"{tools.log_end(log, 800)}", hint=f"its log is {log}") from None
            time.sleep(0.2)


def _stop(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_WAIT
    while tools.alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


@contextlib.contextmanager
def served(d: Deployment, address: str, netns: str | None = None):
    """docker-registry at address (inside netns when given) on a free port while the block runs; yields
    host:port."""
    program = tools.which(PROGRAM, "docker-registry (apt-get install docker-registry)")
    root = folder(d)
    (root / "data").mkdir(parents=True, exist_ok=True)
    port = _free_port(address, netns)
    (root / "config.yml").write_text(yaml.safe_dump(config(root, address, port), sort_keys=False))
    log = d.state / "log" / "registry.log"
    with tools.in_netns(netns):  # the registry starts inside the lab's namespace (a child keeps its thread's)
        pid = tools.spawn([program, "serve", root / "config.yml"], log_file=log)
    try:
        where = f"{f'[{address}]' if ':' in address else address}:{port}"
        _wait_ready(f"http://{where}", netns, pid, log)
        yield where
    finally:
        _stop(pid)


def push(d: Deployment, images: dict[str, tuple[LaidOut, str]], where: str, netns: str | None = None,
         progress=print) -> list[Pushed]:
    """Each component's image (component -> (the image in the artifacts' OCI layout, the name the hosts' engine
    gives it)) into the registry at `where`; what the hosts pull. skopeo sends only the blobs the registry does not
    hold yet."""
    skopeo = tools.which("skopeo")
    out = []
    for component, (image, name) in sorted(images.items()):
        repo = f"{where}/stackcrate/{component}"
        t0 = time.monotonic()
        with tools.in_netns(netns):
            tools.run([skopeo, "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests", image.source,
                       f"docker://{repo}:{name.rsplit(':', 1)[1]}"], timeout=1800)
        out.append(Pushed(component, name, f"{repo}@{image.digest}", image.image_id))
        progress(f"  image {name} in the registry ({time.monotonic() - t0:.1f}s)")
    return out
