"""Config overrides checked against the services' options (deploy/options.py), without a real venv: a fake runner
answers in place of option_probe.py, whose own logic is tested with stand-in oslo.config options."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from stackcrate.cache import Cache
from stackcrate.deploy import option_probe, options, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.configs import configs
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.openstack import SERVICES
from stackcrate.deploy.timer import Timer
from stackcrate.errors import StackcrateError
from stackcrate.model.artifacts import ArtifactIndex
from stackcrate.tools import ToolFailed
from stackcrate.ui import UI


class FakeProbe:
    """Stands in for tools.run of option_probe.py: records each request, answers with the given problems."""

    def __init__(self, problems: list[dict] | None = None, stdout: str | None = None):
        self.problems = problems or []
        self.stdout = stdout
        self.requests: list[dict] = []

    def __call__(self, argv, *, input, timeout):
        assert argv[1:] == ["-I", str(options.PROBE)] and timeout
        self.requests.append(json.loads(input))
        out = self.stdout if self.stdout is not None else json.dumps({"problems": self.problems, "unloadable": {}})
        return subprocess.CompletedProcess(argv, 0, "noise an imported module printed\n" + out, "")


def problem(section, option, kind, known=(), reason="", type_=None, secret=False) -> dict:
    return {"section": section, "option": option, "kind": kind, "known": list(known), "reason": reason,
            "type": type_, "secret": secret}


def never(*args, **kw):
    raise AssertionError("the probe must not run")


@pytest.fixture
def deployment(dep, tmp_path):
    """dep with its artifacts' venvs under tmp_path (a bin/python that exists, never run) and its own cache."""
    index = ArtifactIndex.load(dep["dist"])
    index.artifacts = [a.model_copy(update={"install_path": str(tmp_path / "opt" / a.component)})
                       for a in index.artifacts]
    index.write(dep["dist"])
    for a in index.artifacts:
        (Path(a.install_path) / "bin").mkdir(parents=True, exist_ok=True)
        (Path(a.install_path) / "bin" / "python").touch()

    def make(overrides: dict) -> Deployment:
        conf = yaml.safe_load(dep["config"].read_text())
        conf["overrides"] = overrides
        dep["config"].write_text(yaml.safe_dump(conf, sort_keys=False))
        return Deployment(dep["services"], dep["config"], cache=Cache(tmp_path / "cache"))
    return make


def timer() -> Timer:
    return Timer(UI(quiet=True))


def test_no_override_runs_no_probe(deployment):
    options.check(deployment({}), timer(), run=never)
    options.check(deployment({"nova": {}}), timer(), run=never)


def test_override_of_a_service_not_deployed_runs_no_probe(deployment, dep):
    services = yaml.safe_load(dep["services"].read_text())
    del services["services"]["nova"]
    dep["services"].write_text(yaml.safe_dump(services))
    options.check(deployment({"nova": {"DEFAULT": {"debug": "maybe"}}}), timer(), run=never)


def test_values_reach_the_probe_as_the_ini_file_holds_them(deployment):
    probe = FakeProbe()
    options.check(deployment({"nova": {"DEFAULT": {"debug": True, "workers": 4, "host": "h", "ratio": 1.5}}}),
                  timer(), run=probe)
    assert probe.requests == [{"sections": {"DEFAULT": {"debug": "true", "workers": "4", "host": "h",
                                                        "ratio": "1.5"}}, "aliases": {}}]


def test_glance_backend_sections_are_aliases_of_glance_store(deployment):
    probe = FakeProbe()
    options.check(deployment({"glance": {"fs": {"filesystem_store_datadir": "/srv"}}}), timer(), run=probe)
    assert probe.requests[0]["aliases"] == {"fs": "glance_store", "os_glance_staging_store": "glance_store",
                                            "os_glance_tasks_store": "glance_store"}


