"""Config overrides checked against the real venvs' oslo.config options: a bad one stops `init` and `start` with
exit 2 naming it before anything of the deployment is written or started; good ones (and every option stackcrate
writes itself) pass. No deployment is started: the check runs before anything starts."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from stackcrate.cache import Cache
from stackcrate.deploy import lifecycle, options, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.configs import configs
from stackcrate.deploy.install import install
from stackcrate.deploy.timer import Timer
from stackcrate.errors import StackcrateError
from stackcrate.ui import UI
from tests.integration.deploy.conftest import EXAMPLE, Deploy, copy_manifest, services_with_free_ports


@pytest.fixture(scope="module")
def built(sc_env, deploy_dist, tmp_path_factory) -> Path:
    """deploy_dist with every artifact of examples/deploy (built once if STACKCRATE_TEST_DEPLOY_DIST is not set)."""
    root = tmp_path_factory.mktemp("overrides-build")
    (root / "services.yaml").write_text(yaml.safe_dump(services_with_free_ports(), sort_keys=False))
    copy_manifest(root)
    conf = yaml.safe_load((EXAMPLE / "configuration.yaml").read_text())
    conf.update(state_dir=str(root / "state"), artifacts=str(deploy_dist), manifest=str(root / "stackcrate.yaml"))
    (root / "configuration.yaml").write_text(yaml.safe_dump(conf))
    Deploy(root, deploy_dist, env=dict(sc_env)).ok("build", timeout=3600)
    return deploy_dist


@pytest.fixture
def deploy(built, sc_env, tmp_path):
    """A deployment on free ports with its own state folder; call it with the overrides to use."""
    def make(overrides: dict) -> Deploy:
        (tmp_path / "services.yaml").write_text(yaml.safe_dump(services_with_free_ports(), sort_keys=False))
        conf = yaml.safe_load((EXAMPLE / "configuration.yaml").read_text())
        conf.update(state_dir=str(tmp_path / "state"), artifacts=str(built), overrides=overrides)
        conf.pop("manifest")
        (tmp_path / "configuration.yaml").write_text(yaml.safe_dump(conf, sort_keys=False))
        return Deploy(tmp_path, built, env=dict(sc_env))
    return make


def line_of(d: Deploy, text: str) -> int:
    return next(i for i, ln in enumerate((d.root / "configuration.yaml").read_text().splitlines(), 1) if text in ln)


def nothing_listens(d: Deploy) -> bool:
    def free(port: int) -> bool:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
        return True
    services = d.services
    ports = [p for b in services["backing"].values() for p in b.values()]
    ports += [p for s in services["services"].values() for p in (s["port"], s["backend_port"])]
    return all(free(p) for p in ports)


BAD = {
    "unknown option": ({"nova": {"DEFAULT": {"no_such_option": 42}}}, "no_such_option",
                       "overrides.nova.DEFAULT.no_such_option: nova has no option 'no_such_option' in [DEFAULT]"),
    "unknown section": ({"keystone": {"no_such_section": {"a": 1}}}, "no_such_section",
                        "overrides.keystone.no_such_section: keystone has no section [no_such_section]"),
    "bad value": ({"nova": {"DEFAULT": {"debug": "maybe"}}}, "maybe",
                  "overrides.nova.DEFAULT.debug: 'maybe' is not a valid boolean value for [DEFAULT] debug"),
    "out of range": ({"glance": {"DEFAULT": {"workers": -1}}}, "workers",
                     "overrides.glance.DEFAULT.workers: '-1' is not a valid integer value for [DEFAULT] workers"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_init_refuses_a_bad_override_and_writes_nothing(deploy, case):
    overrides, marker, expected = BAD[case]
    d = deploy(overrides)
    res = d.sc("init", json_out=False, timeout=300)
    assert res.returncode == 2, res.stderr
    assert f"configuration.yaml:{line_of(d, marker)}: {expected}" in res.stderr
    assert "Traceback" not in res.stderr
    assert not d.state.exists()
    assert nothing_listens(d)


def test_init_names_every_bad_override_at_once(deploy):
    d = deploy({"nova": {"DEFAULT": {"debug": "maybe", "no_such_option": 42}, "defalt": {"debug": True}},
                "glance": {"fs": {"filesystem_store_datadir": "/srv/images", "bogus": 1}}})
    res = d.sc("init", json_out=False, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "4 config override(s)" in res.stderr
    assert "overrides.nova.defalt: nova has no section [defalt]; did you mean [DEFAULT]?" in res.stderr
    assert "overrides.glance.fs.bogus: glance has no option 'bogus' in [fs]" in res.stderr
    assert not d.state.exists()


def test_start_refuses_a_bad_override_before_writing_configs(deploy):
    d = deploy({"nova": {"DEFAULT": {"debug": "maybe"}}})
    marker = d.state / "data" / "deployment.json"  # as if `init` had run before the override was added
    marker.parent.mkdir(parents=True)
    marker.write_text("{}")
    res = d.sc("start", json_out=False, timeout=300)
    assert res.returncode == 2, res.stderr
    assert "overrides.nova.DEFAULT.debug: 'maybe' is not a valid boolean value" in res.stderr
    assert [p for p in d.state.rglob("*") if p.is_file()] == [marker]
    assert nothing_listens(d)


@pytest.fixture
def real(deploy, tmp_path):
    """Deployment objects of the real venvs (installed if missing) with a cache of their own (the probe runs)."""
    def make(overrides: dict) -> Deployment:
        d = deploy(overrides)
        dep = Deployment(d.root / "services.yaml", d.root / "configuration.yaml", cache=Cache(tmp_path / "cache"))
        install(dep, Timer(UI(quiet=True)))
        return dep
    return make


def test_valid_overrides_are_accepted_and_a_deprecated_name_is_a_warning_naming_the_current_one(real, capsys):
    d = real({"nova": {"DEFAULT": {"debug": True}, "scheduler": {"max_attempts": 3},
                       # auth plugin options (registered at run time) and a deprecated name (memcache_servers)
                       "keystone_authtoken": {"password": "x", "auth_type": "password", "memcache_servers": "a:1"}},
              "glance": {"fs": {"filesystem_store_datadir": "/srv/images"}},
              "neutron": {"DEFAULT": {"api_workers": 2}, "database": {"max_retries": 5}},
              "keystone": {"token": {"expiration": 7200}, "Cache": {"enabled": "false"}}})
    capsys.readouterr()
    options.check(d, Timer(UI(quiet=True)))
    warned = "".join(capsys.readouterr().err.split())  # rich wraps long lines
    assert "".join("overrides.nova.keystone_authtoken.memcache_servers: nova reads it, but as a deprecated name of "
                   "[keystone_authtoken] memcached_servers".split()) in warned
    assert warned.count("warning:") == 1, warned


@pytest.mark.parametrize("driver", ["fake", "podman"])
def test_every_option_stackcrate_writes_is_known_to_its_service_by_a_name_not_deprecated(real, driver, capsys):
    d = real({})
    d.config.compute_driver = driver  # podman: the driver's [podman] options (its oslo.config.opts entry point)
    lay = lifecycle.layout(d, dict.fromkeys(secrets.NAMES, "x"))  # as run and start make it: with the releases
    d.config.overrides = {service: {section: {k: v if isinstance(v, (bool, int, str)) else str(v)
                                              for k, v in opts.items()} for section, opts in sections.items()}
                          for service, sections in configs(lay).items()}
    capsys.readouterr()
    try:
        options.check(d, Timer(UI(quiet=True)))
    except StackcrateError as exc:
        pytest.fail(f"stackcrate writes options its services do not have:\n{exc}")
    # a deprecated name or an option deprecated for removal: a warning in the service's log at every start
    assert "warning:" not in (warned := capsys.readouterr().err), f"stackcrate writes deprecated options:\n{warned}"
