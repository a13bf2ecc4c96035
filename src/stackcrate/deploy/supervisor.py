"""The local backend's process manager: Debian's supervisord, one per deployment, configured from processes.py.

supervisord restarts a process that dies (with back-off while it keeps failing to start), stops a process's
whole group, and rotates each log. It starts nothing by itself (autostart=false): `stackcrate deploy start`
starts the processes one by one in dependency order, each checked healthy before the next. It listens on a
unix socket inside the state folder (mode 0700); we speak XML-RPC to it (tools.xmlrpc_unix).

Every process carries STACKCRATE_PROCESS=<state>:<name> in its environment, so a process left behind by a
supervisord that was killed is found (and stopped) before a new supervisord starts its own.
"""

from __future__ import annotations

import os
import shlex
import signal
import time
import xmlrpc.client
from dataclasses import dataclass
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from .config import Deployment
from .processes import Call, ProcessDef
from .secrets import private_file

MARKER = "STACKCRATE_PROCESS"

# Debian's supervisord (4.2.5; 4.3.0 too) can spin a core for as long as it runs: when an XML-RPC connection
# closes and a process started in the same turn of its main loop gets that descriptor number for its stdin
# pipe, the poller keeps the number registered for reading; once the process closes its end of the pipe
# (mariadbd does, at start), poll() answers POLLERR for it at once, every time, and nothing drops it
# (Supervisor issue #807; seen here taking one of two cores for a whole `run`). Run in supervisord's own
# interpreter before its main(): a registration for reading of a descriptor open for writing only (never
# readable) is dropped before each poll.
POLLER_FIX = r"""
import fcntl, os
from supervisor import poller

polled = poller.PollPoller.poll

def poll(self, timeout):
    for fd in list(self.readables):
        try:
            write_only = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY
        except OSError:  # closed: poll() answers POLLNVAL, which the poller handles
            continue
        if write_only:
            self.unregister_readable(fd)
    return polled(self, timeout)

poller.PollPoller.poll = poll
"""
LAUNCH = """
import ctypes, sys
if sys.path and sys.path[0] == "":  # (python -c puts the working folder first)
    del sys.path[0]
try:  # named supervisord, not python3, for ps -o comm, pgrep and top
    ctypes.CDLL(None).prctl(15, b"supervisord", 0, 0, 0)  # PR_SET_NAME
except (OSError, AttributeError):
    pass
""" + POLLER_FIX + """
from supervisor.supervisord import main
sys.exit(main())
"""
START_WAIT = 30.0          # seconds for supervisord to answer on its socket
LOG_MAX = "20MB"           # each process log is rotated at this size ...
LOG_BACKUPS = 5            # ... keeping this many old ones


@dataclass(frozen=True)
class State:
    """What supervisord says of one process."""

    state: str          # RUNNING, STARTING, BACKOFF, STOPPED, STOPPING, EXITED, FATAL, UNKNOWN
    pid: int | None
    description: str    # e.g. "pid 123, uptime 0:01:02" or "Exited too quickly (process log may have details)"
    exitstatus: int | None = None
    restarts: int | None = None   # times the engine restarted it after it died (None: not counted)


def _quote(value: str) -> str:
    # supervisord expands %(...)s in command and environment: a literal % is written %%
    return value.replace("%", "%%")


