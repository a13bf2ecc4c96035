"""The two files describing a deployment (services.yaml, configuration.yaml), validated like the manifest."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .. import yamlfile
from ..cache import Cache

Port = int


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MariaDB(_Strict):
    port: Port = Field(23306, ge=1024, le=65535)


class RabbitMQ(_Strict):
    port: Port = Field(25672, ge=1024, le=65535, description="AMQP port")
    dist_port: Port = Field(25673, ge=1024, le=65535, description="Erlang distribution port")
    epmd_port: Port = Field(24369, ge=1024, le=65535, description="Erlang port mapper (own one, not 4369)")


class Memcached(_Strict):
    port: Port = Field(21211, ge=1024, le=65535)


class HAProxy(_Strict):
    pass


class OVN(_Strict):
    """OVN's databases (where neutron runs): neutron and the chassis reach them over TCP."""

    nb_port: Port = Field(26641, ge=1024, le=65535, description="Northbound database (neutron writes it)")
    sb_port: Port = Field(26642, ge=1024, le=65535, description="Southbound database (ovn-controller reads it)")


class Backing(_Strict):
    mariadb: MariaDB = Field(default_factory=MariaDB)
    rabbitmq: RabbitMQ = Field(default_factory=RabbitMQ)
    memcached: Memcached = Field(default_factory=Memcached)
    haproxy: HAProxy = Field(default_factory=HAProxy)
    ovn: OVN = Field(default_factory=OVN)


class Service(_Strict):
    component: str = Field(description="Component of the manifest (artifact) that provides this service")
    port: Port = Field(ge=1024, le=65535, description="Public API port, served by HAProxy")
    backend_port: Port = Field(ge=1024, le=65535, description="Port the API process itself listens on")
    workers: int = Field(1, ge=1, le=16, description="WSGI worker processes")


class Nova(Service):
    processes: list[Literal["api", "conductor", "scheduler", "compute"]] = Field(
        default_factory=lambda: ["api", "conductor", "scheduler", "compute"],
        description="nova's processes: api, conductor and scheduler, and compute unless compute hosts come later")

    @field_validator("processes")
    @classmethod
    def _a_working_nova(cls, v: list[str]) -> list[str]:
        if twice := sorted({p for p in v if v.count(p) > 1}):
            raise ValueError(f"{', '.join(twice)} listed twice")
        if missing := [p for p in ("api", "conductor", "scheduler") if p not in v]:
            raise ValueError(f"nova cannot build a server without {', '.join(missing)}: list "
                             f"api, conductor and scheduler (and compute, unless compute hosts come later)")
        return v


class Services(_Strict):
    keystone: Service
    glance: Optional[Service] = None
    placement: Optional[Service] = None
    neutron: Optional[Service] = None  # before nova: the order is the start order
    nova: Optional[Nova] = None
    horizon: Optional[Service] = None  # the dashboard (last: it calls every other service)

    @model_validator(mode="after")
    def _deps(self) -> "Services":
        if self.nova and not (self.placement and self.glance and self.neutron):
            raise ValueError("nova needs placement, glance and neutron in the same deployment")
        return self


class ServicesFile(_Strict):
    backing: Backing = Field(default_factory=Backing)
    services: Services
    client: str = Field("python-openstackclient", description="Component providing the `openstack` client")

    @model_validator(mode="after")
    def _ports_unique(self) -> "ServicesFile":
        seen: dict[int, str] = {}
        for name, port in self.ports().items():
            if port in seen:
                raise ValueError(f"port {port} is used twice ({seen[port]} and {name})")
            seen[port] = name
        return self

    def enabled(self) -> dict[str, Service]:
        return {n: getattr(self.services, n) for n in Services.model_fields if getattr(self.services, n)}

    def ports(self) -> dict[str, int]:
        b = self.backing
        out = {"mariadb": b.mariadb.port, "rabbitmq": b.rabbitmq.port, "rabbitmq dist": b.rabbitmq.dist_port,
               "epmd": b.rabbitmq.epmd_port, "memcached": b.memcached.port,
               "ovn northbound": b.ovn.nb_port, "ovn southbound": b.ovn.sb_port}
        for name, s in self.enabled().items():
            out[f"{name} (haproxy)"] = s.port
            out[name] = s.backend_port
        return out


class Engine(_Strict):
    """Settings of a container backend's engine (podman, docker)."""

    runtime: Optional[str] = Field(None, description="OCI runtime (path or name); default: runc where the host's "
                                   "cgroup layout is hybrid (crun refuses it), else the engine's own")
    ulimits: dict[Literal["nofile", "nproc"], int] = Field(
        default_factory=dict, description="rlimits of every container; default nofile 20000 and nproc 32768, never "
        "above the host's hard limits")
    args: list[str] = Field(default_factory=list, description="more arguments for every `<engine> run`")


