"""The dashboard (horizon): its settings module from the deployment, its overrides, its static files made only
when what they depend on changed, the login form as a browser reads it, HAProxy telling it about TLS."""

from __future__ import annotations

import ast
import json
import shutil
from pathlib import Path

import pytest
import yaml

from stackcrate.cache import Cache
from stackcrate.deploy import backing, bootstrap, configs, one_interpreter, options, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.dashboard import form_fields, on_login_page, url
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.openstack import HORIZON_STATIC, SERVICES
from stackcrate.deploy.timer import Timer
from stackcrate.errors import StackcrateError
from stackcrate.ui import UI


def deployment(dep, **config) -> Deployment:
    conf = yaml.safe_load(dep["config"].read_text())
    conf.update(config)
    dep["config"].write_text(yaml.safe_dump(conf, sort_keys=False))
    return Deployment(dep["services"], dep["config"], cache=Cache(dep["dir"] / "cache"))


def layout(d: Deployment) -> Layout:
    return Layout(d, {s.component: f"/opt/openstack/{s.component}-1" for s in d.services.enabled().values()},
                  {n: f"secret-{n}" for n in secrets.NAMES})


def settings_module(lay: Layout) -> dict:
    """The generated local_settings.py, executed as Django imports it."""
    configs.write_configs(lay)
    text = lay.conf_file("horizon").read_text()
    ast.parse(text)  # valid Python
    found: dict = {}
    exec(compile(text, "local_settings.py", "exec"), {}, found)  # noqa: S102 - our own generated file
    return found


def test_the_settings_point_the_dashboard_at_this_deployment(dep):
    d = deployment(dep)
    lay = layout(d)
    s = settings_module(lay)
    ks = d.services.enabled()["keystone"].port
    assert s["OPENSTACK_KEYSTONE_URL"] == f"http://127.0.0.1:{ks}/v3"  # HAProxy's, not keystone's own port
    assert s["CACHES"]["default"]["LOCATION"] == f"127.0.0.1:{d.services.backing.memcached.port}"
    assert s["SESSION_ENGINE"] == "django.contrib.sessions.backends.cache"
    assert s["SECRET_KEY"] == "secret-horizon_secret_key" and s["DEBUG"] is False
    assert s["DEFAULT_SERVICE_REGIONS"] == {"*": "RegionOne"}
    assert "127.0.0.1" in s["ALLOWED_HOSTS"] and "*" not in s["ALLOWED_HOSTS"]
    port = d.services.enabled()["horizon"].port
    assert f"http://127.0.0.1:{port}" in s["CSRF_TRUSTED_ORIGINS"] and url(d) == f"http://127.0.0.1:{port}/"
    assert s["STATIC_ROOT"] == str(lay.data("horizon") / "static") and s["COMPRESS_OFFLINE"] is True
    assert "SECURE_PROXY_SSL_HEADER" not in s
    # horizon imports `local.local_settings`: a package in the config folder, which is on its PYTHONPATH
    assert (lay.etc("horizon") / "local" / "__init__.py").is_file()
    assert lay.conf_file("horizon") == lay.etc("horizon") / "local" / "local_settings.py"
    assert (lay.conf_file("horizon").stat().st_mode & 0o077) == 0  # it holds the secret key


def test_with_tls_the_dashboard_trusts_the_ca_and_haproxy_says_https(dep):
    d = deployment(dep, tls=True)
    s = settings_module(layout(d))
    assert s["OPENSTACK_KEYSTONE_URL"].startswith("https://")
    assert s["OPENSTACK_SSL_CACERT"].endswith("/data/tls/ca.crt")
    assert s["SECURE_PROXY_SSL_HEADER"] == ("HTTP_X_FORWARDED_PROTO", "https")
    assert s["SESSION_COOKIE_SECURE"] and s["CSRF_COOKIE_SECURE"]
    assert all(o.startswith("https://") for o in s["CSRF_TRUSTED_ORIGINS"])
    assert backing.haproxy_config(d).count("http-request set-header X-Forwarded-Proto https") == len(
        d.services.enabled())
    assert "X-Forwarded-Proto" not in backing.haproxy_config(deployment(dep, tls=False))


def test_overrides_are_settings_and_win(dep):
    d = deployment(dep, overrides={"horizon": {"local_settings": {
        "TIME_ZONE": "Europe/Paris", "SESSION_TIMEOUT": 600, "OPENSTACK_NEUTRON_NETWORK": {"enable_router": False}}}})
    options.check(d, Timer(UI(quiet=True)), run=lambda *a, **k: pytest.fail("no probe for Django settings"))
    s = settings_module(layout(d))
    assert s["TIME_ZONE"] == "Europe/Paris"  # over stackcrate's own UTC
    assert s["SESSION_TIMEOUT"] == 600 and s["OPENSTACK_NEUTRON_NETWORK"] == {"enable_router": False}


