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


@dataclass(frozen=True)
class Fresh:
    """A service whose databases are all empty, and where its schema is (or will be) kept."""

    service: str
    databases: tuple[str, ...]
    entry: Path  # one <database>.sql per database (what is inside it), and key.json

    def kept(self) -> bool:
        return all((self.entry / f"{db}.sql").is_file() for db in self.databases)


def commands(service: str) -> list[Command]:
    return [c for c in SERVICES[service].sync if isinstance(c, Command) and c.schema_only]


def fresh(lay: Layout, service: str, runner: Runner) -> Fresh | None:
    """The service's cache entry when its databases are empty and a kept schema can stand for its schema_only
    commands; None when those commands must run themselves (or it has none)."""
    spec = SERVICES[service]
    if not commands(service) or not spec.databases:
        return None
    names = ", ".join(f"'{db}'" for db in spec.databases)
    answer = backing.sql(lay.d, f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema IN ({names});\n"
                                f"SELECT {SERVER};\n", runner).splitlines()
    if len(answer) != 2 or answer[0].strip() != "0":
        return None
    where = entry(lay, service, answer[1])
    return None if where is None else Fresh(service, spec.databases, where)


def entry(lay: Layout, service: str, server: str) -> Path | None:
    """Where the databases as the service's schema_only commands leave them on this database server (`server`:
    the answer to SELECT SERVER) are kept; None when its venv's artifact is not known."""
    artifact = artifact_sha256(lay.d, lay.d.services.enabled()[service].component)
    if artifact is None:
        return None
    key = {"format": FORMAT, "artifact": artifact, "databases": list(SERVICES[service].databases),
           "server": server, "commands": [[c.program, *c.args] for c in commands(service)]}
    return lay.d.cache.dir("schemas", service) / digest_of(key)


def load(lay: Layout, f: Fresh, runner: Runner) -> bool:
    """The kept schema loaded into the empty databases; False when none is kept. Should loading fail, the
    databases are emptied again (a half-loaded schema would pass for a migrated one) and the error raised."""
    if not f.kept():
        return False
    text = "".join(f"USE `{db}`;\n" + (f.entry / f"{db}.sql").read_text() for db in f.databases)
    try:
        backing.load(lay.d, text, runner)
    except (tools.ToolFailed, StackcrateError) as exc:
        _empty_again(lay, f, runner)
        why = exc.stderr.strip()[-500:] if isinstance(exc, tools.ToolFailed) else exc.message
        raise StackcrateError(f"{f.service}: loading its kept schema ({f.entry}) failed: {why}",
                              hint=f"remove {f.entry} (the next `init` migrates instead) and run `init` again") \
            from None
    return True


def _empty_again(lay: Layout, f: Fresh, runner: Runner) -> None:
    """The service's databases dropped and made anew, empty (their grants stay: MariaDB keeps them by name)."""
    backing.sql(lay.d, "".join(f"DROP DATABASE IF EXISTS `{db}`;\nCREATE DATABASE `{db}` CHARACTER SET utf8mb4;\n"
                               for db in f.databases), runner)


def keep(lay: Layout, f: Fresh, runner: Runner) -> str:
    """Dump the databases the schema_only commands just made into the cache entry (whole, or not at all); what
    was done, for the step's note."""
    if f.kept():
        return "schema kept already"
    try:
        dumps = {db: backing.dump_inside(lay.d, db, runner) for db in f.databases}
    except (tools.ToolFailed, StackcrateError) as exc:  # keeping saves time later; the cloud is made already
        why = exc.stderr.strip()[-200:] if isinstance(exc, tools.ToolFailed) else exc.message
        return f"schema not kept: {why}"
    secrets = [v for v in lay.secrets.values() if len(v) >= SHORTEST_SECRET]
    if any(s in text for text in dumps.values() for s in secrets):
        return "schema not kept: it holds a secret"
    try:
        _write_entry(lay, f, dumps)
    except OSError as exc:
        return f"schema not kept: {exc}"
    return "schema kept"


def _write_entry(lay: Layout, f: Fresh, dumps: dict[str, str]) -> None:
    tmp = lay.d.cache.tempdir(f"schema-{f.service}-")
    try:
        for db, text in dumps.items():
            (tmp / f"{db}.sql").write_text(text)
        (tmp / "key.json").write_text(json.dumps({"service": f.service, "databases": list(f.databases),
                                                  "commands": [[c.program, *c.args] for c in commands(f.service)]},
                                                 indent=2) + "\n")
        os.chmod(tmp, 0o755)
        lay.d.cache.commit(tmp, f.entry)
    finally:
        if tmp.exists():
            remove_tree(tmp)