def program_section(p: ProcessDef, d: Deployment, priority: int) -> str:
    env = {**p.env, MARKER: f"{d.state}:{p.name}"}
    env_text = ",".join(f'{k}="{_quote(v)}"' for k, v in sorted(env.items()))
    log = d.state / "log" / f"{p.name}.log"
    argv = p.command(tools.which("ip", "iproute2")) if p.netns else p.argv
    return "\n".join([
        f"[program:{p.name}]",
        f"command={_quote(shlex.join(argv))}",
        f"environment={env_text}",
        f"directory={d.state / 'run'}",
        f"priority={priority}",
        "autostart=false",            # stackcrate starts them in order, each checked healthy
        "autorestart=true",           # a process that dies is started again ...
        f"startsecs={p.settle}",      # ... and one that dies sooner than this counts as a failed start,
        "startretries=5",             # retried with a growing pause (1, 2, 3 ... s), then given up (FATAL)
        "stopsignal=TERM",
        f"stopwaitsecs={int(d.config.stop_timeout)}",  # then SIGKILL (nova sleeps part of it: configs.nova_shutdown)
        "stopasgroup=true",           # gunicorn's workers, rabbitmq's beam: the whole group goes
        "killasgroup=true",
        "umask=027",                  # files the services write (glance images, keys) are not world-readable
        "redirect_stderr=true",
        f"stdout_logfile={log}",
        f"stdout_logfile_maxbytes={LOG_MAX}",
        f"stdout_logfile_backups={LOG_BACKUPS}",
        "",
    ])


