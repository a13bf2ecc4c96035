"""A new cloud's databases as the migrations leave them, kept in stackcrate's cache and loaded by the next new
cloud of the same venv instead of migrating again; existing databases always migrate themselves."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from stackcrate import tools
from stackcrate.cache import Cache
from stackcrate.deploy import bootstrap, one_interpreter, schemas, secrets
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.layout import Layout
from stackcrate.deploy.openstack import SERVICES, Command, Sql
from stackcrate.errors import StackcrateError

SECRET = "s3cr3t-admin-password-0123"


class Server:
    """A runner standing for MariaDB and the services' commands. A database's content is text: each command
    of a batch appends a line naming itself to every database of its service (what migrating, or keystone's
    bootstrap writing its admin, does); mariadb-dump answers that text, a load sets it. `loading`: the databases
    holding schemas.LOADING (a load cut short); fail_load: the next load stops half-way, as a killed one would."""

    def __init__(self, service: str, tables: dict[str, str] | None = None, version: str = "10.11.6-MariaDB",
                 fail_load: bool = False, writes: str = "", loading: set[str] = frozenset()):
        self.service, self.version, self.fail_load, self.writes = service, version, fail_load, writes
        self.db = dict.fromkeys(SERVICES[service].databases, "") | (tables or {})
        self.loading = set(loading)
        self.commands: list[list[str]] = []  # each process's commands
        self.loads = 0
        self.dead = False  # the server is gone: every SQL fails

    def run(self, call, timeout=None, check=True):
        name = Path(call.program).name
        if name == "mariadb":
            if self.dead:
                raise tools.ToolFailed([name], 1, "", "ERROR 2002 (HY000): Can't connect to local server")
            return self._sql(call.input or "")
        if name == "mariadb-dump":
            return tools.CompletedProcess([name], 0, self.db[call.args[-1]], "")
        batch = [" ".join(argv[3:5]) for argv in one_interpreter.argvs(call)]
        self.commands.append(batch)
        for command in batch:
            for db in self.db:
                self.db[db] += f"-- {command}\n{self.writes}" + \
                    (f"-- admin {SECRET}\n" if command.startswith("bootstrap") else "")
        return tools.CompletedProcess([call.program], 0, "", "")

    def _sql(self, text: str):
        if "information_schema.tables" in text:
            tables = sum(1 for body in self.db.values() if body) + len(self.loading)
            return tools.CompletedProcess(["mariadb"], 0, f"{tables}\t{len(self.loading)}\n{self.version}\tutf8mb4\n",
                                          "")
        if text.startswith("USE `"):
            marker = rf"CREATE TABLE `{schemas.LOADING}` \(id INT\);\n"
            blocks = re.findall(rf"USE `([^`]+)`;\n{marker}(.*?)(?=USE `|DROP TABLE|\Z)", text, re.DOTALL)
            if self.fail_load:
                self.db[blocks[0][0]], self.loading = "-- half of it\n", {blocks[0][0]}
                raise tools.ToolFailed(["mariadb"], 1, "", "ERROR 1064 (42000) at line 7: syntax")
            self.loads += 1
            for db, body in blocks:
                self.db[db] = body
            return tools.CompletedProcess(["mariadb"], 0, "", "")
        for db in re.findall(r"DROP DATABASE IF EXISTS `([^`]+)`", text):
            self.db[db] = ""
            self.loading.discard(db)
        return tools.CompletedProcess(["mariadb"], 0, "", "")


def layout(dep, tmp_path: Path, password: str = SECRET) -> Layout:
    d = Deployment(dep["services"], dep["config"], cache=Cache(tmp_path / "cache"))
    values = {name: f"{name}-{'x' * 20}" for name in secrets.NAMES} | {"admin_password": password}
    return Layout(d, {s.component: f"/opt/openstack/{s.component}-1" for s in d.services.enabled().values()},
                  values)


def test_a_new_cloud_migrates_and_keeps_its_schema_and_the_next_one_loads_it_without_migrating(dep, tmp_path):
    lay = layout(dep, tmp_path)
    first = Server("neutron")
    assert bootstrap.sync(lay, "neutron", first) == "schema kept"
    assert first.commands == [["upgrade heads"]]
    entry = schemas.fresh(lay, "neutron", Server("neutron"))
    assert entry is not None and (entry.entry / "neutron.sql").read_text() == "-- upgrade heads\n"
    assert json.loads((entry.entry / "key.json").read_text())["databases"] == ["neutron"]
    second = Server("neutron")
    assert bootstrap.sync(lay, "neutron", second) == "schema loaded from the cache"
    assert second.commands == [] and second.loads == 1
    assert second.db == first.db


def test_keystone_migrates_apart_from_its_bootstrap_so_the_kept_schema_holds_no_admin(dep, tmp_path):
    """db_sync is keystone's one schema_only command: on a miss it runs in a process of its own and the dump is
    taken before the bootstrap writes the admin (whose password the dump would otherwise carry); on a hit, the
    three other commands still run, in one interpreter."""
    lay = layout(dep, tmp_path)
    first = Server("keystone")
    assert bootstrap.sync(lay, "keystone", first) == "schema kept"
    assert first.commands == [["db_sync"], ["fernet_setup --keystone-user", "credential_setup --keystone-user",
                                            "bootstrap --bootstrap-username"]]
    second = Server("keystone")
    bootstrap.sync(lay, "keystone", second)
    assert second.commands == [first.commands[1]]
    assert second.db == first.db and SECRET in second.db["keystone"]  # the bootstrap ran on the loaded schema


def test_nova_loads_its_three_databases_and_still_creates_its_cell(dep, tmp_path):
    lay = layout(dep, tmp_path)
    bootstrap.sync(lay, "nova", first := Server("nova"))
    assert first.commands == [["api_db sync", "cell_v2 map_cell0", "db sync"], ["cell_v2 create_cell"]]
    bootstrap.sync(lay, "nova", second := Server("nova"))
    assert second.commands == [["cell_v2 create_cell"]] and second.loads == 1
    assert second.db == first.db


def test_databases_holding_tables_migrate_themselves_and_nothing_is_kept(dep, tmp_path):
    lay = layout(dep, tmp_path)
    bootstrap.sync(lay, "neutron", Server("neutron"))  # kept
    existing = Server("neutron", {"neutron": "-- a cloud's own tables\n"})
    assert bootstrap.sync(lay, "neutron", existing) == ""
    assert existing.commands == [["upgrade heads"]] and existing.loads == 0


def test_the_kept_schema_belongs_to_one_artifact_and_one_database_server(dep, tmp_path):
    lay = layout(dep, tmp_path)
    bootstrap.sync(lay, "glance", Server("glance"))
    newer_server = Server("glance", version="11.4.2-MariaDB")
    assert bootstrap.sync(lay, "glance", newer_server) == "schema kept"
    assert newer_server.commands == [["db_sync", "db_load_metadefs /opt/openstack/glance-1/etc/glance/metadefs"]]
    index = json.loads((dep["dist"] / "artifacts.json").read_text())
    for a in index["artifacts"]:
        if a["component"] == "glance":
            a["sha256"] = "1" * 64  # glance rebuilt
    (dep["dist"] / "artifacts.json").write_text(json.dumps(index))
    rebuilt = Server("glance")
    assert bootstrap.sync(layout(dep, tmp_path), "glance", rebuilt) == "schema kept" and rebuilt.commands


def test_a_venv_changed_by_hand_migrates_itself_and_keeps_nothing(dep, tmp_path):
    lay = layout(dep, tmp_path)
    changed = Server("placement")
    assert bootstrap.sync(lay, "placement", changed, kept_schema=False) == ""
    assert changed.commands == [["db sync"]] and not list((tmp_path / "cache").glob("schemas/*/*"))


def test_a_dump_holding_a_secret_is_not_kept(dep, tmp_path):
    lay = layout(dep, tmp_path)
    leaky = Server("placement", writes=lay.secrets["db_placement"])  # a migration that wrote a password
    assert bootstrap.sync(lay, "placement", leaky) == "schema not kept: it holds a secret"
    assert not list((tmp_path / "cache").glob("schemas/*/*"))


def test_a_schema_that_cannot_be_dumped_is_not_kept_and_the_cloud_is_made_all_the_same(dep, tmp_path):
    lay = layout(dep, tmp_path)
    server = Server("placement")
    real = server.run

    def no_dump(call, timeout=None, check=True):
        if Path(call.program).name == "mariadb-dump":
            raise tools.ToolFailed([call.program], 2, "", "mariadb-dump: Got error: 1045: Access denied")
        return real(call, timeout, check)

    server.run = no_dump
    assert bootstrap.sync(lay, "placement", server) == "schema not kept: mariadb-dump: Got error: 1045: Access denied"
    assert server.commands == [["db sync"]] and not list((tmp_path / "cache").glob("schemas/*/*"))


def test_a_kept_schema_that_fails_to_load_is_dropped_and_the_emptied_databases_migrate(dep, tmp_path):
    lay = layout(dep, tmp_path)
    bootstrap.sync(lay, "placement", Server("placement"))
    broken = Server("placement", fail_load=True)
    assert bootstrap.sync(lay, "placement", broken) == "schema kept"  # (kept anew by the migration)
    assert broken.commands == [["db sync"]] and broken.db == {"placement": "-- db sync\n"} and not broken.loading


def test_a_load_that_cannot_be_undone_fails_init_saying_so(dep, tmp_path):
    lay = layout(dep, tmp_path)
    bootstrap.sync(lay, "placement", Server("placement"))
    gone = Server("placement", fail_load=True)
    real = gone._sql
    gone._sql = lambda text: (setattr(gone, "dead", True), real(text))[1] if text.startswith("USE") else real(text)
    with pytest.raises(StackcrateError) as exc:
        bootstrap.sync(lay, "placement", gone)
    assert "loading its kept schema" in exc.value.message and "ERROR 1064" in exc.value.message
    assert "Can't connect" in exc.value.message and "empties them again" in exc.value.hint
    assert gone.commands == [] and gone.loading == {"placement"}  # what the next init finds (below)


@pytest.mark.parametrize("kept_schema", [True, False])
def test_databases_a_load_left_unfinished_are_emptied_again_and_made_whole(dep, tmp_path, kept_schema):
    """A load killed half-way leaves schemas.LOADING: the next init takes the databases for empty ones (not for
    migrated ones, as alembic_version would say), whether or not it may use the kept schema."""
    lay = layout(dep, tmp_path)
    bootstrap.sync(lay, "neutron", first := Server("neutron"))
    cut = Server("neutron", {"neutron": "-- alembic_version at head, half the tables\n"}, loading={"neutron"})
    bootstrap.sync(lay, "neutron", cut, kept_schema=kept_schema)
    assert cut.db == first.db and not cut.loading
    assert cut.commands == ([] if kept_schema else [["upgrade heads"]])


def test_schema_only_commands_come_first_and_take_no_secret():
    """What schemas.py builds on: a service's schema_only commands run before its others (so its databases can
    be dumped between them), do not depend on a stamp or a question to the database, and get no secret; a
    service with any has databases."""
    for spec in SERVICES.values():
        commands = [c for c in spec.sync if isinstance(c, Command)]
        flags = [c.schema_only for c in commands]
        assert flags == sorted(flags, reverse=True), spec.name
        for c in commands:
            if c.schema_only:
                assert not c.env and c.unless_same is None and c.unless_sql is None, (spec.name, c.args)
                assert not any("secret" in a for a in c.args)
                assert spec.databases
        marked = [i for i, c in enumerate(spec.sync) if isinstance(c, Command) and c.schema_only]
        if marked:  # one run of commands (no Sql between them: the dump is of them all), and before them only
            # Sql fixing rows of existing tables (a new cloud has none)
            assert marked == list(range(marked[0], marked[-1] + 1)), spec.name
            assert all(isinstance(c, Sql) and c.if_table for c in spec.sync[:marked[0]]), spec.name
    assert {s for s, spec in SERVICES.items() if schemas.commands(s)} == \
        {"keystone", "glance", "placement", "neutron", "nova"}