DEFAULT_HOST = "stackcrate"  # nova's host name (and the OVN chassis') in a one-node cloud
RELEASE = "data/release.json"  # the artifacts a deployment runs once an upgrade or rollback switched it
HOST_NAME = r"^[A-Za-z0-9][A-Za-z0-9.-]*$"  # a host of the cloud: letters, digits, dots, dashes


def ip_address(v: str) -> str:
    """v, if it is an IP address (ValueError otherwise: pydantic turns it into a field error)."""
    try:
        ipaddress.ip_address(v)
    except ValueError:
        raise ValueError(f"{v!r} is not an IP address") from None
    return v


class Node(_Strict):
    """This host's part in a cloud of several hosts. `stackcrate deploy -i INVENTORY` writes it per host from the
    inventory's groups; a one-node cloud leaves it out (this host is control and compute at once)."""

    name: str = Field(DEFAULT_HOST, pattern=HOST_NAME,
                      description="This host's name in the cloud: nova's host, the OVN chassis' hostname")
    roles: list[Literal["control", "compute"]] = Field(
        default_factory=lambda: ["control", "compute"], min_length=1,
        description="control: databases, message queue, APIs, conductor, scheduler, OVN's databases; "
        "compute: nova-compute with Open vSwitch and ovn-controller")
    control_address: Optional[str] = Field(None, description="Where this host reaches the control plane "
                                           "(default: listen, i.e. this host is the control host)")
    compute_hosts: list[str] = Field(default_factory=list, description="The compute hosts (names) the control "
                                     "host maps into the cell and verify expects servers on (default: this host)")

    @field_validator("control_address")
    @classmethod
    def _ip(cls, v: Optional[str]) -> Optional[str]:
        return None if v is None else ip_address(v)


class Configuration(_Strict):
    region: str = Field("RegionOne", pattern=r"^[A-Za-z0-9_-]+$")
    listen: str = Field("127.0.0.1", description="Address every process listens on (loopback by default)")
    database: Literal["mariadb"] = Field("mariadb", description="Database backend (nova needs MariaDB)")
    state_dir: str = Field("state", description="Folder for data, config, logs (relative to this file)")
    artifacts: str = Field("dist", description="Folder with artifacts.json (relative to this file)")
    manifest: Optional[str] = Field(None, description="Manifest used by `deploy build` to build missing artifacts")
    backend: Literal["local", "podman", "docker"] = "local"
    venvs_from: Literal["archives", "debs"] = Field(
        "archives", description="local backend: where the services' venvs come from: archives (the .tar.zst "
        "artifacts, which stackcrate unpacks) or debs (the .deb artifacts, installed by dpkg; `deploy -i` has apt "
        "install them on every host); checked against artifacts.json either way")
    images_from: Literal["archives", "engine"] = Field(
        "archives", description="container backends: where the images come from: archives (the image artifacts "
        "in the artifacts folder's OCI layout, which stackcrate copies into the engine's store) or engine (already "
        "in the engine's store: `deploy -i` pulls them from the deploy host's registry); checked against the build "
        "either way")
    stop_timeout: float = Field(10, gt=0, le=600, description="Seconds to wait after SIGTERM before SIGKILL")
    engine: Engine = Field(default_factory=Engine, description="container backends only")
    ovs_datapath: Literal["auto", "netdev", "system"] = Field(
        "auto", description="Open vSwitch's datapath: netdev (userspace), system (the kernel module) or auto "
        "(system where the openvswitch module is loaded)")
    compute_driver: Literal["fake", "podman"] = Field(
        "fake", description="nova's compute driver: fake (servers exist in nova's database, their ports plugged "
        "into Open vSwitch; nothing runs) or podman (each server a podman container on this host: boot container "
        "images with --nic none; drivers/nova-podman)")
    podman_api_socket: Optional[str] = Field(
        None, description="compute_driver podman: podman's API socket nova-compute uses. Default: on the local "
        "backend one the deployment runs itself (state/run/podman); on a container backend the host's, "
        "/run/podman/podman.sock (systemd's podman.socket)")
    tls: bool = Field(False, description="HTTPS at HAProxy with a CA made for the deployment (the catalog then "
                      "lists https URLs; `init` applies a change)")
    node: Node = Field(default_factory=Node, description="This host's part in a cloud of several hosts")
    secrets: dict[str, str] = Field(default_factory=dict, description="Secrets to use instead of generated ones")
    overrides: dict[str, dict[str, dict[str, Any]]] = Field(
        default_factory=dict, description="service -> section -> option -> value, added to its config file")

    @field_validator("listen")
    @classmethod
    def _ip(cls, v: str) -> str:
        return ip_address(v)

    @field_validator("podman_api_socket")
    @classmethod
    def _absolute(cls, v: Optional[str]) -> Optional[str]:
        if v is not None and not v.startswith("/"):
            raise ValueError(f"{v!r} is not an absolute path")
        return v

    @field_validator("overrides")
    @classmethod
    def _known(cls, v: dict) -> dict:
        for name in v:
            if name not in Services.model_fields:
                raise ValueError(f"unknown service {name!r} (known: {', '.join(Services.model_fields)})")
        return v


