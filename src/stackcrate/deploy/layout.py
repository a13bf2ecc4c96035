"""Where a deployment's pieces live and how they reach each other: venvs, config and data folders, URLs."""

from __future__ import annotations

from pathlib import Path

from packaging.version import InvalidVersion, Version

from .config import Deployment
from .openstack import SERVICES, Process, ServiceSpec


class Layout:
    """A deployment with its installed venvs (component -> install path), its secrets, and the components' versions
    where known (component -> version: the artifacts')."""

    def __init__(self, d: Deployment, venvs: dict[str, str], secrets: dict[str, str],
                 versions: dict[str, str] | None = None):
        self.d, self.venvs, self.secrets, self.versions = d, venvs, secrets, versions or {}

    def release(self, service: str) -> tuple[int, ...] | None:
        """The release numbers of the service's component (28.0.2 -> (28, 0, 2)); None when not known."""
        version = self.versions.get(self.d.services.enabled()[service].component)
        try:
            return Version(version).release if version else None
        except InvalidVersion:
            return None

    def spec(self, service: str) -> ServiceSpec:
        return SERVICES[service]

    def venv(self, service: str) -> Path:
        return Path(self.venvs[self.d.services.enabled()[service].component])

    def bin(self, service: str, name: str) -> str:
        return str(self.venv(service) / "bin" / name)

    def etc(self, service: str) -> Path:
        return self.d.state / "etc" / service

    def data(self, service: str) -> Path:
        return self.d.state / "data" / service

    def conf_file(self, service: str) -> Path:
        return self.etc(service) / SERVICES[service].config_file

    def process_conf_file(self, service: str, process: Process) -> Path:
        """The config file a process of the service reads: the service's, or one of its own when sections of
        it are withheld from the process (nova-compute.conf: nova.conf without the databases)."""
        return self.etc(service) / f"{process.name}.conf" if process.withheld else self.conf_file(service)

    def wsgi_dir(self) -> Path:
        return self.d.state / "run" / "wsgi"

    def launcher(self, process: str) -> Path:
        """The module a process with a Launcher (openstack.py) runs, in a folder of its own."""
        return self.d.state / "run" / process / f"sc_{process.replace('-', '_')}.py"

    def public_url(self, service: str) -> str:
        """The URL in the catalog: HAProxy's frontend (https with `tls: true`)."""
        s = self.d.services.enabled()[service]
        scheme = "https" if self.d.config.tls else "http"
        return f"{scheme}://{self.d.control}:{s.port}{SERVICES[service].api_path}"

    def backend_url(self, service: str) -> str:
        """The API process itself, behind HAProxy (plain HTTP on the listen address)."""
        s = self.d.services.enabled()[service]
        return f"http://{self.d.control}:{s.backend_port}{SERVICES[service].api_path}"

    def ca_file(self) -> Path | None:
        """The CA clients must trust for the catalog's URLs (None without TLS)."""
        return self.d.state / "data" / "tls" / "ca.crt" if self.d.config.tls else None

    def db_url(self, user: str, db: str | None = None) -> str:
        port = self.d.services.backing.mariadb.port
        return f"mysql+pymysql://{user}:{self.secrets['db_' + user]}@{self.d.control}:{port}/{db or user}"

    def transport_url(self) -> str:
        r = self.d.services.backing.rabbitmq
        return f"rabbit://openstack:{self.secrets['rabbitmq_password']}@{self.d.control}:{r.port}/"

    def memcache(self) -> str:
        return f"{self.d.control}:{self.d.services.backing.memcached.port}"

    def auth_section(self, user: str) -> dict[str, str]:
        """A keystoneauth section (service user's credentials; the CA to trust with TLS)."""
        out = {"auth_type": "password", "auth_url": self.public_url("keystone"), "username": user,
               "password": self.secrets["service_password"], "project_name": "service",
               "user_domain_name": "Default", "project_domain_name": "Default",
               "region_name": self.d.config.region}
        ca = self.ca_file()
        return {**out, "cafile": str(ca)} if ca else out

    def authtoken(self, user: str) -> dict[str, str]:
        """keystonemiddleware's section. The tokens it validated are cached in memcached encrypted and signed with
        the deployment's memcache_secret_key (ENCRYPT, as Kolla-Ansible sets it): in the clear, whoever reaches
        memcached could read them, or plant the validation of a token keystone never issued. A compute host of
        several has not the key, and serves no API."""
        out = dict(self.auth_section(user), www_authenticate_uri=self.public_url("keystone"),
                   memcached_servers=self.memcache(), service_token_roles_required="true")
        key = self.secrets.get("memcache_secret_key")
        return {**out, "memcache_security_strategy": "ENCRYPT", "memcache_secret_key": key} if key else out