def test_a_bad_dashboard_override_names_its_line_and_field(dep):
    import datetime

    d = deployment(dep, overrides={"horizon": {"DEFAULT": {"debug": True}, "local_settings": {
        "debug": True, "SINCE": datetime.date(2026, 1, 1), "LIMIT": float("inf")}}})
    with pytest.raises(StackcrateError) as e:
        options.check(d, Timer(UI(quiet=True)))
    msg = str(e.value)
    assert e.value.exit_code == 2 and "4 config override(s)" in msg
    assert "overrides.horizon.local_settings.SINCE: a date is not a value a settings module can hold" in msg
    assert "overrides.horizon.local_settings.LIMIT: a float is not a value" in msg
    assert "overrides.horizon.DEFAULT: horizon has no section [DEFAULT]: its only one is [local_settings]" in msg
    assert "overrides.horizon.local_settings.debug: 'debug' is not a Django setting's name" in msg
    assert "configuration.yaml:" in msg


class Recorder:
    """A runner that records the management commands it is given (and succeeds)."""

    def __init__(self):
        self.calls: list[tuple[str, ...]] = []

    def run(self, call, timeout=None, check=True):
        from types import SimpleNamespace

        self.calls += [(Path(argv[0]).name, *argv[1:]) for argv in one_interpreter.argvs(call)]
        return SimpleNamespace(returncode=0, stdout="", stderr="")


def synced_once(dep) -> tuple[Deployment, Layout, "Recorder"]:
    """The example deployment with its config files written and horizon's init steps run once (recorded)."""
    d = deployment(dep)
    lay = layout(d)
    configs.write_configs(lay)
    runner = Recorder()
    bootstrap.sync(lay, "horizon", runner)
    return d, lay, runner


def test_static_files_are_made_again_only_when_the_venv_or_a_setting_changes(dep):
    d, lay, runner = synced_once(dep)
    assert [c[:2] for c in runner.calls] == [("django-admin", "collectstatic"), ("django-admin", "compress")]
    bootstrap.sync(lay, "horizon", runner)
    assert len(runner.calls) == 2  # nothing changed: nothing run
    rotated = Layout(d, lay.venvs, {**lay.secrets, "horizon_secret_key": "another"})
    configs.write_configs(rotated)  # a new secret key: the static files stay as they are
    bootstrap.sync(rotated, "horizon", runner)
    assert len(runner.calls) == 2
    assert "SECRET_KEY" not in json.loads((lay.etc("horizon") / HORIZON_STATIC).read_text())
    d2 = deployment(dep, overrides={"horizon": {"local_settings": {"COMPRESS_ENABLED": False}}})
    configs.write_configs(layout(d2))  # any other setting: made again
    bootstrap.sync(layout(d2), "horizon", runner)
    assert len(runner.calls) == 4
    other = Layout(d2, {**layout(d2).venvs, "horizon": "/opt/openstack/horizon-2"}, layout(d2).secrets)
    bootstrap.sync(other, "horizon", runner)  # a new venv (an upgrade)
    assert len(runner.calls) == 6


def test_compress_runs_again_whenever_collectstatic_did(dep):
    """collectstatic --clear removes what compress made: compress must follow it even when its stamp matches."""
    d, lay, runner = synced_once(dep)
    collect = SERVICES["horizon"].sync[0]
    stamp, _ = bootstrap._stamp(lay, "horizon", collect, bootstrap.command_argv(lay, "horizon", collect)[0])
    stamp.unlink()  # collectstatic's stamp lost (compress's still matches)
    shutil.rmtree(d.cache.dir("made-files"))  # and no copy of their files in the cache: they run
    bootstrap.sync(lay, "horizon", runner)
    assert [c[:2] for c in runner.calls[2:]] == [("django-admin", "collectstatic"), ("django-admin", "compress")]
    for stamp in (lay.data("horizon") / ".done").iterdir():
        stamp.unlink()
    shutil.rmtree(d.cache.dir("made-files"))
    bootstrap.sync(lay, "horizon", runner)  # both gone: both run, in order
    assert [c[:2] for c in runner.calls[-2:]] == [("django-admin", "collectstatic"), ("django-admin", "compress")]


class Collecting(Recorder):
    """A runner whose django-admin makes files as collectstatic and compress would (in one call or two)."""

    def __init__(self, static: Path):
        super().__init__()
        self.static = static

    def run(self, call, timeout=None, check=True):
        for argv in one_interpreter.argvs(call):
            if "collectstatic" in argv:
                self.static.mkdir(parents=True, exist_ok=True)
                (self.static / "app.css").write_text("collected")
            if "compress" in argv:
                (self.static / "CACHE").mkdir()
                (self.static / "CACHE" / "output.css").write_text("compressed")
        return super().run(call)


