"""The config files of the OpenStack services (oslo.config ini files), generated from the deployment, plus the
WSGI module gunicorn loads for each API. What each service is (its file names, apps, processes) is in
openstack.py; what goes into each file is here."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from packaging.version import Version

from ..errors import StackcrateError
from . import ovn, podman_api
from .layout import Layout
from .openstack import SERVICES
from .processes import processes_here, services_here, wsgi_module
from .secrets import private_file

# stackcrate's modules a process runs with (Launcher): the driver nova loads, a fix neutron's worker imports
LAUNCHED_DIR = Path(__file__).with_name("launched")


def ini_value(v: object) -> str:
    """A value as the ini file holds it (options.py checks overrides in this form)."""
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def ini_text(sections: dict[str, dict[str, object]]) -> str:
    out = []
    for name, opts in sections.items():
        out.append(f"[{name}]")
        for k, v in opts.items():
            out.append(f"{k} = {ini_value(v)}")
        out.append("")
    return "\n".join(out)


def _merge(base: dict, overrides: dict) -> dict:
    for section, opts in overrides.items():
        base.setdefault(section, {}).update(opts)
    return base


def configs(lay: Layout) -> dict[str, dict[str, dict[str, object]]]:
    """service -> the sections of its config file (named in openstack.py), with the configuration's overrides:
    for the services with a process on this host (a compute host: nova's alone; its venv is the only one here)."""
    d = lay.d
    common = {"DEFAULT": {"debug": False, "transport_url": lay.transport_url()}}
    cache = {"enabled": True, "backend": "oslo_cache.memcache_pool", "memcache_servers": lay.memcache()}
    enabled = d.services.enabled()
    here = services_here(d)
    out: dict[str, dict[str, dict]] = {}
    if "keystone" in here:
        out["keystone"] = {
            "DEFAULT": {"debug": False},
            "database": {"connection": lay.db_url("keystone")},
            "token": {"provider": "fernet"},
            "fernet_tokens": {"key_repository": lay.data("keystone") / "fernet-keys"},
            # receipts (multi-factor auth) need keys too, or every keystone-manage bootstrap/keystone start fails on a
            # machine without /etc/keystone/fernet-keys: keystone's default for both is that one folder, so ours too
            "fernet_receipts": {"key_repository": lay.data("keystone") / "fernet-keys"},
            "credential": {"key_repository": lay.data("keystone") / "credential-keys"},
            "cache": cache,
        }
    if "glance" in here:
        g = lay.data("glance")
        out["glance"] = {
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
        }
    if "placement" in here:
        out["placement"] = {
            "DEFAULT": {"debug": False},
            "placement_database": {"connection": lay.db_url("placement")},
            "api": {"auth_strategy": "keystone"},
            "keystone_authtoken": lay.authtoken("placement"),
        }
    if "neutron" in here:
        n = lay.data("neutron")
        out["neutron"] = _merge({
            # ML2/OVN: tenant networks are Geneve networks OVN implements (DHCP native, security groups as ACLs,
            # routers as OVN logical routers); ports bind to the chassis of the compute host
            # (its paste pipeline, api-paste.ini by default, is found beside the venv's own config file: openstack.py)
            "DEFAULT": {"core_plugin": "ml2", "service_plugins": "ovn-router", "auth_strategy": "keystone",
                        "notify_nova_on_port_status_changes": "nova" in enabled,
                        "notify_nova_on_port_data_changes": "nova" in enabled},
            "database": {"connection": lay.db_url("neutron")},
            "keystone_authtoken": lay.authtoken("neutron"),
            "oslo_concurrency": {"lock_path": n / "locks"},
            "ml2": {"type_drivers": "geneve,flat", "tenant_network_types": "geneve", "mechanism_drivers": "ovn",
                    "extension_drivers": "port_security", "overlay_ip_version": 4},
            "ml2_type_geneve": {"vni_ranges": "1:65536", "max_header_size": 38},
            "ovn": {"ovn_nb_connection": ovn.nb_remote(d), "ovn_sb_connection": ovn.sb_remote(d),
                    # servers of the fake driver do not boot: nothing would ask for metadata
                    "ovn_metadata_enabled": False, "enable_distributed_floating_ip": False},
            **({"nova": lay.auth_section("nova")} if "nova" in enabled else {}),
        }, common)
    if "nova" in here:
        nv = lay.data("nova")
        out["nova"] = _merge({
            # the fake driver that behaves like a real one-node driver: its node keeps one identity, which
            # nova-compute writes to <state_path>/compute_id at the first start and checks at every other
            "DEFAULT": {"compute_driver": "stackcrate_fake.FakeOVSDriver", "state_path": nv,
                        "instances_path": nv / "instances", "my_ip": d.listen, "host": d.host,
                        **nova_shutdown(d.config.stop_timeout)},
                        # API workers: gunicorn's (processes.py)
            "wsgi": {"api_paste_config": lay.venv("nova") / "etc" / "nova" / "api-paste.ini"},
            # (a compute host of several has not their passwords: only nova-compute runs there, and it gets neither)
            **({"api_database": {"connection": lay.db_url("nova", "nova_api")},
                "database": {"connection": lay.db_url("nova", "nova")}} if d.has("control") else {}),
            "keystone_authtoken": lay.authtoken("nova"),
            "placement": lay.auth_section("placement"),
            # keystoneauth's adapter option (api_servers is deprecated for removal): nova asks there, not the catalog
            "glance": {"endpoint_override": lay.public_url("glance"),
                       **({"cafile": str(lay.ca_file())} if lay.ca_file() else {})},
            "neutron": lay.auth_section("neutron"),
            # only authenticates (no endpoint to find): nova registers no region_name here
            "service_user": {k: v for k, v in lay.auth_section("nova").items() if k != "region_name"}
            | {"send_service_user_token": True},
            "oslo_concurrency": {"lock_path": nv / "locks"},
            "scheduler": {"discover_hosts_in_cells_interval": -1},
            # where os-vif plugs ports into Open vSwitch, and so the fake driver (launched/stackcrate_fake.py)
            "os_vif_ovs": {"ovsdb_connection": f"unix:{ovn.ovs_socket(d)}", "ovs_vsctl_timeout": 30},
            "conductor": {"workers": 1},
            "cache": cache,
        }, common)
        if podman_api.enabled(d):  # instances as podman containers (drivers/nova-podman)
            _merge(out["nova"], podman_api.nova_options(d))
    if "horizon" in here:
        out["horizon"] = {"local_settings": horizon_settings(lay)}
    for service, sections in out.items():
        _by_release_names(lay, service, sections, d.config.overrides.get(service, {}))
    for service, extra in d.config.overrides.items():
        if service in out:
            _merge(out[service], extra)
    identity = out.get("keystone", {}).get("identity", {})
    if "keystone" in out and identity.get("password_hash_algorithm", "bcrypt") == "bcrypt":
        # bcrypt (keystone's default hash) reads a password's first 72 bytes, and keystone cuts longer ones there
        # anyway; with its default limit (4096) it logs a WARNING saying so at every password login. (Other
        # hashes read more: an override choosing one keeps keystone's limit.)
        out["keystone"]["identity"] = {"max_password_length": 72, **identity}
    return out


def _by_release_names(lay: Layout, service: str, sections: dict[str, dict], overrides: dict[str, dict]) -> None:
    """Write the options the service renamed (openstack.py) by the name its release reads as its own: the old one
    works in every release but logs a deprecation at each start in the newer ones. A release not known keeps the
    old name. An override of the old name keeps it too (the override replaces stackcrate's value: written under
    the new name, it would be read in place of the override's)."""
    release = lay.release(service)
    for r in SERVICES[service].renamed:
        options = sections.get(r.section, {})
        if (r.old in options and release is not None and release >= Version(r.since).release
                and r.old not in overrides.get(r.section, {})):
            sections[r.section] = {r.new if k == r.old else k: v for k, v in options.items()}


def refuse_token_cache_without_crypto(lay: Layout) -> None:
    """keystonemiddleware encrypts the tokens an API caches (Layout.authtoken) with `cryptography`, which not every
    service requires (placement does not): in a venv without it, every request with a token would fail (HTTP
    500). Checked in the venvs on this host."""
    for service, sections in configs(lay).items():
        if sections.get("keystone_authtoken", {}).get("memcache_security_strategy") != "ENCRYPT":
            continue
        venv = lay.venv(service)
        if not any(venv.glob("lib/python3*/site-packages/cryptography-*.dist-info")):
            component = lay.d.services.enabled()[service].component
            raise StackcrateError(f"{component}'s venv ({venv}) has no cryptography, with which keystonemiddleware "
                                  f"encrypts the tokens {service} caches in Memcached",
                                  hint=f"add cryptography to {component}'s extra_requirements in the manifest, "
                                  "then `stackcrate deploy build` and `stackcrate deploy init --reinstall`")


def nova_shutdown(stop_timeout: float) -> dict[str, int]:
    """nova's graceful shutdown fitted inside the deployment's stop_timeout, stackcrate's one bound for every
    process (SIGKILL after it). On SIGTERM, nova 2026.1's conductor, scheduler and compute stop taking new
    requests, sleep manager_shutdown_timeout (160 s by default) for what is in progress, then stop the rest
    (RPC servers, nova-compute's clean-up: 1-4 s here); with those defaults every stop killed them in their
    sleep. The sleep here leaves the rest 20 s of stop_timeout, or half of it and a second when that is shorter
    (10 s: 4 s of sleep; 180 s: nova's own 160). oslo.service's own limit, graceful_shutdown_timeout, goes past
    stop_timeout so that it never cuts a shutdown first: it exits with status 1, which a container engine
    reports as a failure, where SIGKILL reads as stopped. (Older nova has no manager_shutdown_timeout.)"""
    return {"graceful_shutdown_timeout": int(stop_timeout) + 10,
            "manager_shutdown_timeout": max(0, int(stop_timeout - min(20, stop_timeout / 2 + 1)))}


def horizon_settings(lay: Layout) -> dict[str, object]:
    """The dashboard's Django settings: keystone through HAProxy, sessions in memcached, the region, the hosts
    it answers for, static files collected and compressed ahead into its data folder."""
    d = lay.d
    port = d.services.enabled()["horizon"].port
    scheme = "https" if d.config.tls else "http"
    # the names and addresses a browser may reach it by (more: overrides' ALLOWED_HOSTS and CSRF_TRUSTED_ORIGINS)
    hosts = list(dict.fromkeys([d.control, d.listen, "localhost", "127.0.0.1", socket.gethostname()]))
    out: dict[str, object] = {
        "DEBUG": False,
        "SECRET_KEY": lay.secrets["horizon_secret_key"],
        "ALLOWED_HOSTS": hosts,
        # the browser's Origin on a login form post: the URLs HAProxy serves the dashboard at
        "CSRF_TRUSTED_ORIGINS": [f"{scheme}://{h}:{port}" for h in hosts],
        "OPENSTACK_HOST": d.control,
        "OPENSTACK_KEYSTONE_URL": lay.public_url("keystone"),
        "DEFAULT_SERVICE_REGIONS": {"*": d.config.region},
        "OPENSTACK_ENDPOINT_TYPE": "publicURL",
        "SESSION_ENGINE": "django.contrib.sessions.backends.cache",
        "CACHES": {"default": {"BACKEND": "django.core.cache.backends.memcached.PyMemcacheCache",
                               "LOCATION": lay.memcache()}},
        "STATIC_ROOT": str(lay.data("horizon") / "static"),
        "STATIC_URL": "/static/",
        "COMPRESS_OFFLINE": True,
        "TIME_ZONE": "UTC",
    }
    if d.config.tls:  # HAProxy ends TLS and says so in X-Forwarded-Proto (backing.py)
        out.update(OPENSTACK_SSL_CACERT=str(lay.ca_file()), SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"),
                   SESSION_COOKIE_SECURE=True, CSRF_COOKIE_SECURE=True)
    return out


def django_text(settings: dict[str, object]) -> str:
    """A Django settings module assigning each setting (Python literals)."""
    lines = ["# Generated by stackcrate: the deployment's settings (configuration.yaml's overrides included)."]
    lines += [f"{name} = {value!r}" for name, value in settings.items()]
    return "\n".join(lines) + "\n"


def write_configs(lay: Layout) -> None:
    """The config files of the services with a process on this host (a compute host: nova's alone)."""
    written = configs(lay)
    for service in SERVICES.keys() - written.keys():  # none of its processes here (any more)
        if SERVICES[service].config_format == "ini":
            write_ini_files(lay, service, {})
    for service, sections in written.items():
        lay.etc(service).mkdir(parents=True, exist_ok=True)
        os.chmod(lay.etc(service), 0o700)
        if SERVICES[service].config_format == "django":
            write_django_settings(lay, service, sections["local_settings"])
        else:
            write_ini_files(lay, service, sections)
        lay.data(service).mkdir(parents=True, exist_ok=True)
        for sub in SERVICES[service].data_dirs:  # key repositories: keystone warns when others may read them
            (lay.data(service) / sub).mkdir(exist_ok=True)
            os.chmod(lay.data(service) / sub, 0o700)
        wsgi_wrapper(lay, service)
        launchers(lay, service)


def write_ini_files(lay: Layout, service: str, sections: dict[str, dict]) -> None:
    """The service's config file, and a file of its own for each process here that some sections are withheld
    from (openstack.py); each file no process here reads is removed (on a compute host, nova.conf with the
    database URLs an older stackcrate wrote there)."""
    files: dict[Path, dict[str, dict]] = {}
    for p in processes_here(lay.d, service):
        files[lay.process_conf_file(service, p)] = {k: v for k, v in sections.items() if k not in p.withheld}
    if files and lay.d.has("control"):  # init's commands (migrations, nova-manage) read the service's own file
        files[lay.conf_file(service)] = sections
    for path, content in files.items():
        private_file(path, ini_text(content))
    for path in {lay.conf_file(service), *(lay.process_conf_file(service, p) for p in SERVICES[service].processes)}:
        if path not in files:
            path.unlink(missing_ok=True)


def write_django_settings(lay: Layout, service: str, settings: dict[str, object]) -> None:
    """local/local_settings.py (the package horizon's settings import it from), and what its static files
    depend on (openstack.py's HORIZON_STATIC)."""
    import json

    from .openstack import HORIZON_STATIC

    package = lay.conf_file(service).parent
    package.mkdir(exist_ok=True)
    private_file(package / "__init__.py", "")
    private_file(lay.conf_file(service), django_text(settings))
    # the static files may depend on any setting (apps, themes, URLs, COMPRESS_*): all of them but the secret key
    # (a rotated key leaves them as they are); compressing again takes ~3 s
    static = {k: v for k, v in settings.items() if k != "SECRET_KEY"}
    private_file(lay.etc(service) / HORIZON_STATIC, json.dumps(static, sort_keys=True, default=str) + "\n")


def wsgi_wrapper(lay: Layout, service: str) -> Path:
    """The module gunicorn loads: it empties sys.argv first, since keystone and nova parse it with oslo.config
    and choke on gunicorn's options, then imports the service's WSGI application."""
    spec = SERVICES[service]
    lay.wsgi_dir().mkdir(parents=True, exist_ok=True)
    path = lay.wsgi_dir() / f"{wsgi_module(service)}.py"
    private_file(path, "\n".join(["# Generated by stackcrate: oslo.config must not see gunicorn's command line.",
                               "import sys", "sys.argv = sys.argv[:1]",
                               f"from {spec.wsgi_app} import application  # noqa", *spec.wsgi_after_import, ""]))
    return path




def launchers(lay: Layout, service: str) -> list[Path]:
    """The modules a process with a Launcher runs (openstack.py): the launcher and stackcrate's own modules
    beside it, which the launcher adds to the package nova loads them from."""
    out = []
    for p in SERVICES[service].processes:
        if p.launcher is None:
            continue
        path = lay.launcher(p.name)
        path.parent.mkdir(parents=True, exist_ok=True)
        module, func = p.launcher.main.split(":")
        private_file(path, "\n".join([
            f"# Generated by stackcrate: {p.name} with stackcrate's modules in {p.launcher.package}.",
            "import os", "import sys", f"import {p.launcher.package}", "",
            f"{p.launcher.package}.__path__.append(os.path.dirname(os.path.abspath(__file__)))",
            *(f"import {p.launcher.package}.{name}  # noqa: F401" for name in p.launcher.imports),
            f"from {module} import {func}", "", f"sys.exit({func}())", ""]))
        for name in p.launcher.modules:
            private_file(path.parent / name, (LAUNCHED_DIR / name).read_text())
        out.append(path)
    return out


def write_clouds_yaml(lay: Layout) -> Path:
    """<state>/clouds.yaml (0600): the admin's cloud for the `openstack` client (`stackcrate deploy env`)."""
    import yaml

    cloud = {"auth": {"auth_url": lay.public_url("keystone"), "username": "admin", "project_name": "admin",
                      "password": lay.secrets["admin_password"], "user_domain_name": "Default",
                      "project_domain_name": "Default"},
             "region_name": lay.d.config.region, "interface": "public", "identity_api_version": 3}
    if lay.ca_file():
        cloud["cacert"] = str(lay.ca_file())
    path = lay.d.state / "clouds.yaml"
    private_file(path, yaml.safe_dump({"clouds": {cloud_name(lay.d): cloud}}, sort_keys=False))
    return path


def cloud_name(d) -> str:
    """The cloud's name in clouds.yaml (OS_CLOUD): stackcrate-<region>, e.g. stackcrate-regionone."""
    return f"stackcrate-{d.config.region.lower()}"


def boot_unit_name(d) -> str:
    """stackcrate-<id>.service: one unit per deployment (state folder) on the machine."""
    return f"stackcrate-{d.id}.service"


def write_boot_unit(d) -> Path:
    """A systemd unit that starts the deployment at boot (in dependency order, each checked healthy) and stops it
    at shutdown; supervisord, which it starts, stays in the unit's cgroup and keeps the processes running.
    Enable it with `systemctl link <path> && systemctl enable <name>` (README)."""
    import shlex
    import sys

    cmd = [sys.executable, "-m", "stackcrate", "deploy"]
    files = ["-s", str(d.services_path), "-c", str(d.config_path)]
    path = d.state / "etc" / "systemd" / boot_unit_name(d)
    path.parent.mkdir(parents=True, exist_ok=True)
    private_file(path, "\n".join([
        "# Generated by stackcrate: the OpenStack deployment in " + str(d.state),
        "[Unit]", f"Description=OpenStack (stackcrate deployment in {d.state})",
        "Wants=network-online.target", "After=network-online.target", "",
        "[Service]", "Type=oneshot", "RemainAfterExit=yes",
        f"ExecStart={shlex.join([*cmd, 'start', *files])}",
        f"ExecStop={shlex.join([*cmd, 'stop', *files])}",
        "TimeoutStartSec=900", f"TimeoutStopSec={int(d.config.stop_timeout) * 3 + 60}", "",
        "[Install]", "WantedBy=multi-user.target", ""]))
    return path