def _load(path: Path, model: type[BaseModel], what: str) -> Any:
    return yamlfile.load(path, model, what, hint=f"fix the {what}; see examples/deploy/{path.name} for every field",
                         missing_hint=f"pass one with the option, or start from examples/deploy/{path.name}")


class Deployment:
    """Both files, loaded, plus the paths derived from them."""

    def __init__(self, services_path: str | Path, config_path: str | Path, state_dir: str | None = None,
                 artifacts: str | None = None, backend: str | None = None, cache: Cache | None = None):
        self.services_path = Path(services_path).resolve()
        self.config_path = Path(config_path).resolve()
        self.services: ServicesFile = _load(self.services_path, ServicesFile, "services file")
        self.config: Configuration = _load(self.config_path, Configuration, "configuration file")
        base = self.config_path.parent
        self.state = (Path(state_dir) if state_dir else base / self.config.state_dir).resolve()
        self.configured_artifacts = (base / self.config.artifacts).resolve()
        self.artifacts_dir = self._artifacts(Path(artifacts).resolve() if artifacts else None)
        self.manifest = (base / self.config.manifest).resolve() if self.config.manifest else None
        self.backend = self._backend(backend)
        self.cache = cache or Cache()  # the command line's --cache-dir (what is learnt about the venvs goes there)

    def _artifacts(self, given: Path | None) -> Path:
        """The artifacts the deployment runs: those `deploy upgrade` or `rollback` switched it to (recorded in its
        state folder, RELEASE) else the command line's else the configuration's. A command line naming other
        artifacts than the recorded ones is refused: the switch is the upgrade's to make."""
        import json

        from ..errors import StackcrateError

        path = self.state / RELEASE
        try:
            recorded = Path(json.loads(path.read_text())["artifacts"])
        except FileNotFoundError:
            return given or self.configured_artifacts
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # not the configured ones in its place: after an upgrade those are the old release's
            raise StackcrateError(f"{path}, the record of the artifacts the deployment runs since `stackcrate deploy "
                                  f"upgrade` or `rollback`, cannot be read ({type(exc).__name__}: {exc})",
                                  hint='write it again as {"artifacts": "/path/to/the/dist/folder"} of the release '
                                       "the deployment runs; remove it only if that is the configuration's "
                                       "artifacts") from None
        if given and given != recorded:
            raise StackcrateError(f"the deployment in {self.state} runs the artifacts in {recorded} (switched to by "
                                  f"`stackcrate deploy upgrade` or `rollback`), not {given}",
                                  hint="leave out --artifacts; `stackcrate deploy upgrade --to DIR` moves it to "
                                       "other artifacts")
        return recorded

    def _backend(self, given: str | None) -> str:
        """The backend: the one the deployment was initialised with (init records it) else the one given on the
        command line else the configuration's. A deployment does not change backend under its processes."""
        import json

        marker = self.state / "data" / "deployment.json"
        try:
            recorded = json.loads(marker.read_text()).get("backend")
        except (OSError, ValueError, AttributeError):
            recorded = None
        if recorded and given and given != recorded:
            from ..errors import StackcrateError

            raise StackcrateError(f"the deployment in {self.state} runs on the {recorded} backend, not {given}",
                                  hint="leave out --backend, or `stackcrate deploy rm --purge` it first")
        return recorded or given or self.config.backend

    @property
    def listen(self) -> str:
        """The address this host's processes listen on."""
        return self.config.listen

    @property
    def control(self) -> str:
        """The address the control plane (databases, broker, APIs, OVN's databases) is reached at."""
        return self.config.node.control_address or self.config.listen

    @property
    def host(self) -> str:
        """This host's name in the cloud (nova's `host`, the OVN chassis' hostname)."""
        return self.config.node.name

    def has(self, role: str) -> bool:
        return role in self.config.node.roles

    @property
    def compute_hosts(self) -> list[str]:
        """Every compute host of the cloud, as the control host knows them."""
        return self.config.node.compute_hosts or ([self.host] if self.has("compute") else [])

    @property
    def id(self) -> str:
        """8 hex digits naming the deployment on the machine (its state folder): containers, boot unit."""
        import hashlib

        return hashlib.sha256(str(self.state).encode()).hexdigest()[:8]
