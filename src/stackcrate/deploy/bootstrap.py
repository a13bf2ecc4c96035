"""Init steps of the OpenStack services, from the table in openstack.py: databases and their users, then each
service's migrations and setup commands. Every step is idempotent, so `init` can run again at any time."""

from __future__ import annotations

import grp
import hashlib
import os
import pwd
import re
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .. import tools
from ..cache import digest_of, linked_tree, remove_tree
from ..errors import StackcrateError
from . import backing, one_interpreter, schemas, unpack
from .config import Deployment
from .layout import Layout
from .one_interpreter import Step
from .openstack import SERVICES, Command, Sql
from .processes import Call, Runner

if TYPE_CHECKING:
    from .warm_program import WarmProgram


def databases(d: Deployment) -> dict[str, tuple[str, ...]]:
    """database user -> its databases, for every enabled service that has any (the dashboard has none)."""
    return {SERVICES[name].db_user: SERVICES[name].databases for name in d.services.enabled()
            if SERVICES[name].databases}


def db_sql(d: Deployment, secrets: dict[str, str]) -> str:
    """Idempotent SQL creating each database and its user (the password is re-set to the kept secret)."""
    lines = []
    for user, dbs in databases(d).items():
        pw = secrets["db_" + user]
        for host in ("localhost", d.listen):
            lines.append(f"CREATE USER IF NOT EXISTS '{user}'@'{host}' IDENTIFIED BY '{pw}';")
            lines.append(f"ALTER USER '{user}'@'{host}' IDENTIFIED BY '{pw}';")
        for db in dbs:
            lines.append(backing.create_database(db).rstrip("\n"))
            for host in ("localhost", d.listen):
                lines.append(f"GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'{host}';")
    lines.append("FLUSH PRIVILEGES;")
    return "\n".join(lines) + "\n"


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{([a-z_]+)(?::([a-z_]+))?\}")


def fill(text: str, values: dict[str, str], secrets: dict[str, str] | None = None) -> str:
    """A command string with its {placeholders} filled; {secret:NAME} only where secrets are given; {{ and }}
    stand for literal braces."""
    def one(m: re.Match) -> str:
        if m.group(0) in ("{{", "}}"):
            return m.group(0)[0]
        if m.group(1) == "secret":
            if secrets is None:
                raise ValueError(f"a secret may only be used in an environment, not in {text!r}")
            return secrets[m.group(2)]
        return values[m.group(1)]
    return _PLACEHOLDER.sub(one, text)


def command_values(lay: Layout, service: str) -> dict[str, str]:
    return {"config_file": str(lay.conf_file(service)), "config_dir": str(lay.etc(service)),
            "venv": str(lay.venv(service)),
            "public_url": lay.public_url(service),
            "region": lay.d.config.region, "user": pwd.getpwuid(os.getuid()).pw_name,
            "group": grp.getgrgid(os.getgid()).gr_name}


def command_argv(lay: Layout, service: str, cmd: Command) -> tuple[list[str], dict[str, str]]:
    """The argv and environment of one management command."""
    values = command_values(lay, service)
    argv = [lay.bin(service, cmd.program), *(fill(a, values) for a in cmd.args)]
    env = {k: fill(v, values, lay.secrets) for k, v in cmd.env}
    return argv, env


def management_call(lay: Layout, service: str, argv: list[str], env: dict[str, str] | None = None) -> Call:
    """A program of the service's venv run to its end: it reads the service's config, writes its data."""
    return Call(lay.d.services.enabled()[service].component, argv[0], tuple(argv[1:]), dict(env or {}),
                reads=(str(lay.etc(service)),), writes=(str(lay.data(service)),))