def test_static_files_made_once_are_copied_from_the_cache_when_the_same_venv_and_settings_come_again(dep):
    d = deployment(dep)
    lay = layout(d)
    configs.write_configs(lay)
    runner = Collecting(lay.data("horizon") / "static")
    bootstrap.sync(lay, "horizon", runner)
    assert len(runner.calls) == 2
    shutil.rmtree(d.state / "data")  # `rm --purge`, then a new deployment of the same artifacts
    configs.write_configs(lay)
    bootstrap.sync(lay, "horizon", runner)
    assert len(runner.calls) == 2  # nothing run: copied from the cache, stamps written
    assert (lay.data("horizon") / "static" / "CACHE" / "output.css").read_text() == "compressed"
    bootstrap.sync(lay, "horizon", runner)
    assert len(runner.calls) == 2
    d2 = deployment(dep, overrides={"horizon": {"local_settings": {"COMPRESS_ENABLED": False}}})
    configs.write_configs(layout(d2))  # another setting: made again
    shutil.rmtree(lay.data("horizon") / "static")
    bootstrap.sync(layout(d2), "horizon", runner)
    assert len(runner.calls) == 4


def test_static_files_from_the_cache_are_links_and_a_command_run_again_never_writes_into_the_caches(dep):
    d = deployment(dep)
    lay = layout(d)
    configs.write_configs(lay)
    static = lay.data("horizon") / "static"
    runner = Collecting(static)
    bootstrap.sync(lay, "horizon", runner)
    shutil.rmtree(d.state / "data")  # a deployment made anew: its files linked from the cache, none copied
    configs.write_configs(lay)
    bootstrap.sync(lay, "horizon", runner)
    (kept,) = d.cache.dir("made-files").rglob("app.css")
    assert (static / "app.css").stat().st_ino == kept.stat().st_ino and len(runner.calls) == 2

    class InPlace(Recorder):  # a command that rewrites a file where it is (the worst a command could do)
        def run(self, call, timeout=None, check=True):
            (static / "app.css").write_text("changed in place")
            return super().run(call)

    compress = SERVICES["horizon"].sync[1]
    stamp, _ = bootstrap._stamp(lay, "horizon", compress, bootstrap.command_argv(lay, "horizon", compress)[0])
    stamp.unlink()  # compress's stamp lost (collectstatic's still matches)
    bootstrap.sync(lay, "horizon", InPlace())  # compress alone, on the files collectstatic made
    assert kept.read_text() == "collected"  # the cache's file as it was
    assert (static / "app.css").read_text() == "changed in place"
    assert (static / "app.css").stat().st_ino != kept.stat().st_ino


def test_a_failed_static_step_is_run_again_at_the_next_init(dep):
    from types import SimpleNamespace

    d = deployment(dep)
    lay = layout(d)
    configs.write_configs(lay)

    class Failing(Recorder):
        def run(self, call, timeout=None, check=True):
            super().run(call)
            # what one_interpreter's batch prints when its first command fails
            return SimpleNamespace(returncode=1, stdout="", stderr="CommandError: boom\nstackcrate: command 0 exited 1")

    with pytest.raises(StackcrateError, match="horizon: `django-admin collectstatic --noinput --clear` failed"):
        bootstrap.sync(lay, "horizon", Failing())
    runner = Recorder()
    bootstrap.sync(lay, "horizon", runner)
    assert len(runner.calls) == 2


LOGIN_PAGE = """<html><body>
<form action="/search/" method="get"><input name="q" value="x"></form>
<form id="" class="ng-pristine" action="/auth/login/" method="POST">
  <input type="hidden" name="csrfmiddlewaretoken" value="tok123">
  <input type="hidden" name="fake_email" value="" />
  <input type="hidden" name="region" value="default" id="id_region">
  <input type="text" name="username" autofocus="autofocus" id="id_username">
  <input type="password" name="password" id="id_password">
  <button type="submit" id="loginBtn">Sign In</button>
</form></body></html>"""


def test_the_login_form_is_read_as_a_browser_sends_it():
    assert form_fields(LOGIN_PAGE, "auth/login/") == {"csrfmiddlewaretoken": "tok123", "fake_email": "",
                                                      "region": "default", "username": "", "password": ""}
    with pytest.raises(StackcrateError, match="no form posting to auth/logout/"):
        form_fields(LOGIN_PAGE, "auth/logout/")
    assert on_login_page("http://127.0.0.1:28080/auth/login/?next=/project/")
    assert not on_login_page("http://127.0.0.1:28080/project/")


def test_the_dashboard_needs_no_database_user_or_catalog_entry(dep):
    d = deployment(dep)
    assert SERVICES["horizon"].catalog is None  # keystone_api registers no service user or endpoint for it
    assert "" not in bootstrap.databases(d) and "horizon" in d.services.enabled()
    assert "horizon" not in bootstrap.db_sql(d, {f"db_{u}": "x" for u in bootstrap.databases(d)})


def test_a_rollback_makes_the_old_releases_files_again_and_touches_no_database(dep):
    d, lay, runner = synced_once(dep)
    old = Layout(d, {**lay.venvs, "horizon": "/opt/openstack/horizon-0"}, lay.secrets)  # the release rolled back to
    bootstrap.sync(old, "horizon", runner, files_only=True)
    assert [c[:2] for c in runner.calls[2:]] == [("django-admin", "collectstatic"), ("django-admin", "compress")]
    bootstrap.sync(layout(d), "nova", runner, files_only=True)  # nova has no such files: no command, no SQL
    assert len(runner.calls) == 4
