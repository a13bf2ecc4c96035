"""Init's steps from the table: a command whose work the database says is done is not run again."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from stackcrate import tools
from stackcrate.deploy import bootstrap, one_interpreter, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.openstack import SERVICES, Command


class Database:
    """A runner answering the SQL it is given as `mariadb -N -B` would from `cells` (None: a new cloud, where
    nova_api has no tables yet), recording the commands it runs and the SQL that changes rows."""

    def __init__(self, cells: list[str] | None):
        self.cells, self.calls, self.processes = cells, [], 0

    def run(self, call, timeout=None, check=True):
        if Path(call.program).name == "mariadb":
            asked = call.input or ""
            if "information_schema.tables" in asked:
                return SimpleNamespace(returncode=0, stdout="0" if self.cells is None else "1", stderr="")
            if self.cells is None:
                raise tools.ToolFailed(["mariadb"], 1, "", "ERROR 1146 (42S02) at line 1: Table "
                                       "'nova_api.cell_mappings' doesn't exist")
            if asked.startswith(("UPDATE", "DELETE")):
                self.calls.append("fix cells")
            out = "\n".join(self.cells) if "SELECT uuid FROM nova_api.cell_mappings" in asked else ""
            return SimpleNamespace(returncode=0, stdout=out, stderr="")
        self.processes += 1
        self.calls += [" ".join(argv[3:5]) for argv in one_interpreter.argvs(call)]
        return SimpleNamespace(returncode=0, stdout="", stderr="")


def nova_layout(dep) -> Layout:
    d = Deployment(dep["services"], dep["config"])
    return Layout(d, {s.component: f"/opt/openstack/{s.component}-1" for s in d.services.enabled().values()},
                  dict.fromkeys(secrets.NAMES, "x"))


def test_cell1_is_created_once_whatever_nova_manage_would_say(dep):
    lay = nova_layout(dep)
    first = Database([])
    bootstrap.sync(lay, "nova", first)
    assert "cell_v2 create_cell" in first.calls
    again = Database(["95a8f6c8-37f6-4e65-84f9-e5aee7c6e89a"])
    bootstrap.sync(lay, "nova", again)
    assert "cell_v2 create_cell" not in again.calls and "db sync" in again.calls
    create = next(c for c in SERVICES["nova"].sync if isinstance(c, Command) and "create_cell" in c.args)
    assert create.unless_sql and "cell1" in create.unless_sql


def test_a_new_cloud_has_no_cells_to_fix_and_nova_manage_runs_once_for_all_its_commands(dep):
    """nova_api's tables do not exist before `api_db sync`: the cell fixes are skipped, create_cell's check
    answers "not done", and the four nova-manage commands run in one interpreter, in the table's order."""
    new = Database(None)
    bootstrap.sync(nova_layout(dep), "nova", new)
    assert new.calls == ["api_db sync", "cell_v2 map_cell0", "db sync", "cell_v2 create_cell"]
    assert new.processes == 1
    old = Database(["95a8f6c8-37f6-4e65-84f9-e5aee7c6e89a"])  # an older stackcrate's cloud: cells fixed first
    bootstrap.sync(nova_layout(dep), "nova", old)
    assert old.calls == ["fix cells", "api_db sync", "cell_v2 map_cell0", "db sync"]
