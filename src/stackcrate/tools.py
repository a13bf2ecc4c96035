"""How we call external programs (uv, git, mmdebstrap, ...): every invocation goes through here."""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import StackcrateError

log = logging.getLogger("stackcrate")


class ToolFailed(StackcrateError):
    """An external program exited non-zero; callers usually turn this into a more specific error."""

    def __init__(self, argv: Sequence[str], returncode: int, stdout: str, stderr: str):
        self.argv = list(argv)
        self.returncode = returncode
        self.stdout = stdout
        self.stderr = stderr
        tail = "\n".join((stderr or stdout).strip().splitlines()[-15:])
        super().__init__(f"`{shlex.join(self.argv[:4])}...` failed (exit {returncode}):\n{tail}")


def which(name: str, package_hint: str | None = None) -> str:
    path = shutil.which(name)
    if not path:
        raise StackcrateError(
            f"the program {name!r} is not installed",
            hint=f"install it (apt-get install {package_hint or name})",
        )
    return path


def run(argv: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
        input: str | None = None, check: bool = True, timeout: float | None = None) -> subprocess.CompletedProcess:
    """Run a program, capturing its output; raise ToolFailed on a non-zero exit when check is set."""
    argv = [str(a) for a in argv]
    log.debug("run: %s%s", shlex.join(argv), f"  (in {cwd})" if cwd else "")
    full_env = None
    if env is not None:
        full_env = dict(os.environ)
        full_env.update(env)
    proc = subprocess.run(argv, cwd=cwd, env=full_env, input=input, capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise ToolFailed(argv, proc.returncode, proc.stdout, proc.stderr)
    return proc


def uv_bin() -> str:
    """The uv binary shipped with the `uv` Python package (so the version is the one we depend on)."""
    try:
        from uv import find_uv_bin

        return find_uv_bin()
    except (ImportError, FileNotFoundError):  # pragma: no cover - only when the uv package is broken
        return which("uv")


# uv must not read a user's config or the host's pip config: resolution depends only on our inputs.
UV_ENV = {"UV_NO_CONFIG": "1", "UV_PYTHON_DOWNLOADS": "never"}


def uv(args: Sequence[str], *, cwd: Path | str | None = None, env: Mapping[str, str] | None = None,
       check: bool = True, cache_dir: Path | None = None) -> subprocess.CompletedProcess:
    e = dict(UV_ENV)
    if cache_dir is not None:
        e["UV_CACHE_DIR"] = str(cache_dir)
    if env:
        e.update(env)
    return run([uv_bin(), *args], cwd=cwd, env=e, check=check)


# git: never prompt, never read the user's or system config (so tests and CI behave the same).
GIT_ENV = {
    "GIT_TERMINAL_PROMPT": "0",
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_ASKPASS": "/bin/true",
    "GIT_AUTHOR_NAME": "stackcrate",
    "GIT_AUTHOR_EMAIL": "stackcrate@localhost",
    "GIT_COMMITTER_NAME": "stackcrate",
    "GIT_COMMITTER_EMAIL": "stackcrate@localhost",
}


def git(args: Sequence[str], *, cwd: Path | str | None = None, check: bool = True,
        env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess:
    e = dict(GIT_ENV)
    if env:
        e.update(env)
    return run([which("git"), "-c", "protocol.file.allow=always", "-c", "advice.detachedHead=false", *args],
               cwd=cwd, env=e, check=check)
