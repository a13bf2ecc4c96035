"""compute_driver: podman — nova's instances as podman containers.

The driver is nova.virt.stackcrate_podman (drivers/nova-podman in this repository), a library of the deploy manifest
built into nova's venv. It reaches podman through podman's API socket:
- local backend: the deployment runs podman's API service itself, the backing process `podman-api`
  (`podman system service`, socket in state/run/podman), stopped and started with the rest;
- container backends: nova-compute's container mounts the host's API socket (as Kolla mounts docker's), by default
  /run/podman/podman.sock, which systemd's podman.socket provides (`podman_api_socket` in configuration.yaml
  names another); the host runs that service.
Either way the instances' containers live in the host's podman store: `podman ps` lists them.
"""

from __future__ import annotations

from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from .config import Deployment
from .processes import Health, ProcessDef

NAME = "podman-api"
DRIVER = "stackcrate_podman.driver.PodmanDriver"  # nova loads drivers from nova.virt only
LIBRARY = "stackcrate-nova-podman"     # the driver's distribution (a library of the deploy manifest)
HOST_SOCKET = "/run/podman/podman.sock"  # where Debian's podman.socket listens
LABEL_OWNER = "org.openstack.nova.owner"  # the driver's label naming the nova-compute a container belongs to


def enabled(d: Deployment) -> bool:
    """nova-compute runs here with the podman driver."""
    nova = d.services.enabled().get("nova")
    return d.config.compute_driver == "podman" and nova is not None and "compute" in nova.processes  # type: ignore


def runs_own_api(d: Deployment) -> bool:
    """The deployment runs podman's API itself: on the local backend, unless configured to use another."""
    return d.backend == "local" and not d.config.podman_api_socket


def socket(d: Deployment) -> Path:
    if runs_own_api(d):
        return d.state / "run" / "podman" / "podman.sock"
    return Path(d.config.podman_api_socket or HOST_SOCKET)


def names(d: Deployment) -> tuple[str, ...]:
    """The backing process the deployment runs for it: its own API service."""
    return (NAME,) if enabled(d) and runs_own_api(d) else ()


def processes(d: Deployment) -> list[ProcessDef]:
    if not names(d):
        return []
    sock = socket(d)
    try:
        podman = tools.which("podman", "podman")
    except StackcrateError:
        podman = "/usr/bin/podman"  # a definition for `status` before podman is installed; preflight says so
    # --runtime: the OCI runtime of every container it creates (podman's Docker-compatible API ignores a
    # container's own HostConfig.Runtime); --time=0: serve until stopped (by default it ends after 5 s idle)
    from .containers import oci_runtime

    runtime = oci_runtime(d)
    args = (*(("--runtime", runtime) if runtime else ()), "system", "service", "--time=0", f"unix://{sock}")
    return [ProcessDef(NAME, "backing", podman, args,
                       health=Health("podman", url=str(sock)), writes=(str(sock.parent),), start_timeout=60)]


def check(d: Deployment) -> None:
    """Before anything starts: podman is installed (local backend) or the host's API socket answers."""
    if not enabled(d):
        return
    if names(d):
        tools.which("podman", "podman")
        return
    from .containers import oci_runtime
    from .health import podman_ping

    # the API ignores a container's own runtime: where crun cannot run containers, the service's default must be runc
    runtime = f" --runtime {rt}" if (rt := oci_runtime(d)) else ""
    try:
        podman_ping(str(socket(d)))
    except OSError as exc:
        raise StackcrateError(
            f"compute_driver podman: podman's API does not answer at {socket(d)} ({exc})",
            hint="start the host's podman API (`systemctl enable --now podman.socket`, or as root "
                 f"`podman{runtime} system service --time=0 unix://{socket(d)} &`), or name its socket with "
                 "podman_api_socket in configuration.yaml") from None


def owner(d: Deployment) -> str:
    """The label value marking the deployment's instance containers (deployments on one host share podman)."""
    return f"stackcrate-{d.id}"


def image_repository(d: Deployment) -> str:
    """Where the driver tags the Glance images it loads into podman: one repository per deployment."""
    return f"localhost/nova-glance/{owner(d)}"


def remove_instances(d: Deployment) -> dict[str, list[str]]:
    """Remove the deployment's instance containers and the images its driver loaded (`rm --purge`: its instances
    go with its databases)."""
    if not enabled(d):
        return {"containers": [], "images": []}
    podman = tools.which("podman", "podman")
    found = tools.run([podman, "ps", "--all", "--quiet", "--filter", f"label={LABEL_OWNER}={owner(d)}"],
                      timeout=120).stdout.split()
    if found:
        tools.run([podman, "rm", "--force", "--time", "0", *found], timeout=300)
    listed = tools.run([podman, "images", "--format", "{{.Repository}}:{{.Tag}}"], timeout=120).stdout.split()
    images = [ref for ref in listed if ref.startswith(image_repository(d) + "/")]
    if images:
        tools.run([podman, "rmi", "--ignore", *images], timeout=300)
    return {"containers": found, "images": images}


def mounts(d: Deployment) -> tuple[str, ...]:
    """What nova-compute's container mounts read-write to reach podman: the socket's folder."""
    return (str(socket(d).parent),) if enabled(d) else ()


def nova_options(d: Deployment) -> dict[str, dict[str, object]]:
    """nova.conf's driver settings: the driver, podman's socket and the rlimits the instances' containers need on
    this host (those of stackcrate's own containers)."""
    from .containers import ulimits

    return {"DEFAULT": {"compute_driver": DRIVER},
            "podman": {"api_uri": f"unix://{socket(d)}", "owner": owner(d),
                       "image_repository": image_repository(d),
                       "ulimits": ",".join(f"{k}:{v}" for k, v in sorted(ulimits(d).items()))}}