class Supervisor:
    def __init__(self, d: Deployment):
        self.d = d
        self.conf = d.state / "etc" / "supervisord.conf"
        self.socket = d.state / "run" / "supervisor.sock"
        self.pidfile = d.state / "run" / "supervisord.pid"
        self.log = d.state / "log" / "supervisord.log"

    # ---------------------------------------------------------------- configuration

    def config_text(self, procs: list[ProcessDef]) -> str:
        head = "\n".join([
            "; Generated by stackcrate for the deployment in " + str(self.d.state),
            "[unix_http_server]", f"file={self.socket}", "chmod=0700", "",
            "[supervisord]", f"logfile={self.log}", f"logfile_maxbytes={LOG_MAX}",
            f"logfile_backups={LOG_BACKUPS}", f"pidfile={self.pidfile}", "nodaemon=true",
            f"childlogdir={self.d.state / 'log'}", "umask=027", f"identifier=stackcrate:{self.d.state}", "",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface", "",
            "[supervisorctl]", f"serverurl=unix://{self.socket}", "", ""])
        return head + "\n".join(program_section(p, self.d, 10 + i) for i, p in enumerate(procs))

    def write_config(self, procs: list[ProcessDef]) -> bool:
        """Write the config; True when it changed (supervisord must then take it: `update`)."""
        text = self.config_text(procs)
        if self.conf.exists() and self.conf.read_text() == text:
            return False
        private_file(self.conf, text)
        return True

    # ---------------------------------------------------------------- supervisord itself

    def rpc(self, timeout: float = 30) -> xmlrpc.client.ServerProxy:
        return tools.xmlrpc_unix(self.socket, timeout=timeout)

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            return self.rpc(timeout=5).supervisor.getState()["statename"] == "RUNNING"
        except (OSError, xmlrpc.client.Error):
            return False

    def ensure(self, procs: list[ProcessDef]) -> None:
        """supervisord runs with the current config (started, or told to take a changed config)."""
        changed = self.write_config(procs)
        if self.running():
            if changed:
                added, changed_, removed = self.rpc().supervisor.reloadConfig()[0]
                for name in removed:
                    self._call("stopProcess", name, True)
                    self._call("removeProcessGroup", name)
                for name in changed_:  # a changed definition takes effect at the next start
                    self._call("stopProcess", name, True)
                    self._call("removeProcessGroup", name)
                    self._call("addProcessGroup", name)
                for name in added:
                    self._call("addProcessGroup", name)
            return
        self.stop_orphans()
        self.socket.unlink(missing_ok=True)
        tools.spawn([supervisord_python(), "-c", LAUNCH, "-n", "-c", str(self.conf)],
                    log_file=self.d.state / "log" / "supervisord.out")
        deadline = time.monotonic() + START_WAIT
        while not self.running():
            if time.monotonic() > deadline:
                raise StackcrateError(f"supervisord did not answer on {self.socket} within {START_WAIT:.0f}s",
                                      hint=f"see {self.d.state / 'log' / 'supervisord.out'} and {self.log}")
            time.sleep(0.1)

    def _call(self, method: str, *args):
        try:
            return getattr(self.rpc().supervisor, method)(*args)
        except xmlrpc.client.Fault as exc:
            # NOT_RUNNING / ALREADY_STARTED / BAD_NAME for a process already where we want it: nothing to do
            if any(code in exc.faultString for code in ("NOT_RUNNING", "ALREADY_STARTED", "BAD_NAME",
                                                         "ALREADY_ADDED", "STILL_RUNNING")):
                return None
            raise StackcrateError(f"supervisord: {method}{args}: {exc.faultString}",
                                  hint=f"see {self.log}") from None

    def shutdown(self, timeout: float = 30) -> None:
        """Stop supervisord (after its processes are stopped) and wait until it is gone."""
        if not self.running():
            return
        pid = self._pid()
        try:
            self.rpc().supervisor.shutdown()
        except (OSError, xmlrpc.client.Error):
            pass
        deadline = time.monotonic() + timeout
        while pid and tools.alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if pid and tools.alive(pid):
            os.kill(pid, signal.SIGKILL)

    def _pid(self) -> int | None:
        try:
            return int(self.pidfile.read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    # ---------------------------------------------------------------- processes

    def states(self) -> dict[str, State]:
        if not self.running():
            return {}
        out = {}
        for info in self.rpc(timeout=10).supervisor.getAllProcessInfo():
            out[info["name"]] = State(info["statename"], info["pid"] or None, info["description"],
                                      info.get("exitstatus"))
        return out

    def start(self, name: str) -> None:
        """Ask supervisord to start a process (without waiting: the caller checks its health)."""
        self._call("startProcess", name, False)

    def stop(self, name: str) -> None:
        """Stop a process and wait (supervisord sends SIGTERM, then SIGKILL after stopwaitsecs)."""
        self._call("stopProcess", name, True)

    def run(self, call: Call, timeout: float = 600, check: bool = True) -> tools.CompletedProcess:
        """A management command on the host (the venvs and programs are installed here)."""
        return tools.run(call.argv, env=call.env, input=call.input, timeout=timeout, check=check)

    def remove(self, purge: bool) -> dict:
        return {}  # nothing but the state folder (rm removes its runtime part)

    def log_file(self, name: str) -> Path:
        return self.d.state / "log" / f"{name}.log"

    def stop_orphans(self, timeout: float = 10) -> list[str]:
        """Processes of this deployment no supervisord watches any more (theirs was killed): stopped, SIGTERM
        first, SIGKILL after timeout. Returns their names."""
        found = orphans(self.d.state)
        pids = [pid for group in found.values() for pid in group]
        for pid in pids:
            _signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(tools.alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in pids:
            _signal_group(pid, signal.SIGKILL)
        return sorted(found)


def supervisord_python() -> str:
    """The interpreter of the supervisord program (its #! line, `env NAME` looked up): the one its package is
    installed for."""
    program = tools.which("supervisord", "supervisor")
    with open(program, "rb") as f:
        words = f.readline().decode(errors="replace").removeprefix("#!").split()
    if words and Path(words[0]).name == "env" and len(words) > 1:
        return tools.which(words[1])
    if not words or not Path(words[0]).name.startswith("python"):
        raise StackcrateError(f"{program} does not start with a Python interpreter's #! line",
                              hint="install supervisord from Debian's package (apt-get install supervisor)")
    return words[0]


def orphans(state: Path) -> dict[str, list[int]]:
    """name -> pids of every live process whose environment marks it as one of this deployment's (a
    process's children, e.g. gunicorn's workers, inherit the mark)."""
    want = f"{MARKER}={state}:".encode()
    out: dict[str, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            env = (entry / "environ").read_bytes()
        except OSError:
            continue
        for var in env.split(b"\0"):
            if var.startswith(want) and tools.alive(int(entry.name)):
                out.setdefault(var[len(want):].decode(errors="replace"), []).append(int(entry.name))
                break
    return out


def _signal_group(pid: int, sig: int) -> None:
    try:
        os.killpg(os.getpgid(pid), sig)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
