"""Container backend (podman or docker): the same processes, from the built OCI images `<name>:<version>`.

Containers use the host network (every process listens on the configured loopback address and port, as on the
local backend) and bind-mount the state folder at the same path, so the generated configs work unchanged.
Secrets stay in the mounted 0600 files; none is put on a command line.
"""

from __future__ import annotations

import shlex

from .. import tools
from ..errors import StackcrateError
from .config import Deployment
from .lifecycle import artifacts

BACKING_IMAGES = {"mariadb": "docker.io/library/mariadb:10.11", "rabbitmq": "docker.io/library/rabbitmq:3.10",
                  "memcached": "docker.io/library/memcached:1.6", "haproxy": "docker.io/library/haproxy:2.6"}


def image_refs(d: Deployment) -> dict[str, str]:
    """component -> image reference of the OCI image built from the same venv."""
    return {c: f"{c}:{a['version']}" for c, a in artifacts(d).items()}


def commands(d: Deployment, engine: str) -> list[list[str]]:
    s, b, ip = d.state, d.services.backing, d.listen
    refs = image_refs(d)

    def run(name: str, image: str, volumes: list[tuple[str, str, str]], argv: list[str],
            env: dict[str, str] | None = None) -> list[str]:
        cmd = [engine, "run", "--detach", "--name", f"stackcrate-{name}", "--network", "host",
               "--label", f"stackcrate.state={s}"]
        for host, inside, mode in volumes:
            cmd += ["--volume", f"{host}:{inside}:{mode}"]
        for k, v in (env or {}).items():
            cmd += ["--env", f"{k}={v}"]
        return cmd + [image, *argv]

    out = [
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
        venv = artifacts(d)[svc.component]["install_path"]
        gunicorn = [f"{venv}/bin/gunicorn", "--pythonpath", f"{s}/run/wsgi", "--bind", f"{ip}:{svc.backend_port}",
                    "--workers", str(svc.workers), f"sc_wsgi_{name}:application"]
        env = {"keystone": {"OS_KEYSTONE_CONFIG_DIR": f"{s}/etc/keystone"},
               "glance": {"OS_GLANCE_CONFIG_DIR": f"{s}/etc/glance"},
               "placement": {"OS_PLACEMENT_CONFIG_DIR": f"{s}/etc/placement"},
               "nova": {"OS_NOVA_CONFIG_DIR": f"{s}/etc/nova", "OS_NOVA_CONFIG_FILES": "nova.conf"},
               "neutron": {"OS_NEUTRON_CONFIG_DIR": f"{s}/etc/neutron", "OS_NEUTRON_CONFIG_FILES": "neutron.conf"}}
        out.append(run(name if name != "nova" else "nova-api", refs[svc.component], vols, gunicorn, env[name]))
        if name == "nova":
            for p in svc.processes:
                if p != "api":
                    out.append(run(f"nova-{p}", refs[svc.component], vols,
                                   [f"{venv}/bin/nova-{p}", "--config-file", f"{s}/etc/nova/nova.conf"]))
    return out


def up(d: Deployment, engine: str, dry_run: bool) -> list[str]:
    cmds = commands(d, engine)
    lines = [shlex.join(c) for c in cmds]
    if dry_run:
        return lines
    tools.which(engine)
    raise StackcrateError(f"the {engine} backend runs only with --dry-run in this version",
                          hint="use the local backend (the default), or pass --dry-run to see the commands")
