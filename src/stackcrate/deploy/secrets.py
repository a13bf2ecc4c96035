"""Secrets: generated once, kept in <state>/secrets.yaml with mode 0600, never printed or logged."""

from __future__ import annotations

import os
import secrets as _rnd
from pathlib import Path

import yaml

from ..errors import StackcrateError

NAMES = ["admin_password", "service_password", "rabbitmq_password", "memcache_secret_key", "metadata_secret",
         "db_keystone", "db_glance", "db_placement", "db_nova", "db_neutron"]


def load_or_create(state: Path, given: dict[str, str]) -> dict[str, str]:
    path = state / "secrets.yaml"
    state.mkdir(parents=True, exist_ok=True)
    current: dict[str, str] = {}
    if path.exists():
        if path.stat().st_mode & 0o077:
            raise StackcrateError(f"{path} is readable by other users", hint=f"chmod 600 {path}")
        current = yaml.safe_load(path.read_text()) or {}
    changed = False
    for name in NAMES:
        want = given.get(name)
        if want is not None and current.get(name) != want:
            current[name], changed = want, True
        elif name not in current:
            # hex only: safe in URLs, SQL and ini files without quoting
            current[name], changed = _rnd.token_hex(16), True
    if changed:
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            yaml.safe_dump(current, f)
        os.replace(tmp, path)
    return current


def private_file(path: Path, text: str) -> None:
    """Write a file only its owner can read (config files holding passwords)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)