def test_every_glance_store_section_stackcrate_writes_is_an_alias(deployment):
    d = deployment({})
    lay = Layout(d, {s.component: f"/opt/{s.component}" for s in d.services.enabled().values()},
                 dict.fromkeys(secrets.NAMES, "x"))
    glance = configs(lay)["glance"]
    backends = [b.split(":")[0] for b in glance["DEFAULT"]["enabled_backends"].split(",")]
    aliases = dict(SERVICES["glance"].section_aliases)
    assert set(backends) <= set(aliases)
    assert {s for s in glance if s.startswith("os_glance_")} <= set(aliases)


def test_every_problem_names_line_field_and_what_is_wrong_all_at_once(deployment, dep):
    probe = FakeProbe([
        problem("DEFAULT", "debug", "value", reason="Unexpected boolean value 'maybe'", type_="boolean value"),
        problem("DEFAULT", "no_such_option", "option", known=["debug", "host", "log_options"]),
        problem("no_such_section", None, "section", known=["DEFAULT", "database", "glance"]),
    ])
    with pytest.raises(StackcrateError) as e:
        options.check(deployment({"nova": {"DEFAULT": {"debug": "maybe", "no_such_option": 42},
                                           "no_such_section": {"a": 1}}}), timer(), run=probe)
    text = dep["config"].read_text().splitlines()

    def line(word: str) -> int:
        return next(i for i, ln in enumerate(text, 1) if word in ln)

    msg = str(e.value)
    assert e.value.exit_code == 2
    assert "3 config override(s)" in msg
    assert (f"configuration.yaml:{line('debug: maybe')}: overrides.nova.DEFAULT.debug: 'maybe' is not a valid "
            "boolean value for [DEFAULT] debug: Unexpected boolean value 'maybe'") in msg
    assert (f"configuration.yaml:{line('no_such_option')}: overrides.nova.DEFAULT.no_such_option: nova has no "
            "option 'no_such_option' in [DEFAULT]; did you mean log_options?") in msg
    assert (f"configuration.yaml:{line('no_such_section')}: overrides.nova.no_such_section: nova has no section "
            "[no_such_section]") in msg
    assert "nothing of the deployment was written" in msg


def test_a_deprecated_override_is_a_warning_naming_its_line_and_the_name_to_write(deployment, dep, capsys):
    probe = FakeProbe([problem("keystone_authtoken", "memcache_servers", "deprecated",
                               known=["[keystone_authtoken] memcached_servers"],
                               reason="a deprecated name of [keystone_authtoken] memcached_servers"),
                       problem("DEFAULT", "api_paste_config", "deprecated",
                               reason="deprecated for removal: the WSGI server is gone")])
    options.check(deployment({"nova": {"keystone_authtoken": {"memcache_servers": "a:1"},
                                       "DEFAULT": {"api_paste_config": "/x"}}}), timer(), run=probe)
    def squeezed(text: str) -> str:  # rich wraps long lines, anywhere
        return "".join(text.split())

    err = squeezed(capsys.readouterr().err)
    text = dep["config"].read_text().splitlines()
    line = next(i for i, ln in enumerate(text, 1) if "memcache_servers" in ln)
    assert squeezed(f"warning: {dep['config']}:{line}: overrides.nova.keystone_authtoken.memcache_servers: nova "
                    "reads it, but as a deprecated name of [keystone_authtoken] memcached_servers: write that one "
                    "instead") in err
    assert squeezed("overrides.nova.DEFAULT.api_paste_config: nova reads it, but it is deprecated for removal: the "
                    "WSGI server is gone") in err


def test_a_refusal_lists_the_refused_overrides_and_not_the_deprecated_ones(deployment):
    probe = FakeProbe([problem("keystone_authtoken", "memcache_servers", "deprecated",
                               known=["[keystone_authtoken] memcached_servers"], reason="a deprecated name of x"),
                       problem("DEFAULT", "debgu", "option", known=["debug"])])
    with pytest.raises(StackcrateError) as e:
        options.check(deployment({"nova": {"keystone_authtoken": {"memcache_servers": "a:1"},
                                           "DEFAULT": {"debgu": True}}}), timer(), run=probe)
    assert "1 config override(s)" in str(e.value) and "debgu" in str(e.value)
    assert "memcache_servers" not in str(e.value)


