"""Container backend (podman or docker): the same processes, from the OCI images the build made.

Each service's image is the `<name>-<version>.oci.tar` archive listed in artifacts.json; the first commands copy
it into the engine's store (with skopeo, under a fixed name, `localhost/stackcrate/<name>:<version>`), so what
runs is exactly what was built and nothing is pulled from a registry. Containers use the host network (every
process listens on the configured loopback address and port, as on the local backend) and bind-mount the state
folder at the same path, so the generated configs work unchanged. Secrets stay in the mounted 0600 files; none
is put on a command line.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..package.oci import archive_ref_name
from .config import Deployment
from .lifecycle import artifacts

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
    wanted = {s.component for s in d.services.enabled().values()}
    out = {}
    for c, a in artifacts(d, "oci").items():
        if c in wanted:
            archive = (d.artifacts_dir / a["file"]).resolve()
            out[c] = Image(archive=archive, ref_name=archive_ref_name(archive),
                           name=f"localhost/stackcrate/{c}:{a['version']}", install_path=a["install_path"])
    return out


def load_commands(imgs: dict[str, Image], engine: str) -> list[list[str]]:
    return [["skopeo", "copy", f"oci-archive:{i.archive}:{i.ref_name}", f"{ENGINE_STORE[engine]}:{i.name}"]
            for i in imgs.values()]


def commands(d: Deployment, engine: str) -> list[list[str]]:
    s, b, ip = d.state, d.services.backing, d.listen
    imgs = images(d)

    def run(name: str, image: str, volumes: list[tuple[str, str, str]], argv: list[str],
            env: dict[str, str] | None = None, program: str | None = None) -> list[str]:
        cmd = [engine, "run", "--detach", "--name", f"stackcrate-{name}", "--network", "host",
               "--label", f"stackcrate.state={s}"]
        if program:  # our images' entrypoint is the component's main command; run another program of the venv
            cmd += ["--entrypoint", program]
        for host, inside, mode in volumes:
            cmd += ["--volume", f"{host}:{inside}:{mode}"]
        for k, v in (env or {}).items():
            cmd += ["--env", f"{k}={v}"]
        return cmd + [image, *argv]

    out = load_commands(imgs, engine) + [
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
    for name, svc in d.services.enabled().items():
        vols = [(f"{s}/etc/{name}", f"{s}/etc/{name}", "ro"), (f"{s}/data/{name}", f"{s}/data/{name}", "rw"),
                (f"{s}/run/wsgi", f"{s}/run/wsgi", "ro")]
        image = imgs[svc.component]
        venv = image.install_path
        gunicorn = ["--pythonpath", f"{s}/run/wsgi", "--bind", f"{ip}:{svc.backend_port}",
                    "--workers", str(svc.workers), f"sc_wsgi_{name}:application"]
        env = {"keystone": {"OS_KEYSTONE_CONFIG_DIR": f"{s}/etc/keystone"},
               "glance": {"OS_GLANCE_CONFIG_DIR": f"{s}/etc/glance"},
               "placement": {"OS_PLACEMENT_CONFIG_DIR": f"{s}/etc/placement"},
               "nova": {"OS_NOVA_CONFIG_DIR": f"{s}/etc/nova", "OS_NOVA_CONFIG_FILES": "nova.conf"},
               "neutron": {"OS_NEUTRON_CONFIG_DIR": f"{s}/etc/neutron", "OS_NEUTRON_CONFIG_FILES": "neutron.conf"}}
        out.append(run(name if name != "nova" else "nova-api", image.name, vols, gunicorn, env[name],
                       program=f"{venv}/bin/gunicorn"))
        if name == "nova":
            for p in svc.processes:
                if p != "api":
                    out.append(run(f"nova-{p}", image.name, vols, ["--config-file", f"{s}/etc/nova/nova.conf"],
                                   program=f"{venv}/bin/nova-{p}"))
    return out


def up(d: Deployment, engine: str, dry_run: bool) -> list[str]:
    cmds = commands(d, engine)
    lines = [shlex.join(c) for c in cmds]
    if dry_run:
        return lines
    tools.which(engine)
    raise StackcrateError(f"the {engine} backend runs only with --dry-run in this version",
                          hint="use the local backend (the default), or pass --dry-run to see the commands")
