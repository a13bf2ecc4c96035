"""Which processes run from a folder (a venv), read from /proc, whatever started them: a venv is never replaced
or removed under a running process."""

from __future__ import annotations

import os
from pathlib import Path


def _read(pid: str, what: str) -> str:
    return Path("/proc", pid, what).read_bytes().decode(errors="replace")


def processes_using(folder: Path) -> dict[int, str]:
    """The processes running a program from below folder or with a file below it mapped (a Python process maps
    its venv's compiled modules; gunicorn renames its processes, so the command line alone does not tell):
    pid -> command line. Processes that may not be inspected are left out."""
    prefix = str(folder).rstrip("/") + "/"
    out = {}
    for pid in (p.name for p in Path("/proc").iterdir() if p.name.isdigit() and int(p.name) != os.getpid()):
        try:
            argv = _read(pid, "cmdline").rstrip("\0").split("\0")
            if any(a.startswith(prefix) for a in argv) or prefix in _read(pid, "maps"):
                out[int(pid)] = " ".join(argv)
        except OSError:
            continue
    return out


def mentions(pid: int, text: str) -> bool:
    """pid's command line, environment, working folder or open files hold text (e.g. a deployment's state
    folder, which every process of the deployment is given; gunicorn overwrites its command line and
    environment with its process title, its working folder stays)."""
    proc = Path("/proc", str(pid))
    try:
        if any(text in _read(str(pid), what) for what in ("cmdline", "environ")):
            return True
        links = [proc / "cwd", *(proc / "fd").iterdir()]
    except OSError:
        return False
    for link in links:
        try:
            if text in os.readlink(link) + "/":
                return True
        except OSError:
            continue
    return False
