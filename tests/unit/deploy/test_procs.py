"""The local backend's process control on real (tiny) processes: liveness from pid files, health checks, stopping
with a deadline."""

from __future__ import annotations

import os
import signal
import socket
import time

from stackcrate.deploy import procs
from stackcrate.deploy.processes import Health, ProcessDef


def start(tmp_path, name: str, script: str) -> tuple[ProcessDef, int]:
    p = ProcessDef(name, "service", "/bin/sh", ("-c", script))
    (tmp_path / "run").mkdir(exist_ok=True)
    return p, procs.start(p, tmp_path / "run", tmp_path / "log")


def wait_for(cond, timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_alive_follows_the_recorded_process(tmp_path):
    _, pid = start(tmp_path, "svc", "sleep 30")
    pidfile = tmp_path / "run" / "svc.pid"
    try:
        assert procs.alive(pidfile) == pid
        assert procs.alive(tmp_path / "run" / "other.pid") is None
        # the same pid with another start time is another process (the pid was reused)
        pidfile.write_text(f"{pid} 1\n")
        assert procs.alive(pidfile) is None
        pidfile.write_text("garbage\n")
        assert procs.alive(pidfile) is None
    finally:
        os.killpg(pid, signal.SIGKILL)


def test_a_process_that_exited_is_not_alive_even_as_a_zombie(tmp_path):
    _, pid = start(tmp_path, "quick", "exit 0")
    assert wait_for(lambda: procs.alive(tmp_path / "run" / "quick.pid") is None)


def test_stop_waits_for_sigterm_then_kills_at_the_deadline(tmp_path):
    _, polite = start(tmp_path, "polite", "sleep 30")
    _, stubborn = start(tmp_path, "stubborn", "trap '' TERM; while :; do sleep 0.1; done")
    time.sleep(0.2)  # let the shell install its trap
    t0 = time.monotonic()
    assert procs.stop("polite", tmp_path / "run", timeout=5) == "stopped"
    assert time.monotonic() - t0 < 4
    t0 = time.monotonic()
    assert procs.stop("stubborn", tmp_path / "run", timeout=1) == "killed after deadline"
    assert 0.9 < time.monotonic() - t0 < 8
    assert not (tmp_path / "run" / "stubborn.pid").exists()
    assert procs.stop("stubborn", tmp_path / "run", timeout=1) == "not running"


def test_health_by_port_and_by_url(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        p = ProcessDef("x", "backing", "/bin/true", (), health=Health(port=port))
        assert not procs.healthy(p, "127.0.0.1")
        s.listen()
        assert procs.healthy(p, "127.0.0.1")
    dead = ProcessDef("y", "service", "/bin/true", (), health=Health(url="http://127.0.0.1:9/"))
    assert not procs.healthy(dead, "127.0.0.1")
