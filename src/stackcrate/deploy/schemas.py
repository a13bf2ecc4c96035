"""A new cloud's databases as its services' migrations leave them, kept in stackcrate's cache and loaded instead
of migrating again.

On empty databases, a service's `schema_only` commands (openstack.py: its migrations, and what loads data shipped
in its venv, such as glance's metadata definitions) make the same tables and rows every time for the same venv and
database server; nova's and keystone's own test fixtures rely on it when they migrate once and reuse the schema.
So the first new cloud of a venv runs them and keeps a dump of the databases as they left them (mariadb-dump),
under a key of the artifact's sha256, the commands, the database names and the server's version and settings; a
new cloud whose databases are empty loads that dump instead (tenths of a second where neutron's migrations take
seconds of CPU, and nova's three databases more).

Databases holding anything (an existing cloud, an upgrade, a rollback) always run the commands themselves, and
so does a venv whose files changed after it was installed (its artifact no longer says what it migrates). The
commands get no secret; a dump that holds one of the deployment's secrets anyway is not kept.

A loaded cloud differs from a migrated one as any restore of a dump does (tests/integration/deploy: a migration
run for real beside a load, compared): a table's keys are listed in another order (MariaDB orders them when a
table is made whole), and the few rows a migration inserts with random ids (neutron's default security group
rules) have the ids of the cloud that kept the schema."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from .. import tools
from ..cache import digest_of, remove_tree
from ..errors import StackcrateError
from . import backing
from .install import artifact_sha256
from .layout import Layout
from .openstack import SERVICES, Command
from .processes import Runner

FORMAT = 1  # of the kept entries: a change of what is dumped, or how, changes it
# what of the database server decides how the same statements come out
SERVER = ("VERSION(), @@character_set_server, @@collation_server, @@sql_mode, @@lower_case_table_names, "
          "@@innodb_default_row_format, @@explicit_defaults_for_timestamp")
SHORTEST_SECRET = 8  # secrets shorter than this are not looked for in a dump (stackcrate's are 20+ characters)
# made in each database before a load and dropped once every one is loaded: a load cut short (killed, the server
# gone) leaves it, and the next init empties those databases again instead of taking them for migrated ones
# (MariaDB cannot take back a CREATE TABLE; alembic_version, among the first tables loaded, says "all done")
LOADING = "stackcrate_schema_loading"


@dataclass(frozen=True)
class Fresh:
    """A service whose databases are all empty, and where its schema is (or will be) kept."""

    service: str
    databases: tuple[str, ...]
    entry: Path  # one <database>.sql per database (what is inside it), and key.json

    def kept(self) -> bool:
        return all((self.entry / f"{db}.sql").is_file() for db in self.databases)


def commands(service: str) -> list[list[str]]:
    """The service's schema_only commands, as program and arguments (placeholders unfilled)."""
    return [[c.program, *c.args] for c in SERVICES[service].sync if isinstance(c, Command) and c.schema_only]


def fresh(lay: Layout, service: str, runner: Runner, use_kept: bool = True) -> Fresh | None:
    """The service's cache entry when its databases are empty and a kept schema can stand for its schema_only
    commands (use_kept); None when those commands must run themselves (or it has none). Databases a load left
    unfinished are emptied again first, whatever use_kept says."""
    spec = SERVICES[service]
    if not commands(service) or not spec.databases:
        return None
    names = ", ".join(f"'{db}'" for db in spec.databases)
    answer = backing.sql(lay.d, f"SELECT COUNT(*), COALESCE(SUM(table_name = '{LOADING}'), 0) FROM "
                                f"information_schema.tables WHERE table_schema IN ({names});\nSELECT {SERVER};\n",
                         runner).splitlines()
    if len(answer) != 2 or len(counts := answer[0].split()) != 2:
        return None
    if counts[1] != "0":
        _empty_again(lay, spec.databases, runner)
    elif counts[0] != "0":
        return None
    where = entry(lay, service, answer[1]) if use_kept else None
    return None if where is None else Fresh(service, spec.databases, where)


