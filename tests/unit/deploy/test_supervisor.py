"""The local backend's process manager: a real supervisord (Debian's) running tiny processes, the way
`stackcrate deploy` runs the cloud's."""

from __future__ import annotations

import os
import shutil
import signal
import stat
import time

import pytest
import yaml

from stackcrate import tools
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.processes import ProcessDef
from stackcrate.deploy.supervisor import (
    MARKER,
    POLLER_FIX,
    Supervisor,
    orphans,
    program_section,
    supervisord_python,
)

pytestmark = pytest.mark.skipif(not shutil.which("supervisord"), reason="needs Debian's supervisor package")


def wait_for(cond, timeout: float = 15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = cond()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError(f"not within {timeout}s")


@pytest.fixture
def sup(dep):
    conf = yaml.safe_load(dep["config"].read_text())
    conf["stop_timeout"] = 1
    dep["config"].write_text(yaml.safe_dump(conf))
    d = Deployment(dep["services"], dep["config"])
    for sub in ("run", "log", "etc"):
        (d.state / sub).mkdir(parents=True, exist_ok=True)
    s = Supervisor(d)
    yield s
    if s.running():
        for name, st in s.states().items():
            if st.state == "RUNNING":
                s.stop(name)
        s.shutdown()


def sh(name: str, script: str) -> ProcessDef:
    # settle=0: RUNNING at once (the cloud's processes must stay up 3 s first; these tests need not wait)
    return ProcessDef(name, "service", "/bin/sh", ("-c", script), env={"GREETING": "100% sure"}, settle=0)


def test_config_escapes_percent_and_quotes_the_environment(tmp_path, dep):
    d = Deployment(dep["services"], dep["config"])
    text = program_section(sh("svc", "echo 50%"), d, 10)
    assert "command=/bin/sh -c 'echo 50%%'" in text
    assert 'GREETING="100%% sure"' in text and f'{MARKER}="{d.state}:svc"' in text
    assert "autostart=false" in text and "autorestart=true" in text and "stopasgroup=true" in text


def test_start_restart_after_kill_and_rotation_settings(sup):
    procs = [sh("sleeper", "echo started $GREETING; exec sleep 300")]
    sup.ensure(procs)
    assert stat.S_IMODE(sup.socket.stat().st_mode) == 0o700
    sup.start("sleeper")
    first = wait_for(lambda: (st := sup.states()["sleeper"]).state == "RUNNING" and st.pid)
    log = sup.d.state / "log" / "sleeper.log"
    assert wait_for(lambda: "started 100% sure" in log.read_text())
    assert stat.S_IMODE(log.stat().st_mode) & 0o007 == 0
    os.kill(first, signal.SIGKILL)  # supervisord starts it again by itself
    second = wait_for(lambda: (st := sup.states()["sleeper"]).pid not in (None, first) and st.pid)
    assert second != first and os.environ.get(MARKER) is None


def test_stop_kills_a_process_that_ignores_sigterm_at_the_deadline(sup):
    sup.ensure([sh("stubborn", "trap '' TERM; echo trapped; while :; do sleep 0.1; done")])
    sup.start("stubborn")
    pid = wait_for(lambda: (st := sup.states()["stubborn"]).state == "RUNNING" and st.pid, 10)
    log = sup.d.state / "log" / "stubborn.log"
    wait_for(lambda: log.exists() and "trapped" in log.read_text())  # SIGTERM is ignored from here on
    t0 = time.monotonic()
    sup.stop("stubborn")
    assert 0.9 < time.monotonic() - t0 < 10  # stop_timeout is 1 s
    assert sup.states()["stubborn"].state == "STOPPED"
    assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 5)


def test_a_changed_definition_is_taken_at_the_next_start(sup):
    sup.ensure([sh("svc", "exec sleep 301")])
    sup.start("svc")
    wait_for(lambda: sup.states()["svc"].state == "RUNNING")
    sup.ensure([sh("svc", "exec sleep 302"), sh("other", "exec sleep 303")])
    assert set(sup.states()) == {"svc", "other"}
    sup.start("svc")
    pid = wait_for(lambda: (st := sup.states()["svc"]).state == "RUNNING" and st.pid)
    # (right after the fork, the child is still supervisord until it execs)
    assert wait_for(lambda: open(f"/proc/{pid}/cmdline").read().split("\0")[:2] == ["sleep", "302"], 5)


def test_processes_left_by_a_killed_supervisord_are_found_and_stopped(sup, tmp_path):
    pid = tools.spawn(["sleep", "300"], log_file=tmp_path / "o.log", env={MARKER: f"{sup.d.state}:ghost"})
    other = tools.spawn(["sleep", "300"], log_file=tmp_path / "p.log", env={MARKER: "/elsewhere:ghost"})
    try:
        assert orphans(sup.d.state) == {"ghost": [pid]}
        assert sup.stop_orphans(timeout=2) == ["ghost"]
        assert wait_for(lambda: not os.path.exists(f"/proc/{pid}") or _zombie(pid), 5)
        assert not _zombie(other)
    finally:
        os.kill(other, signal.SIGKILL)


def _zombie(pid: int) -> bool:
    try:
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_process_with_a_network_namespace_is_entered_into_it(dep):
    """`ip netns exec` execs the program: supervisord still watches (and signals) the program itself."""
    d = Deployment(dep["services"], dep["config"])
    p = ProcessDef("ovs-vswitchd", "backing", "/usr/sbin/ovs-vswitchd", ("unix:/x/db.sock",), netns="stackcrate-1")
    text = program_section(p, d, 10)
    assert f"command={tools.which('ip')} netns exec stackcrate-1 /usr/sbin/ovs-vswitchd unix:/x/db.sock\n" in text
    assert "command=/bin/sh" in program_section(sh("svc", "true"), d, 11)  # the others: as they are


STALE_PIPE = """
import os, time
from supervisor import poller
from supervisor.options import ServerOptions
p = poller.PollPoller(ServerOptions())
r, w = os.pipe()
p.register_readable(w)  # what a closed connection's number, taken by a process's stdin pipe, is left as
os.close(r)  # the process closes its end of the pipe (mariadbd does)
start, polls = time.monotonic(), 0
while time.monotonic() - start < 0.6:
    p.poll(0.2)
    polls += 1
print(polls)
"""


@pytest.mark.parametrize("fixed", [False, True], ids=["supervisors-own-poller-spins", "with-the-fix-it-waits"])
def test_a_stdin_pipe_left_registered_for_reading_makes_supervisord_spin_unless_fixed(fixed):
    """Supervisor issue #807: the poller answers POLLERR at once, every time, for a pipe's write end registered
    for reading whose reader closed, and never drops it: supervisord's main loop takes a core for good. With
    POLLER_FIX (what supervisord runs with) the registration goes and each poll waits its time out again."""
    code = (POLLER_FIX if fixed else "") + STALE_PIPE
    polls = int(tools.run([supervisord_python(), "-c", code], timeout=30).stdout)
    assert polls <= 4 if fixed else polls > 100