def test_section_suggestions_ignore_case():
    p = options.Problem("nova", "default", None, "section", known=("DEFAULT", "database", "glance"))
    assert p.message() == "nova has no section [default]; did you mean [DEFAULT]?"


def test_no_suggestion_when_nothing_is_close():
    p = options.Problem("nova", "DEFAULT", "zzz", "option", known=("debug", "host"))
    assert p.message() == "nova has no option 'zzz' in [DEFAULT]"


def test_a_secret_value_is_never_shown():
    p = options.Problem("nova", "keystone_authtoken", "password", "value", "hunter2", "Valid values are [a], "
                        "but found 'hunter2'", "string value", secret=True)
    assert "hunter2" not in p.message() and "secret" in p.message()


def test_a_list_or_a_null_is_no_ini_value(deployment):
    probe = FakeProbe()
    with pytest.raises(StackcrateError) as e:
        options.check(deployment({"nova": {"DEFAULT": {"host": ["a", "b"], "my_ip": None}}}), timer(), run=probe)
    assert "overrides.nova.DEFAULT.host: a list is not an ini value" in str(e.value)
    assert "overrides.nova.DEFAULT.my_ip: no value: write ''" in str(e.value)
    # the option names are still checked by the service's venv, the values not
    assert probe.requests[0]["sections"] == {"DEFAULT": {"host": None, "my_ip": None}}


def test_a_verdict_is_cached_by_artifact_and_overrides(deployment, dep, tmp_path):
    d = deployment({"nova": {"DEFAULT": {"debug": True}}})
    probe = FakeProbe()
    options.check(d, timer(), run=probe)
    options.check(d, timer(), run=probe)
    assert len(probe.requests) == 1  # the second start costs nothing
    options.check(deployment({"nova": {"DEFAULT": {"debug": False}}}), timer(), run=probe)
    assert len(probe.requests) == 2  # other overrides: checked anew
    index = ArtifactIndex.load(dep["dist"])
    index.artifacts = [a.model_copy(update={"sha256": "1" * 64}) if a.component == "nova" else a
                       for a in index.artifacts]
    index.write(dep["dist"])
    options.check(deployment({"nova": {"DEFAULT": {"debug": False}}}), timer(), run=probe)
    assert len(probe.requests) == 3  # another venv of nova: checked anew


def test_a_refusal_is_cached_too(deployment):
    d = deployment({"nova": {"DEFAULT": {"debug": "maybe"}}})
    probe = FakeProbe([problem("DEFAULT", "debug", "value", reason="no", type_="boolean value")])
    for _ in range(2):
        with pytest.raises(StackcrateError, match="overrides.nova.DEFAULT.debug"):
            options.check(d, timer(), run=probe)
    assert len(probe.requests) == 1


def test_probe_that_fails_names_the_service_and_is_not_cached(deployment):
    d = deployment({"nova": {"DEFAULT": {"debug": True}}})

    def broken(argv, **kw):
        raise ToolFailed(argv, 1, "", "ImportError: oslo_config")
    with pytest.raises(StackcrateError, match="could not read the config options of nova") as e:
        options.check(d, timer(), run=broken)
    assert "ImportError: oslo_config" in str(e.value) and "reinstall" in str(e.value)
    probe = FakeProbe()
    options.check(d, timer(), run=probe)
    assert len(probe.requests) == 1


def test_probe_answer_that_is_no_json_is_an_error(deployment):
    with pytest.raises(StackcrateError, match="the option check of nova gave no answer"):
        options.check(deployment({"nova": {"DEFAULT": {"debug": True}}}), timer(), run=FakeProbe(stdout=""))


