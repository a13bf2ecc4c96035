"""Init's steps from the table: a command whose work the database says is done is not run again."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

from stackcrate.deploy import bootstrap, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.openstack import SERVICES, Command


class Database:
    """A runner answering the SQL it is given from `cells` (as `mariadb -N -B` prints), recording the rest."""

    def __init__(self, cells: list[str]):
        self.cells, self.calls = cells, []

    def run(self, call, timeout=None, check=True):
        if Path(call.program).name == "mariadb":
            asked = call.input or ""
            out = "\n".join(self.cells) if "SELECT uuid FROM nova_api.cell_mappings" in asked else ""
            return SimpleNamespace(returncode=0, stdout=out, stderr="")
        self.calls.append(" ".join(call.args[2:4]))
        return SimpleNamespace(returncode=0, stdout="", stderr="")


def test_cell1_is_created_once_whatever_nova_manage_would_say(dep):
    d = Deployment(dep["services"], dep["config"])
    lay = Layout(d, {s.component: f"/opt/openstack/{s.component}-1" for s in d.services.enabled().values()},
                 dict.fromkeys(secrets.NAMES, "x"))
    first = Database([])
    bootstrap.sync(lay, "nova", first)
    assert "cell_v2 create_cell" in first.calls
    again = Database(["95a8f6c8-37f6-4e65-84f9-e5aee7c6e89a"])
    bootstrap.sync(lay, "nova", again)
    assert "cell_v2 create_cell" not in again.calls and "db sync" in again.calls
    create = next(c for c in SERVICES["nova"].sync if isinstance(c, Command) and "create_cell" in c.args)
    assert create.unless_sql and "cell1" in create.unless_sql
