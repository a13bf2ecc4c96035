"""Secrets: generated once, kept in <state>/secrets.yaml (mode 0600), never printed, logged or put on a command line.

secrets.yaml holds the values the deployment runs with (applied). configuration.yaml may give its own values
(`secrets:`): a value there that differs from the applied one is a pending change. `start` refuses to run
with one pending (the services would run with a mix of old and new values); `init` applies every pending
change to every service that uses it, and only then records it in secrets.yaml. An init that stops half-way may
have set new values already (the broker's password, the database users', keystone's users'): the names it began
to apply stay pending (secrets-applying.yaml) until an init ends, whatever configuration.yaml says meanwhile.
"""

from __future__ import annotations

import os
import secrets as _rnd
from pathlib import Path

import yaml

from .. import yamlfile
from ..errors import StackcrateError

NAMES = ["admin_password", "service_password", "rabbitmq_password", "memcache_secret_key", "metadata_secret",
         "db_keystone", "db_glance", "db_placement", "db_nova", "db_neutron", "horizon_secret_key"]
# What a compute host of several uses (nova-compute's broker and service users; the admin's, for the check of
# nova-compute, which reads nova's service list, and clouds.yaml): the databases' passwords and the dashboard's
# key stay on the control host, so a compute host that is broken into gives no way into any database
COMPUTE_HOST = ["admin_password", "service_password", "rabbitmq_password"]


def needed(roles: list[str]) -> list[str]:
    """The secrets a host with these roles uses (a one-node cloud's host: every one)."""
    return NAMES if "control" in roles else COMPUTE_HOST


FILE = "secrets.yaml"  # in the state folder
APPLYING = "secrets-applying.yaml"  # in the state folder: names only, never values
BACKUP_HINT = "restore it from a backup; every service was set up with its values"


def _path(state: Path) -> Path:
    return state / FILE


def applied(state: Path) -> dict[str, str]:
    """The secrets the deployment runs with ({} before the first init)."""
    path = _path(state)
    if not path.exists():
        return {}
    if path.stat().st_mode & 0o077:
        raise StackcrateError(f"{path} is readable by other users", hint=f"chmod 600 {path}")
    data = _read(path, hint=BACKUP_HINT) or {}
    if not isinstance(data, dict):
        raise StackcrateError(f"{path} is not a mapping of secret names to values", hint=BACKUP_HINT)
    return {str(k): str(v) for k, v in data.items()}


def pending(state: Path, given: dict[str, str], names: list[str] = NAMES) -> list[str]:
    """Secrets of `names` (those the host uses) that configuration.yaml sets to another value than the one
    applied (none before the first init), and those an init began to apply and did not finish."""
    current = applied(state)
    changed = {n for n, v in given.items() if n in current and current[n] != v} | set(_applying(state))
    return sorted(changed & set(names))


def _read(path: Path, hint: str | None = None) -> object:
    """What a state file stackcrate wrote holds. One broken by hand is told by its line alone: YAML's own message
    quotes the text around the error, which here may be a secret."""
    try:
        return yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise StackcrateError("not valid YAML", hint=hint, where=yamlfile.location(exc, path)) from None


def _applying(state: Path) -> list[str]:
    try:
        names = _read(state / APPLYING)
    except FileNotFoundError:
        return []
    except StackcrateError:  # broken: as unreadable (below)
        names = None
    return [str(n) for n in names] if isinstance(names, list) else list(NAMES)  # unreadable: all of them


def begin_applying(state: Path, names: list[str]) -> None:
    """Before init sets any of these secrets' new values anywhere: until finish_applying, they are pending."""
    if names:
        private_file(state / APPLYING, yaml.safe_dump(sorted(set(names) | set(_applying(state)))))


def finish_applying(state: Path) -> None:
    """After init recorded the values every service now uses."""
    (state / APPLYING).unlink(missing_ok=True)


def ensure(state: Path, given: dict[str, str] | None = None, names: list[str] = NAMES) -> dict[str, str]:
    """The applied secrets of `names` (those the host uses), any missing one generated and recorded at once (hex
    only: safe in URLs, SQL and ini files without quoting), any other one dropped from the record (a compute host
    of several, given every secret by an older stackcrate); names configuration.yaml gives are left to
    `desired`."""
    given = given or {}
    unknown = sorted(set(given) - set(NAMES))
    if unknown:
        raise StackcrateError(f"unknown secret(s) in configuration.yaml: {', '.join(unknown)}",
                              hint=f"known secrets: {', '.join(NAMES)}")
    recorded = applied(state)
    # (a name this stackcrate does not know, from a newer one, stays)
    current = {n: v for n, v in recorded.items() if n in names or n not in NAMES}
    new = {n: _rnd.token_hex(16) for n in names if n not in current and n not in given}
    if new or len(current) < len(recorded) or not _path(state).exists():
        current = {**current, **new}
        record(state, current)
    return current


def desired(state: Path, given: dict[str, str], names: list[str] = NAMES) -> dict[str, str]:
    """What init applies: the applied secrets of `names` with configuration.yaml's values of them on top."""
    return {**ensure(state, given, names), **{n: v for n, v in given.items() if n in names}}


def record(state: Path, values: dict[str, str]) -> None:
    """Write secrets.yaml (0600) atomically: these values are now the ones every service uses."""
    state.mkdir(parents=True, exist_ok=True)
    os.chmod(state, 0o700)
    path = _path(state)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        yaml.safe_dump(dict(sorted(values.items())), f)
    os.replace(tmp, path)


def private_file(path: Path, text: str) -> None:
    """Write a file only its owner can read (config files holding passwords), whole: written beside, renamed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)
