"""The local backend's processes: started detached (own session, log file, pid file), health-checked, stopped
with a deadline. What to run comes from processes.py."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from .processes import ProcessDef


def _read_pid(pidfile: Path) -> int | None:
    try:
        return int(pidfile.read_text().split()[0])
    except (FileNotFoundError, ValueError, IndexError):
        return None


def _start_time(pid: int) -> str | None:
    # Field 22 of /proc/PID/stat: start time; guards against a reused pid.
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def alive(pidfile: Path) -> int | None:
    """The pid recorded in pidfile if that very process still runs (not a zombie, not a reused pid)."""
    pid = _read_pid(pidfile)
    if pid is None:
        return None
    parts = pidfile.read_text().split()
    st = _start_time(pid)
    if st is None or (len(parts) > 1 and parts[1] != st):
        return None
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
    return None if state == "Z" else pid


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def http_ok(url: str, timeout: float = 3) -> bool:
    """The URL answers with a status below 500 (an API that asks for a token still serves)."""
    try:
        tools.http(url, timeout=timeout, retries=0, quiet=True)
        return True
    except tools.FetchFailed as exc:
        return exc.status is not None and exc.status < 500


def healthy(p: ProcessDef, host: str) -> bool:
    if p.health.url:
        return http_ok(p.health.url)
    if p.health.port:
        return port_open(host, p.health.port)
    return True


def start(p: ProcessDef, run_dir: Path, log_dir: Path) -> int:
    """Start p detached from us (it outlives the CLI), stdout+stderr appended to log/<name>.log."""
    pidfile = run_dir / f"{p.name}.pid"
    pid = tools.spawn(p.argv, log_file=log_dir / f"{p.name}.log", env=p.env)
    pidfile.write_text(f"{pid} {_start_time(pid) or ''}\n")
    return pid


def wait_healthy(p: ProcessDef, host: str, run_dir: Path, log_dir: Path) -> None:
    deadline = time.monotonic() + p.start_timeout
    while time.monotonic() < deadline:
        if alive(run_dir / f"{p.name}.pid") is None:
            raise StackcrateError(f"{p.name} exited while starting", hint=f"see its log:\n{tail(log_dir, p.name)}")
        if healthy(p, host):
            return
        time.sleep(0.3)
    raise StackcrateError(f"{p.name} did not become healthy within {p.start_timeout:.0f}s",
                          hint=f"see its log:\n{tail(log_dir, p.name)}")


def tail(log_dir: Path, name: str, lines: int = 12) -> str:
    try:
        text = (log_dir / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "(no log)"
    return "\n".join("    " + ln for ln in text.splitlines()[-lines:])


def stop(name: str, run_dir: Path, timeout: float) -> str:
    """SIGTERM the process group, wait up to timeout, then SIGKILL (nova ignores SIGTERM for long)."""
    pidfile = run_dir / f"{name}.pid"
    pid = alive(pidfile)
    if pid is None:
        reap(pidfile)
        return "not running"
    how = "stopped"
    _signal_group(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(pidfile):
        time.sleep(0.1)
    if alive(pidfile):
        how = "killed after deadline"
    _signal_group(pid, signal.SIGKILL)  # also reaps workers a master left behind
    end = time.monotonic() + 5
    while time.monotonic() < end and alive(pidfile):
        time.sleep(0.05)
    pidfile.unlink(missing_ok=True)
    return how


def reap(pidfile: Path) -> None:
    """The recorded process died: kill what is left of its group (e.g. gunicorn workers) and forget it."""
    pid = _read_pid(pidfile)
    if pid is None or alive(pidfile):
        return
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    else:
        end = time.monotonic() + 5
        while time.monotonic() < end:
            try:
                os.killpg(pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
    pidfile.unlink(missing_ok=True)


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)  # started with start_new_session: the group id is the pid
    except ProcessLookupError:
        pass
    except PermissionError:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
