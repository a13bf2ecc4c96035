"""OpenStack services: their config files, their processes (from the installed venvs) and their init steps."""

from __future__ import annotations

import grp
import os
import pwd
from pathlib import Path

from .. import tools
from .config import Deployment
from .procs import Proc
from .secrets import private_file

API_PATHS = {"keystone": "/v3", "glance": "", "placement": "", "nova": "/v2.1", "neutron": ""}
SERVICE_TYPES = {"glance": ("image", "glance"), "placement": ("placement", "placement"),
                 "nova": ("compute", "nova"), "neutron": ("network", "neutron")}
# The WSGI application of each API; gunicorn loads it through a wrapper that empties sys.argv first,
# since keystone and nova parse sys.argv with oslo.config and choke on gunicorn's options.
WSGI_APPS = {"keystone": "keystone.wsgi.api", "glance": "glance.wsgi.api", "placement": "placement.wsgi.api",
             "nova": "nova.wsgi.osapi_compute", "neutron": "neutron.wsgi.api"}


class Layout:
    """Where each service's venv, config, data live."""

    def __init__(self, d: Deployment, venvs: dict[str, str], secrets: dict[str, str]):
        self.d, self.venvs, self.secrets = d, venvs, secrets

    def venv(self, service: str) -> Path:
        return Path(self.venvs[self.d.services.enabled()[service].component])

    def bin(self, service: str, name: str) -> str:
        return str(self.venv(service) / "bin" / name)

    def etc(self, service: str) -> Path:
        return self.d.state / "etc" / service

    def data(self, service: str) -> Path:
        return self.d.state / "data" / service

    def public_url(self, service: str) -> str:
        s = self.d.services.enabled()[service]
        return f"http://{self.d.listen}:{s.port}{API_PATHS[service]}"

    def db_url(self, name: str, db: str | None = None) -> str:
        port = self.d.services.backing.mariadb.port
        return f"mysql+pymysql://{name}:{self.secrets['db_' + name]}@{self.d.listen}:{port}/{db or name}"

    def transport_url(self) -> str:
        r = self.d.services.backing.rabbitmq
        return f"rabbit://openstack:{self.secrets['rabbitmq_password']}@{self.d.listen}:{r.port}/"

    def memcache(self) -> str:
        return f"{self.d.listen}:{self.d.services.backing.memcached.port}"

    def auth_section(self, user: str) -> dict[str, str]:
        return {"auth_type": "password", "auth_url": self.public_url("keystone"), "username": user,
                "password": self.secrets["service_password"], "project_name": "service",
                "user_domain_name": "Default", "project_domain_name": "Default",
                "region_name": self.d.config.region}

    def authtoken(self, user: str) -> dict[str, str]:
        return dict(self.auth_section(user), www_authenticate_uri=self.public_url("keystone"),
                    memcached_servers=self.memcache(), service_token_roles_required="true")


def _ini(sections: dict[str, dict[str, object]]) -> str:
    out = []
    for name, opts in sections.items():
        out.append(f"[{name}]")
        for k, v in opts.items():
            out.append(f"{k} = {('true' if v else 'false') if isinstance(v, bool) else v}")
        out.append("")
    return "\n".join(out)


def _merge(base: dict, overrides: dict) -> dict:
    for section, opts in overrides.items():
        base.setdefault(section, {}).update(opts)
    return base


