"""deploy upgrade / rollback without a cloud: the paths allowed, the switch record, and every refusal a clear
error (exit 2) that changes nothing."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import stackcrate
from stackcrate.deploy import upgrade
from stackcrate.deploy.config import RELEASE, Deployment
from stackcrate.deploy.processes import running_version
from stackcrate.errors import StackcrateError

from .conftest import fake_artifacts
from .test_cli_failures import deploy


@pytest.mark.parametrize("old,new", [("2025.2", "2026.1"), ("2025.1", "2025.2"), ("2025.1", "2026.1")])
def test_adjacent_series_and_slurp_to_slurp_are_upgrade_paths(old, new):
    upgrade.check_path(old, new)


@pytest.mark.parametrize("old,new,says", [("2026.1", "2025.2", "not newer"), ("2026.1", "2026.1", "not newer"),
                                          ("2024.2", "2026.1", "not an upgrade path"),
                                          ("2025.2", "2026.2", "not an upgrade path"),
                                          ("2025.1", "2027.1", "not an upgrade path"),
                                          ("2025.2", "master", "not YEAR.N")])
def test_other_series_pairs_are_refused_with_the_reason(old, new, says):
    with pytest.raises(StackcrateError, match=says):
        upgrade.check_path(old, new)


def test_the_switch_record_names_the_artifacts_a_deployment_runs(dep, tmp_path):
    other = fake_artifacts(tmp_path / "dist-next")
    d = Deployment(dep["services"], dep["config"])
    assert d.artifacts_dir == dep["dist"].resolve()
    (dep["state"] / "data").mkdir(parents=True)
    (dep["state"] / RELEASE).write_text(json.dumps({"artifacts": str(other)}))
    d = Deployment(dep["services"], dep["config"])
    assert d.artifacts_dir == other and d.configured_artifacts == dep["dist"].resolve()
    assert Deployment(dep["services"], dep["config"], artifacts=str(other)).artifacts_dir == other
    with pytest.raises(StackcrateError, match="switched to by `stackcrate deploy upgrade`"):
        Deployment(dep["services"], dep["config"], artifacts=str(dep["dist"]))


@pytest.mark.parametrize("text", ['{"artifacts": "/srv/dist-2026.1"', '{"time": 1}', "[]"])
def test_an_unreadable_switch_record_is_an_error_not_the_configured_artifacts(stackcrate, dep, text):
    (dep["state"] / "data").mkdir(parents=True)
    (dep["state"] / RELEASE).write_text(text)
    res = deploy(stackcrate, dep, "status")
    says = "release.json, the record of the artifacts the deployment runs since `stackcrate deploy upgrade`"
    assert res.returncode == 2 and says in res.stderr and "cannot be read" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr


def test_upgrade_of_a_deployment_never_initialised_is_refused(stackcrate, dep, tmp_path):
    to = fake_artifacts(tmp_path / "dist-next")
    res = deploy(stackcrate, dep, "upgrade", "--to", str(to))
    assert res.returncode == 2 and "is not initialised: there is nothing to upgrade" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not dep["state"].exists()


def test_upgrade_of_a_compute_host_of_several_is_refused(stackcrate, dep, tmp_path):
    import yaml

    conf = yaml.safe_load(dep["config"].read_text())
    conf["node"] = {"name": "node2", "roles": ["compute"], "control_address": "10.99.0.11"}
    dep["config"].write_text(yaml.safe_dump(conf))
    (dep["state"] / "data").mkdir(parents=True)
    (dep["state"] / "data" / "deployment.json").write_text("{}")  # initialised
    before = sorted(dep["state"].rglob("*"))
    res = deploy(stackcrate, dep, "upgrade", "--to", str(fake_artifacts(tmp_path / "dist-next")))
    assert res.returncode == 2 and "is a compute host of several" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and sorted(dep["state"].rglob("*")) == before


def test_upgrade_needs_either_to_or_commit(stackcrate, dep):
    res = deploy(stackcrate, dep, "upgrade")
    assert res.returncode == 2 and "give either --to ARTIFACTS_DIR or --commit" in res.stderr
    res = deploy(stackcrate, dep, "upgrade", "--to", str(dep["dist"]), "--remove-old")
    assert res.returncode == 2 and "--remove-old goes with --commit" in res.stderr


@pytest.mark.parametrize("verb", [("rollback",), ("upgrade", "--commit")])
def test_rollback_and_commit_without_an_upgrade_are_refused(stackcrate, dep, verb):
    res = deploy(stackcrate, dep, *verb)
    assert res.returncode == 2 and "no upgrade of the deployment" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not dep["state"].exists()


def test_an_upgrade_that_failed_cannot_be_committed(dep):
    d = Deployment(dep["services"], dep["config"])
    (dep["state"] / upgrade.FOLDER).mkdir(parents=True)
    rec = {"from": {"series": "2025.2", "artifacts": str(dep["dist"])}, "to": {"series": "2026.1"},
           "phase": "failed", "failed": {"step": "migrations", "error": "x"}}
    (dep["state"] / upgrade.FOLDER / "upgrade.json").write_text(json.dumps(rec))
    with pytest.raises(StackcrateError, match="stopped at migrations"):
        upgrade.commit(d, None, remove_old=False)
    assert "stopped at migrations: `stackcrate deploy rollback`" in upgrade.describe(d)["text"]


@pytest.mark.parametrize("text", ['{"from": {"series": "2025.2"', "[]", '{"phase": "done"}'])
def test_an_unreadable_upgrade_record_is_an_error_not_no_upgrade(stackcrate, dep, text):
    (dep["state"] / upgrade.FOLDER).mkdir(parents=True)
    (dep["state"] / upgrade.FOLDER / "upgrade.json").write_text(text)
    res = deploy(stackcrate, dep, "rollback")
    says = "upgrade.json, the record of the upgrade awaiting commit or rollback, cannot be read"
    assert res.returncode == 2 and says in res.stderr and "snapshot" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and "no upgrade of the deployment" not in res.stderr


def test_only_the_checks_that_did_not_pass_are_shown():
    report = """+--------------------------------+
| Upgrade Check Results          |
+--------------------------------+
| Check: Cells v2                |
| Result: Success                |
| Details: None                  |
+--------------------------------+
| Check: hw_machine_type unset   |
| Result: Warning                |
| Details: Instances found       |
|   without hw_machine_type set. |
+--------------------------------+
"""
    assert upgrade._not_passed(report) == ("  Check: hw_machine_type unset Result: Warning Details: Instances found "
                                           "without hw_machine_type set.")


def test_the_version_a_process_runs_is_read_from_the_venv_its_command_line_names():
    # this test runs from stackcrate's own venv (its interpreter is the first word of the command line)
    assert running_version(os.getpid(), "stackcrate") == stackcrate.__version__
    assert running_version(os.getpid(), "no-such-distribution") is None
    assert running_version(2 ** 22 + 1, "stackcrate") is None  # no such process


def test_status_says_which_release_runs(dep):
    d = Deployment(dep["services"], dep["config"])
    rel = upgrade.describe(d)
    assert rel["series"] == "2026.1" and rel["upgrade"] is None
    assert rel["text"] == f"release: 2026.1 (artifacts in {Path(dep['dist']).resolve()})"