def sync(lay: Layout, service: str, runner: Runner, timeout: float = 600, files_only: bool = False,
         warm: WarmProgram | None = None, kept_schema: bool = True) -> str:
    """Migrations and setup of one service, in the table's order; the commands between two Sql steps run in one
    interpreter (one_interpreter). files_only: only the commands that make files from the venv and the settings
    (`unless_same`), e.g. after a rollback put back the old release's databases. warm: the service's program,
    loaded already (warm_program), that runs its commands instead (init keeps nova-manage for the mapping).
    kept_schema: on empty databases, the schema kept in stackcrate's cache may stand for the schema_only
    commands (schemas.py); False when the venv's files changed after it was installed. What happened to the
    schema, as a note ('' when nothing was kept or loaded)."""
    from .backing import sql

    fresh = None if files_only else schemas.fresh(lay, service, runner, use_kept=kept_schema)
    note = ""
    stamped_ran = False  # once a stamped command ran, the stamped ones after it run too (they build on it)
    for group in _between_sql(SERVICES[service].sync, split_schema=fresh is not None):
        if isinstance(group, Sql):
            if not files_only and (group.if_table is None or _table_exists(lay.d, group.if_table, runner)):
                sql(lay.d, "\n".join(fill(s, {}) for s in group.statements) + "\n", runner)
            continue
        schema = fresh if fresh is not None and group[0].schema_only else None  # (split: all of them are)
        if schema is not None and schemas.load(lay, schema, runner):
            note = "schema loaded from the cache"
            continue
        todo: list[tuple[Step, Path | None, str]] = []
        for cmd in group:
            if files_only and cmd.unless_same is None:
                continue
            if cmd.unless_sql and _answer(lay.d, cmd.unless_sql, runner):
                continue
            argv, env = command_argv(lay, service, cmd)
            stamp, key = _stamp(lay, service, cmd, argv)
            if stamp is not None:
                if not stamped_ran and stamp.is_file() and stamp.read_text() == key:
                    continue
                stamped_ran = True
            todo.append((Step(tuple(argv), tuple(sorted(env.items())), cmd.ok_exit), stamp, key))
        kept = _kept_files(lay, service, group, [key for _, _, key in todo])
        if kept is None or not _copy_kept(lay, service, kept):
            if todo and SERVICES[service].made_files:
                _own_files(lay.data(service) / SERVICES[service].made_files)
            _run_steps(lay, service, runner, [step for step, _, _ in todo], timeout, warm)
            if kept is not None:
                _keep(lay, service, kept)
        for _, stamp, key in todo:
            if stamp is not None:
                stamp.parent.mkdir(parents=True, exist_ok=True)
                stamp.write_text(key)
        if schema is not None:
            note = schemas.keep(lay, schema, runner)
    return note


def _kept_files(lay: Layout, service: str, group: list[Command], keys: list[str]) -> Path | None:
    """Where stackcrate's cache keeps what this group of commands makes (the service's `made_files`), when every
    one of them is to run (a partial run builds on what is there: not kept); None otherwise."""
    made = SERVICES[service].made_files
    if made is None or len(keys) != len(group) or not all(cmd.unless_same for cmd in group):
        return None
    return lay.d.cache.dir("made-files", service) / digest_of(keys)


def _copy_kept(lay: Layout, service: str, kept: Path) -> bool:
    """The service's made_files put back from the cache, as hard links to the cache's files (cache.linked_tree);
    False when the cache has none. Copying the dashboard's 4,000 static files (74 MB) took 0.8 s alone and 3 s
    of a deploy made anew (ext4 allocating as many new inodes beside tar's); linking them 0.2 s. Nothing writes
    into a file of made_files: its commands make every file anew, and they run on a folder of the deployment's
    own files only (_own_files), so the cache's files never change."""
    if not kept.is_dir():
        return False
    lay.d.cache.used(kept)  # linked_tree makes the folders anew: their times are not the cache's
    _replace(lay.data(service) / SERVICES[service].made_files,  # type: ignore[operator]
             lambda new: linked_tree(kept, new))
    return True


def _keep(lay: Layout, service: str, kept: Path) -> None:
    """What the commands just made, into the cache (whole, or not at all), linked as _copy_kept does."""
    made = lay.data(service) / SERVICES[service].made_files  # type: ignore[operator]
    if not made.is_dir():
        return
    tmp = lay.d.cache.tempdir("made-files-")
    linked_tree(made, tmp / "files")
    lay.d.cache.commit(tmp / "files", kept)
    remove_tree(tmp)


def _own_files(made: Path) -> None:
    """made (a deployment's made_files), when any of its files is linked to a file of the cache, replaced by a
    copy of its own before commands write into it (e.g. compress run again on the files collectstatic made)."""
    if made.is_dir() and any(p.stat(follow_symlinks=False).st_nlink > 1
                             for p in made.rglob("*") if p.is_file() and not p.is_symlink()):
        _replace(made, lambda new: shutil.copytree(made, new, symlinks=True))