def test_service_not_installed(deployment, tmp_path):
    (tmp_path / "opt" / "nova" / "bin" / "python").unlink()
    with pytest.raises(StackcrateError, match="nova is not installed at"):
        options.check(deployment({"nova": {"DEFAULT": {"debug": True}}}), timer(), run=never)


# ---------------------------------------------------------------------------------------------- option_probe.py

def opt(dest: str, kind=str, deprecated=(), secret=False, removal: str | None = None):
    """A stand-in for an oslo.config Opt: what option_probe.py reads of one (removal: the deprecated_reason of
    an option deprecated for removal)."""
    return SimpleNamespace(dest=dest, type=kind, secret=secret,
                           deprecated_opts=[SimpleNamespace(name=n, group=g) for n, g in deprecated],
                           deprecated_for_removal=removal is not None, deprecated_reason=removal)


def boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(f"Unexpected boolean value {text!r}")
    return text == "true"


def groups(*entries) -> dict:
    out: dict = {}
    for group, o in entries:
        option_probe.add(out, group, o)
    return out


def test_probe_takes_deprecated_names_and_groups_and_names_the_option_to_write_instead():
    known = groups(("database", opt("connection", deprecated=[("sql_connection", "DEFAULT"), (None, "sql")])))
    found = option_probe.check({"DEFAULT": {"sql_connection": "x"}, "SQL": {"connection": "x"},
                                "Database": {"connection": "x"}}, {}, known)
    assert [(p["section"], p["option"], p["kind"], p["known"], p["reason"]) for p in found] == [
        ("DEFAULT", "sql_connection", "deprecated", ["[database] connection"],
         "a deprecated name of [database] connection"),
        ("SQL", "connection", "deprecated", ["[database] connection"], "a deprecated name of [database] connection")]


def test_probe_reports_an_option_deprecated_for_removal_with_its_reason():
    known = groups(("DEFAULT", opt("api_paste_config", removal="The WSGI server\n  is gone.")), ("DEFAULT", opt("x")))
    assert [(p["option"], p["kind"], p["reason"]) for p in option_probe.check(
        {"DEFAULT": {"api_paste_config": "/p", "x": "1"}}, {}, known)] == [
        ("api_paste_config", "deprecated", "deprecated for removal: The WSGI server is gone.")]


def test_probe_takes_an_options_own_name_over_another_options_deprecated_one():
    for order in ((("ml2", opt("tenant_network_types", deprecated=[("project_network_types", None)])),
                   ("ml2", opt("project_network_types"))),
                  (("ml2", opt("project_network_types")),
                   ("ml2", opt("tenant_network_types", deprecated=[("project_network_types", None)])))):
        assert option_probe.check({"ml2": {"project_network_types": "geneve"}}, {}, groups(*order)) == []


def test_probe_reports_unknown_section_option_and_bad_value():
    known = groups(("DEFAULT", opt("debug", boolean)), ("glance_store", opt("filesystem_store_datadir")))
    found = option_probe.check({"DEFAULT": {"debug": "maybe", "debgu": "true"}, "nope": {"a": "1"},
                                "fs": {"filesystem_store_datadir": "/srv", "x": "1"}}, {"fs": "glance_store"}, known)
    assert [(p["section"], p["option"], p["kind"]) for p in found] == [
        ("DEFAULT", "debug", "value"), ("DEFAULT", "debgu", "option"), ("nope", None, "section"), ("fs", "x", "option")]
    assert found[0]["reason"] == "Unexpected boolean value 'maybe'"
    assert "fs" in found[2]["known"] and "glance_store" in found[2]["known"]


def test_probe_leaves_substituted_and_missing_values_to_the_service():
    known = groups(("DEFAULT", opt("debug", boolean)))
    assert option_probe.check({"DEFAULT": {"debug": "$other"}}, {}, known) == []
    assert option_probe.check({"DEFAULT": {"debug": None}}, {}, known) == []
