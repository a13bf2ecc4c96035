"""Init's steps from the table: a command whose work the database says is done is not run again."""

from __future__ import annotations

import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest

from stackcrate import tools
from stackcrate.cache import Cache
from stackcrate.deploy import bootstrap, one_interpreter, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.openstack import SERVICES, Command
from stackcrate.errors import StackcrateError


class Database:
    """A runner answering the SQL it is given as `mariadb -N -B` would from `cells` (None: a new cloud, where
    nova_api has no tables yet), recording the commands it runs and the SQL that changes rows."""

    def __init__(self, cells: list[str] | None):
        self.cells, self.calls, self.processes = cells, [], 0

    def run(self, call, timeout=None, check=True):
        if Path(call.program).name == "mariadb":
            asked = call.input or ""
            if "stackcrate_schema_loading" in asked:  # schemas.fresh: tables and unfinished loads; the server
                return SimpleNamespace(returncode=0, stdout=f"{0 if self.cells is None else 40}\t0\n10.11.6\n",
                                       stderr="")
            if "information_schema.tables" in asked:
                return SimpleNamespace(returncode=0, stdout="0" if self.cells is None else "1", stderr="")
            if self.cells is None:
                raise tools.ToolFailed(["mariadb"], 1, "", "ERROR 1146 (42S02) at line 1: Table "
                                       "'nova_api.cell_mappings' doesn't exist")
            if asked.startswith(("UPDATE", "DELETE")):
                self.calls.append("fix cells")
            out = "\n".join(self.cells) if "SELECT uuid FROM nova_api.cell_mappings" in asked else ""
            return SimpleNamespace(returncode=0, stdout=out, stderr="")
        if Path(call.program).name == "mariadb-dump":  # schemas.keep, after a new cloud's migrations
            return SimpleNamespace(returncode=0, stdout="-- tables\n", stderr="")
        self.processes += 1
        self.calls += [" ".join(argv[3:5]) for argv in one_interpreter.argvs(call)]
        return SimpleNamespace(returncode=0, stdout="", stderr="")


def nova_layout(dep) -> Layout:
    """The deployment, with a cache of its own holding no kept schema (test_schemas.py tests those)."""
    d = Deployment(dep["services"], dep["config"], cache=Cache(Path(tempfile.mkdtemp(dir=dep["dir"]))))
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


def test_a_new_cloud_has_no_cells_to_fix_and_nova_manage_migrates_in_one_interpreter_then_creates_the_cell(dep):
    """nova_api's tables do not exist before `api_db sync`: the cell fixes are skipped, create_cell's check
    answers "not done", and the four nova-manage commands run in the table's order: the three migrations in one
    interpreter, then (once their databases were dumped into the cache: schemas.py) create_cell in another."""
    new = Database(None)
    assert bootstrap.sync(nova_layout(dep), "nova", new) == "schema kept"
    assert new.calls == ["api_db sync", "cell_v2 map_cell0", "db sync", "cell_v2 create_cell"]
    assert new.processes == 2
    old = Database(["95a8f6c8-37f6-4e65-84f9-e5aee7c6e89a"])  # an older stackcrate's cloud: cells fixed first
    bootstrap.sync(nova_layout(dep), "nova", old)
    assert old.calls == ["fix cells", "api_db sync", "cell_v2 map_cell0", "db sync"]


class Loaded:
    """nova-manage loaded once (warm_program.WarmProgram's interface): records the commands its children run;
    `exits` gives some a status."""

    def __init__(self, program: str, exits: dict[str, int] | None = None):
        self.program, self.exits, self.calls = program, exits or {}, []

    def run(self, argv, env=None, input=None, timeout=300, check=True):
        command = " ".join(argv[3:5])
        self.calls.append(command)
        status = self.exits.get(command, 0)
        return tools.CompletedProcess(list(argv), status, "", f"{command} said why" if status else "")


def test_nova_manage_loaded_for_the_mapping_runs_the_migrations_first_and_the_first_failure_stops_them(dep):
    """init loads nova-manage as nova's migrations begin and keeps it for the compute host's mapping: each
    command runs in a child of it, in the table's order, none in a batch of its own; create_cell's "exists"
    (2) is a success; a failed command raises naming it and its output, and the ones after it do not run."""
    lay = nova_layout(dep)
    new, loaded = Database(None), Loaded(str(lay.bin("nova", "nova-manage")), {"cell_v2 create_cell": 2})
    bootstrap.sync(lay, "nova", new, warm=loaded)
    assert loaded.calls == ["api_db sync", "cell_v2 map_cell0", "db sync", "cell_v2 create_cell"]
    assert new.processes == 0
    failing = Loaded(str(lay.bin("nova", "nova-manage")), {"db sync": 1})
    with pytest.raises(StackcrateError) as exc:
        bootstrap.sync(nova_layout(dep), "nova", Database(None), warm=failing)
    assert failing.calls == ["api_db sync", "cell_v2 map_cell0", "db sync"]
    assert "`nova-manage db sync` failed (exit 1)" in str(exc.value) and "db sync said why" in str(exc.value)
    other = Loaded("/opt/openstack/nova-1/bin/nova-status")  # not the commands' program: they run as before
    bootstrap.sync(nova_layout(dep), "nova", fallback := Database(None), warm=other)
    assert other.calls == [] and fallback.processes == 2  # the migrations, then (after the dump) create_cell