def configs(lay: Layout) -> dict[str, dict[str, dict[str, object]]]:
    """service -> {file name -> ini sections}."""
    d = lay.d
    common = {"DEFAULT": {"debug": False, "transport_url": lay.transport_url()}}
    cache = {"enabled": True, "backend": "oslo_cache.memcache_pool", "memcache_servers": lay.memcache()}
    enabled = d.services.enabled()
    out: dict[str, dict[str, dict]] = {}
    out["keystone"] = {"keystone.conf": {
        "DEFAULT": {"debug": False},
        "database": {"connection": lay.db_url("keystone")},
        "token": {"provider": "fernet"},
        "fernet_tokens": {"key_repository": lay.data("keystone") / "fernet-keys"},
        "credential": {"key_repository": lay.data("keystone") / "credential-keys"},
        "cache": cache,
    }}
    if "glance" in enabled:
        g = lay.data("glance")
        out["glance"] = {"glance-api.conf": {
            "DEFAULT": {"debug": False, "enabled_backends": "fs:file", "bind_host": d.listen,
                        "workers": enabled["glance"].workers},
            "database": {"connection": lay.db_url("glance")},
            "glance_store": {"default_backend": "fs"},
            "fs": {"filesystem_store_datadir": g / "images"},
            "os_glance_staging_store": {"filesystem_store_datadir": g / "staging"},
            "os_glance_tasks_store": {"filesystem_store_datadir": g / "tasks"},
            "paste_deploy": {"flavor": "keystone",
                             "config_file": lay.venv("glance") / "etc" / "glance" / "glance-api-paste.ini"},
            "keystone_authtoken": lay.authtoken("glance"),
            "oslo_concurrency": {"lock_path": g / "locks"},
        }}
    if "placement" in enabled:
        out["placement"] = {"placement.conf": {
            "DEFAULT": {"debug": False},
            "placement_database": {"connection": lay.db_url("placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": lay.authtoken("placement"),
        }}
    if "neutron" in enabled:
        n = lay.data("neutron")
        out["neutron"] = {"neutron.conf": _merge({
            # "router" also loads the port-forwarding model that ML2's port queries join (AttributeError without)
            "DEFAULT": {"core_plugin": "ml2", "service_plugins": "router", "auth_strategy": "keystone",
                        "api_paste_config": lay.venv("neutron") / "etc" / "neutron" / "api-paste.ini",
                        "notify_nova_on_port_status_changes": False, "notify_nova_on_port_data_changes": False},
            "database": {"connection": lay.db_url("neutron")},
            "keystone_authtoken": lay.authtoken("neutron"),
            "oslo_concurrency": {"lock_path": n / "locks"},
            "ml2": {"type_drivers": "flat,local", "tenant_network_types": "local", "mechanism_drivers": "",
                    "extension_drivers": "port_security"},
        }, common)}
    if "nova" in enabled:
        nv = lay.data("nova")
        out["nova"] = {"nova.conf": _merge({
            "DEFAULT": {"compute_driver": "fake.FakeDriver", "state_path": nv, "instances_path": nv / "instances",
                        "my_ip": d.listen, "host": "stackcrate",
                        "osapi_compute_workers": enabled["nova"].workers, "metadata_workers": 1},
            "api": {"auth_strategy": "keystone"},
            "wsgi": {"api_paste_config": lay.venv("nova") / "etc" / "nova" / "api-paste.ini"},
            "api_database": {"connection": lay.db_url("nova", "nova_api")},
            "database": {"connection": lay.db_url("nova", "nova")},
            "keystone_authtoken": lay.authtoken("nova"),
            "placement": lay.auth_section("placement"),
            "glance": {"api_servers": lay.public_url("glance")},
            "neutron": lay.auth_section("neutron"),
            "service_user": dict(lay.auth_section("nova"), send_service_user_token=True),
            "oslo_concurrency": {"lock_path": nv / "locks"},
            "scheduler": {"discover_hosts_in_cells_interval": -1},
            "conductor": {"workers": 1},
            "cache": cache,
        }, common)}
    for service, extra in d.config.overrides.items():
        if service in out:
            fname = next(iter(out[service]))
            _merge(out[service][fname], extra)
    return out


def write_configs(lay: Layout) -> None:
    for service, files in configs(lay).items():
        lay.etc(service).mkdir(parents=True, exist_ok=True)
        os.chmod(lay.etc(service), 0o700)
        for fname, sections in files.items():
            private_file(lay.etc(service) / fname, _ini(sections))
        lay.data(service).mkdir(parents=True, exist_ok=True)
        _wsgi_wrapper(lay, service)


def _wsgi_wrapper(lay: Layout, service: str) -> None:
    wsgi = lay.d.state / "run" / "wsgi"
    wsgi.mkdir(parents=True, exist_ok=True)
    (wsgi / f"sc_wsgi_{service}.py").write_text(
        "# Generated by stackcrate: oslo.config must not see gunicorn's command line.\n"
        f"import sys\nsys.argv = sys.argv[:1]\nfrom {WSGI_APPS[service]} import application  # noqa\n"
        + (_NEUTRON_FIX if service == "neutron" else ""))


# neutron's get_ports reads Port.port_forwardings, a backref that only exists once SQLAlchemy has configured the
# mappers; neutron-server's own start-up triggers that, loading the WSGI app alone does not.
_NEUTRON_FIX = "from sqlalchemy import orm\norm.configure_mappers()\n"


def _env(lay: Layout, service: str) -> dict[str, str]:
    etc = str(lay.etc(service))
    return {"keystone": {"OS_KEYSTONE_CONFIG_DIR": etc, "OS_KEYSTONE_CONFIG_FILES": "keystone.conf"},
            "glance": {"OS_GLANCE_CONFIG_DIR": etc},
            "placement": {"OS_PLACEMENT_CONFIG_DIR": etc},
            # nova loads its paste pipeline from the first file: the venv's api-paste.ini (absolute path)
            "nova": {"OS_NOVA_CONFIG_DIR": etc,
                     "OS_NOVA_CONFIG_FILES": f"{lay.venv('nova') / 'etc' / 'nova' / 'api-paste.ini'};nova.conf"},
            "neutron": {"OS_NEUTRON_CONFIG_DIR": etc, "OS_NEUTRON_CONFIG_FILES": "neutron.conf"}}[service]


def conf_file(lay: Layout, service: str) -> str:
    return str(lay.etc(service) / next(iter(configs(lay)[service])))


def procs(lay: Layout) -> list[Proc]:
    """Every OpenStack process, in start order (keystone first: the others check tokens against it)."""
    d = lay.d
    out = []
    for service, s in d.services.enabled().items():
        argv = [lay.bin(service, "gunicorn"), "--pythonpath", str(d.state / "run" / "wsgi"),
                "--bind", f"{d.listen}:{s.backend_port}", "--workers", str(s.workers), "--threads", "4",
                "--worker-class", "gthread", "--timeout", "300", "--graceful-timeout", "5",
                "--name", f"stackcrate-{service}", f"sc_wsgi_{service}:application"]
        url = f"http://{d.listen}:{s.backend_port}/"
        out.append(Proc(service if service != "nova" else "nova-api", argv, env=_env(lay, service), http=url,
                        start_timeout=180))
    if "nova" in d.services.enabled():
        conf = ["--config-file", conf_file(lay, "nova")]
        for p in d.services.services.nova.processes:
            if p != "api":
                out.append(Proc(f"nova-{p}", [lay.bin("nova", f"nova-{p}"), *conf]))
        if "api" not in d.services.services.nova.processes:
            out = [p for p in out if p.name != "nova-api"]
    return out


def databases(d: Deployment) -> dict[str, list[str]]:
    """database user -> its databases."""
    en = d.services.enabled()
    out = {"keystone": ["keystone"]}
    for name in ("glance", "placement", "neutron"):
        if name in en:
            out[name] = [name]
    if "nova" in en:
        out["nova"] = ["nova_api", "nova", "nova_cell0"]
    return out


def db_sql(d: Deployment, secrets: dict[str, str]) -> str:
    """Idempotent SQL creating each database and its user (the password is re-set to the kept secret)."""
    lines = []
    for user, dbs in databases(d).items():
        pw = secrets["db_" + user]
        for host in ("localhost", d.listen):
            lines.append(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{pw}';")
            lines.append(f"ALTER USER '{user}'@'{host}' IDENTIFIED BY '{pw}';")
        for db in dbs:
            lines.append(f"CREATE DATABASE IF NOT EXISTS `{db}` CHARACTER SET utf8mb4;")
            for host in ("localhost", d.listen):
                lines.append(f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}';")
    lines.append("FLUSH PRIVILEGES;")
    return "\n".join(lines) + "\n"


def _manage(lay: Layout, service: str, tool: str, *args: str, env: dict | None = None, timeout: float = 600):
    return tools.run([lay.bin(service, tool), "--config-file", conf_file(lay, service), *args], env=env,
                     timeout=timeout)


def keystone_init(lay: Layout) -> None:
    user, group = pwd.getpwuid(os.getuid()).pw_name, grp.getgrgid(os.getgid()).gr_name
    ks = lay.data("keystone")
    _manage(lay, "keystone", "keystone-manage", "db_sync")
    if not any((ks / "fernet-keys").glob("*")):
        _manage(lay, "keystone", "keystone-manage", "fernet_setup", "--keystone-user", user,
                "--keystone-group", group)
    if not any((ks / "credential-keys").glob("*")):
        _manage(lay, "keystone", "keystone-manage", "credential_setup", "--keystone-user", user,
                "--keystone-group", group)
    url = lay.public_url("keystone")
    # The password goes through the environment, not the command line (visible in ps).
    _manage(lay, "keystone", "keystone-manage", "bootstrap", "--bootstrap-username", "admin",
            "--bootstrap-project-name", "admin", "--bootstrap-role-name", "admin",
            "--bootstrap-region-id", lay.d.config.region, "--bootstrap-admin-url", url,
            "--bootstrap-internal-url", url, "--bootstrap-public-url", url,
            env={"OS_BOOTSTRAP_PASSWORD": lay.secrets["admin_password"]})


def db_sync(lay: Layout, service: str) -> None:
    """Schema migrations of one service (each is idempotent)."""
    if service == "glance":
        _manage(lay, "glance", "glance-manage", "db_sync")
    elif service == "placement":
        _manage(lay, "placement", "placement-manage", "db", "sync")
    elif service == "neutron":
        _manage(lay, "neutron", "neutron-db-manage", "upgrade", "heads")
    elif service == "nova":
        _manage(lay, "nova", "nova-manage", "api_db", "sync")
        cells = _manage(lay, "nova", "nova-manage", "cell_v2", "list_cells").stdout
        if "cell0" not in cells:
            _manage(lay, "nova", "nova-manage", "cell_v2", "map_cell0")
        _manage(lay, "nova", "nova-manage", "db", "sync")
        if "cell1" not in cells:
            _manage(lay, "nova", "nova-manage", "cell_v2", "create_cell", "--name", "cell1")