def _replace(target: Path, fill: Callable[[Path], object]) -> None:
    """target replaced whole by the folder fill(new) makes beside it, as a venv is (unpack.put_in_place), after
    removing what an earlier try that was killed left there."""
    unpack.remove_leftovers(target)
    unpack.put_in_place(target, fill)


def _table_exists(d: Deployment, name: str, runner: Runner) -> bool:
    from .backing import sql

    schema, table = name.split(".")
    return sql(d, f"SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = '{schema}' "
                  f"AND table_name = '{table}';\n", runner).strip() == "1"


def _answer(d: Deployment, query: str, runner: Runner) -> str:
    """What a query answers ('' when a table it reads does not exist yet: MariaDB's error 1146)."""
    from .backing import sql

    try:
        return sql(d, query + "\n", runner).strip()
    except tools.ToolFailed as exc:
        if "ERROR 1146" in (exc.stderr or ""):
            return ""
        raise


def _between_sql(sync: tuple[Command | Sql, ...], split_schema: bool = False) -> list[Sql | list[Command]]:
    """A service's sync steps: each Sql step, and the commands between them as one group; split_schema: the
    schema_only commands apart from the others (their databases are dumped in between)."""
    out: list[Sql | list[Command]] = []
    for cmd in sync:
        if isinstance(cmd, Sql):
            out.append(cmd)
        elif out and isinstance(out[-1], list) and not (split_schema and out[-1][-1].schema_only != cmd.schema_only):
            out[-1].append(cmd)
        else:
            out.append([cmd])
    return out


def _run_steps(lay: Layout, service: str, runner: Runner, steps: list[Step], timeout: float,
               warm: WarmProgram | None = None) -> None:
    """These commands in order, in one interpreter when there are several that can share one (or each in a child
    of `warm` when it is their program); the first that fails raises, naming it, with the end of its output."""
    if warm is not None and steps and all(str(s.argv[0]) == str(warm.program) for s in steps):
        for step in steps:
            proc = warm.run(step.argv, dict(step.env), timeout=timeout, check=False)
            if proc.returncode not in step.ok_exit:
                raise _failed(lay, service, step, proc)
        return
    together = len(steps) > 1 and one_interpreter.can_share(steps)
    for batch in [steps] if together else [[s] for s in steps]:
        call = management_call(lay, service, list(batch[0].argv), dict(batch[0].env))
        if len(batch) > 1:
            call = one_interpreter.call(call.component, batch, call.reads, call.writes)
        proc = runner.run(call, timeout=timeout * len(batch), check=False)
        if proc.returncode in (batch[0].ok_exit if len(batch) == 1 else (0,)):
            continue
        raise _failed(lay, service, batch[0] if len(batch) == 1 else one_interpreter.failed_step(proc.stderr, batch),
                      proc, call.program)


def _failed(lay: Layout, service: str, step: Step | None, proc: tools.CompletedProcess,
            program: str = "") -> StackcrateError:
    """The error of a failed command (step None: a batch that failed before naming one of its commands)."""
    argv = list(step.argv) if step else [program, "-c", "(its commands)"]
    tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-15:])
    args = argv[3:] if argv[1:2] == ["--config-file"] else argv[1:]
    return StackcrateError(
        f"{service}: `{Path(argv[0]).name} {' '.join(args[:3])}` failed (exit {proc.returncode}):\n{tail}",
        hint=f"see {lay.d.state / 'log'} and the service's configuration overrides")


def _stamp(lay: Layout, service: str, cmd: Command, argv: list[str]) -> tuple[Path | None, str]:
    """Where a command with `unless_same` records its last success, and what it records: the digest of its
    argv, of the artifact its venv (or image) came from (a rebuild at the same version differs) and of the file
    it depends on."""
    if cmd.unless_same is None:
        return None, ""
    from .install import artifact_sha256

    # no artifacts.json to read: the venv's path (in argv) alone
    artifact = artifact_sha256(lay.d, lay.d.services.enabled()[service].component)
    dep = lay.etc(service) / cmd.unless_same
    key = digest_of({"argv": argv, "artifact": artifact, "depends": dep.read_text() if dep.is_file() else None})
    name = hashlib.sha256(" ".join(cmd.args).encode()).hexdigest()[:16]
    return lay.data(service) / ".done" / f"{cmd.program}-{name}", key