def entry(lay: Layout, service: str, server: str) -> Path | None:
    """Where the databases as the service's schema_only commands leave them on this database server (`server`:
    the answer to SELECT SERVER) are kept; None when its venv's artifact is not known."""
    artifact = artifact_sha256(lay.d, lay.d.services.enabled()[service].component)
    if artifact is None:
        return None
    key = {"format": FORMAT, "artifact": artifact, "databases": list(SERVICES[service].databases),
           "server": server, "commands": commands(service)}
    return lay.d.cache.root / "schemas" / service / digest_of(key)


def load(lay: Layout, f: Fresh, runner: Runner) -> bool:
    """The kept schema loaded into the empty databases; False when none is kept, or when it could not be loaded:
    then the entry is dropped, the databases are emptied again and the commands run instead (the error, should
    even that fail)."""
    if not f.kept():
        return False
    lay.d.cache.used(f.entry)
    try:
        text = "".join(f"USE `{db}`;\nCREATE TABLE `{LOADING}` (id INT);\n" + (f.entry / f"{db}.sql").read_text()
                       for db in f.databases)
        backing.load(lay.d, text + "".join(f"DROP TABLE `{db}`.`{LOADING}`;\n" for db in f.databases), runner)
        return True
    except (tools.ToolFailed, StackcrateError, OSError, UnicodeDecodeError) as exc:
        failed = exc
    remove_tree(f.entry)  # (a damaged entry; a good one is made again by the migrations below)
    try:
        _empty_again(lay, f.databases, runner)
    except (tools.ToolFailed, StackcrateError) as exc:
        raise StackcrateError(f"{f.service}: loading its kept schema ({f.entry}) failed ({_why(failed)}), and "
                              f"emptying its databases again too: {_why(exc)}",
                              hint="see the database's log (`stackcrate deploy logs mariadb`); the next `init` "
                                   "empties them again and migrates") from None
    return False


def _why(exc: BaseException) -> str:
    return exc.stderr.strip()[-300:] if isinstance(exc, tools.ToolFailed) else getattr(exc, "message", str(exc))


def _empty_again(lay: Layout, databases: tuple[str, ...], runner: Runner) -> None:
    """The databases dropped and made anew, empty (their grants stay: MariaDB keeps them by name)."""
    backing.sql(lay.d, "".join(f"DROP DATABASE IF EXISTS `{db}`;\n{backing.create_database(db)}" for db in databases),
                runner)


def keep(lay: Layout, f: Fresh, runner: Runner) -> str:
    """Dump the databases the schema_only commands just made into the cache entry (whole, or not at all); what
    was done, for the step's note."""
    if f.kept():
        return "schema kept already"
    try:
        dumps = {db: backing.dump_inside(lay.d, db, runner) for db in f.databases}
    except (tools.ToolFailed, StackcrateError) as exc:  # keeping saves time later; the cloud is made already
        return f"schema not kept: {_why(exc)}"
    if _holds_secret(lay, "".join(dumps.values())):
        return "schema not kept: it holds a secret"
    try:
        _write_entry(lay, f, dumps)
    except OSError as exc:
        return f"schema not kept: {exc}"
    return "schema kept"


def _holds_secret(lay: Layout, text: str) -> bool:
    """Whether any of the deployment's secrets is in the dump: as text, or as the hex of a binary column."""
    secrets = [v for v in lay.secrets.values() if len(v) >= SHORTEST_SECRET]
    return any(s in text or s.encode().hex().upper() in text for s in secrets)


def _write_entry(lay: Layout, f: Fresh, dumps: dict[str, str]) -> None:
    tmp = lay.d.cache.tempdir(f"schema-{f.service}-")
    try:
        for db, text in dumps.items():
            (tmp / f"{db}.sql").write_text(text)
        (tmp / "key.json").write_text(json.dumps({"service": f.service, "databases": list(f.databases),
                                                  "commands": commands(f.service)}, indent=2) + "\n")
        os.chmod(tmp, 0o755)
        lay.d.cache.commit(tmp, f.entry)
    finally:
        if tmp.exists():
            remove_tree(tmp)
