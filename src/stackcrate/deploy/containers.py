"""Container backend (podman or docker): the same processes as the local backend, from the OCI images the
build made.

Each service's image is the `<name>-<version>.oci.tar` archive listed in artifacts.json; the first commands copy
it into the engine's store (with skopeo, under a fixed name, `localhost/stackcrate/<name>:<version>`), so what
runs is exactly what was built and nothing is pulled from a registry. Every OpenStack process comes from the
same definition as on the local backend (processes.py): its program becomes the entrypoint, its arguments and
environment are passed unchanged, and the folders it reads and writes are mounted at the same paths (read-only
and read-write), so the generated configs work as they are. Containers use the host network. Secrets stay in
the mounted 0600 files; none is put on a command line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..package.oci import archive_ref_name
from .config import Deployment
from .install import artifacts
from .layout import Layout
from .processes import ProcessDef, openstack_processes

BACKING_IMAGES = {"mariadb": "docker.io/library/mariadb:10.11", "rabbitmq": "docker.io/library/rabbitmq:3.10",
                  "memcached": "docker.io/library/memcached:1.6", "haproxy": "docker.io/library/haproxy:2.6"}
# Where `skopeo copy` puts an image for each engine.
ENGINE_STORE = {"podman": "containers-storage", "docker": "docker-daemon"}


@dataclass(frozen=True)
class Image:
    archive: Path        # the oci-archive in the artifacts folder
    ref_name: str        # its org.opencontainers.image.ref.name
    name: str            # what the engine calls it once copied in
    install_path: str    # the venv inside the image


def images(d: Deployment) -> dict[str, Image]:
    """component -> the OCI image built for it, for every enabled service."""
    out = {}
    for c, a in artifacts(d, "oci").items():
        archive = (d.artifacts_dir / a.file).resolve()
        out[c] = Image(archive=archive, ref_name=archive_ref_name(archive),
                       name=f"localhost/stackcrate/{c}:{a.version}", install_path=a.install_path)
    return out


def load_commands(imgs: dict[str, Image], engine: str) -> list[list[str]]:
    return [["skopeo", "copy", f"oci-archive:{i.archive}:{i.ref_name}", f"{ENGINE_STORE[engine]}:{i.name}"]
            for i in imgs.values()]


def run_command(engine: str, p: ProcessDef, image: str, state: Path) -> list[str]:
    """`<engine> run` of one process definition from its service's image."""
    cmd = [engine, "run", "--detach", "--name", f"stackcrate-{p.name}", "--network", "host",
           "--label", f"stackcrate.state={state}", "--entrypoint", p.program]
    for path in p.reads:
        cmd += ["--volume", f"{path}:{path}:ro"]
    for path in p.writes:
        cmd += ["--volume", f"{path}:{path}:rw"]
    for k, v in sorted(p.env.items()):
        cmd += ["--env", f"{k}={v}"]
    return [*cmd, image, *p.args]


def backing_commands(d: Deployment, engine: str) -> list[list[str]]:
    s, b, ip = d.state, d.services.backing, d.listen

    def run(name: str, image: str, volumes: list[tuple[str, str, str]], argv: list[str],
            env: dict[str, str] | None = None) -> list[str]:
        cmd = [engine, "run", "--detach", "--name", f"stackcrate-{name}", "--network", "host",
               "--label", f"stackcrate.state={s}"]
        for host, inside, mode in volumes:
            cmd += ["--volume", f"{host}:{inside}:{mode}"]
        for k, v in (env or {}).items():
            cmd += ["--env", f"{k}={v}"]
        return cmd + [image, *argv]

    return [
        run("mariadb", BACKING_IMAGES["mariadb"], [(f"{s}/data/mariadb", "/var/lib/mysql", "rw")],
            ["mariadbd", f"--port={b.mariadb.port}", f"--bind-address={ip}"]),
        run("rabbitmq", BACKING_IMAGES["rabbitmq"],
            [(f"{s}/data/rabbitmq", "/var/lib/rabbitmq", "rw"),
             (f"{s}/etc/rabbitmq/rabbitmq.conf", "/etc/rabbitmq/rabbitmq.conf", "ro")], [],
            {"RABBITMQ_NODE_PORT": str(b.rabbitmq.port), "RABBITMQ_DIST_PORT": str(b.rabbitmq.dist_port),
             "ERL_EPMD_PORT": str(b.rabbitmq.epmd_port)}),
        run("memcached", BACKING_IMAGES["memcached"], [], ["-l", ip, "-p", str(b.memcached.port)]),
        run("haproxy", BACKING_IMAGES["haproxy"],
            [(f"{s}/etc/haproxy/haproxy.cfg", "/usr/local/etc/haproxy/haproxy.cfg", "ro")], []),
    ]


def container_layout(d: Deployment, imgs: dict[str, Image]) -> Layout:
    """The layout as seen inside the images: each venv at its install path there (nothing on the host)."""
    return Layout(d, {c: i.install_path for c, i in imgs.items()}, secrets={})


def commands(d: Deployment, engine: str) -> list[list[str]]:
    imgs = images(d)
    lay = container_layout(d, imgs)
    out = load_commands(imgs, engine) + backing_commands(d, engine)
    for p in openstack_processes(lay):
        out.append(run_command(engine, p, imgs[p.component].name, d.state))  # type: ignore[index]
    return out


def up(d: Deployment, engine: str, dry_run: bool) -> list[str]:
    cmds = commands(d, engine)
    lines = [shlex.join(c) for c in cmds]
    if dry_run:
        return lines
    tools.which(engine)
    raise StackcrateError(f"the {engine} backend runs only with --dry-run in this version",
                          hint="use the local backend (the default), or pass --dry-run to see the commands")
