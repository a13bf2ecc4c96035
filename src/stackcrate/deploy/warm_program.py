"""A console script of a venv kept imported in one interpreter while it is called many times, each call in a child
forked from it: `deploy verify`'s ~20 `openstack` commands. Starting the client costs ~1.5 s of CPU per process
(python-openstackclient, openstacksdk, keystoneauth, cliff and each command's module imported again), most of a
call; a child forked from a loaded interpreter starts in a few milliseconds.

A child is a fresh process as far as the call can tell: its own command line, environment, standard input and
output files, forked from an interpreter that imported the modules and ran nothing (no command's state is
left for the next one). Calls run side by side, as processes do; each has a time limit after which its child
is killed. The program is called through its entry point only when it is the script its installer wrote
(one_interpreter.PRELUDE); otherwise each child executes it."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

from .. import tools
from ..errors import StackcrateError
from ..tools import ToolFailed
from .one_interpreter import PRELUDE

READY_TIMEOUT = 120.0  # for the interpreter to import the program (the client: ~2 s on two busy cores)
END_TIMEOUT = 10.0     # for it to end once told (its children killed)

# Run as `<venv>/bin/python -c SERVE <program> <entry point groups as JSON>`. It answers on what was its stdout
# (a copy of the descriptor): one "ready" line once loaded, then one {"id", "status"} line as each call ends; its
# own fd 1 goes to stderr, so what a module prints on import cannot garble the answers. A request is a line
# {"id", "argv", "env", "stdin", "stdout", "stderr"} (the last three: files) or {"kill": id}. End of input: the
# children are killed and it exits.
SERVE = PRELUDE + r"""
import selectors

# the real ones, taken before the program loads: nova's modules patch os and select for eventlet on import
fork, read, waitpid, pidfd_open, sel = os.fork, os.read, os.waitpid, os.pidfd_open, selectors.EpollSelector()
answers = os.fdopen(os.dup(1), "w", buffering=1)
os.dup2(2, 1)
program, groups = sys.argv[1], tuple(json.loads(sys.argv[2]))
main = main_of(program)
preload = []
if main is not None and groups:
    # what the calls import, imported here one module at a time while no request waits: the modules named by the
    # entry points of these groups (one that fails to import here fails in the call that needs it, as it would)
    from importlib.metadata import distributions
    preload = sorted({ep.module for d in distributions() for ep in d.entry_points if ep.group.startswith(groups)},
                     reverse=True)
sys.stdout.flush()
answers.write("ready\n")

sel.register(0, selectors.EVENT_READ)
running = {}  # request id -> (pid, pidfd)


def start(req):
    sys.stdout.flush()  # what an import printed is the interpreter's, not the child's
    sys.stderr.flush()
    pid = fork()
    if pid == 0:
        try:
            sel.close()
            os.close(answers.fileno())
            for _, fd in running.values():
                os.close(fd)
            for fd, path, flags in ((0, req["stdin"] or os.devnull, os.O_RDONLY), (1, req["stdout"], os.O_WRONLY),
                                    (2, req["stderr"], os.O_WRONLY)):
                f = os.open(path, flags)
                os.dup2(f, fd)
                os.close(f)
            os.environ.clear()
            os.environ.update(req["env"])
            this = main_of(req["argv"][0])
        except BaseException:  # the child must never go on as the interpreter
            traceback.print_exc()
            os._exit(127)
        child(req["argv"], this)
    fd = pidfd_open(pid)
    running[req["id"]] = (pid, fd)
    sel.register(fd, selectors.EVENT_READ, req["id"])


pending, reading = b"", True
while reading or running:
    events = sel.select(0 if preload else None)
    if not events and preload:
        try:
            __import__(preload.pop())
        except Exception:
            pass
        sys.stdout.flush()
        sys.stderr.flush()
    for key, _ in events:
        if key.data is None:
            data = read(0, 1 << 16)
            if not data:
                reading, preload = False, []
                sel.unregister(0)
                for pid, _ in running.values():
                    os.kill(pid, signal.SIGKILL)
            pending += data
            while b"\n" in pending:
                line, pending = pending.split(b"\n", 1)
                req = json.loads(line)
                if "kill" in req:
                    if req["kill"] in running:
                        os.kill(running[req["kill"]][0], signal.SIGKILL)
                else:
                    start(req)
        else:
            pid, fd = running.pop(key.data)
            sel.unregister(fd)
            os.close(fd)
            status = os.waitstatus_to_exitcode(waitpid(pid, 0)[1])
            answers.write(json.dumps({"id": key.data, "status": status}) + "\n")
"""


class WarmProgram:
    """A venv's console script, loaded once (with the modules of the entry points in `preload`'s groups), then
    run as often as wanted, also from several threads at once, through `run`. Loading starts at once, in the
    background; the first call waits for it. `close` ends it (children killed, its files removed)."""

    def __init__(self, program: str, env: Mapping[str, str], preload: Sequence[str] = ()):
        self.program = program
        self._work = Path(tempfile.mkdtemp(prefix="stackcrate-warm-"))  # 0700: outputs may hold tokens
        self._log = self._work / "interpreter.log"
        python = str(Path(program).parent / "python")
        self._proc = tools.coprocess([python, "-c", SERVE, program, json.dumps(list(preload))],
                                     log_file=self._log, env=env)
        self._ids = itertools.count()
        self._lock = threading.Lock()  # one writer of requests at a time
        self._calls: dict[int, Future] = {}
        self._gone: StackcrateError | None = None  # once the interpreter has ended
        self._ready: Future = Future()
        threading.Thread(target=self._answers, name="warm-program", daemon=True).start()

    def _answers(self) -> None:
        try:
            for line in self._proc.stdout:  # type: ignore[union-attr]
                if line == "ready\n":
                    self._ready.set_result(True)
                    continue
                answer = json.loads(line)
                with self._lock:
                    call = self._calls.pop(answer["id"], None)  # None: a call that gave up (timed out)
                if call is not None:
                    call.set_result(answer["status"])
        finally:  # whatever ended the answers, no call waits for one any more
            with self._lock:
                self._gone = self._gone or self._ended()
                if not self._ready.done():
                    self._ready.set_exception(self._gone)
                for call in self._calls.values():
                    call.set_exception(self._gone)
                self._calls.clear()

    def _ended(self) -> StackcrateError:
        return StackcrateError(f"the interpreter running {self.program} ended: {tools.log_end(self._log)}",
                               hint="run the program by hand to see why")

    def _send(self, message: dict) -> None:
        self._proc.stdin.write(json.dumps(message) + "\n")  # type: ignore[union-attr]
        self._proc.stdin.flush()  # type: ignore[union-attr]

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None, input: str | None = None,
            timeout: float = 300, check: bool = True) -> tools.CompletedProcess:
        """What tools.run does for the program (argv[0]): its output, its exit status, ToolFailed on a non-zero
        one (when check) and always when it outlives timeout (its child killed)."""
        args = [str(a) for a in argv]
        try:
            self._ready.result(timeout=READY_TIMEOUT)
        except FutureTimeout:
            raise StackcrateError(f"the interpreter running {self.program} did not load it in {READY_TIMEOUT:.0f}s: "
                                  f"{tools.log_end(self._log)}") from None
        try:
            files = Path(tempfile.mkdtemp(dir=self._work))
        except OSError:  # its folder is gone: closed meanwhile
            raise self._gone or self._ended() from None
        out, err, stdin = files / "stdout", files / "stderr", files / "stdin"
        done: Future = Future()
        timed_out = 0.0
        try:
            out.touch()
            err.touch()
            if input is not None:
                stdin.write_text(input)
            with self._lock:
                if self._gone:
                    raise self._gone
                number = next(self._ids)
                self._calls[number] = done
                self._send({"id": number, "argv": args, "env": {**os.environ, **(env or {})},
                            "stdin": str(stdin) if input is not None else None, "stdout": str(out),
                            "stderr": str(err)})
            try:
                status = done.result(timeout=timeout)
            except FutureTimeout:
                timed_out = timeout
                with self._lock:
                    self._send({"kill": number})
                try:
                    status = done.result(timeout=END_TIMEOUT)
                except FutureTimeout:
                    with self._lock:
                        self._calls.pop(number, None)
                    status = -9  # the interpreter does not answer either: close() kills it
            proc = tools.CompletedProcess(args, status, _text(out), _text(err))
        except (OSError, ValueError):  # the request could not be written: the interpreter ended, or was closed
            raise self._gone or self._ended() from None
        finally:
            shutil.rmtree(files, ignore_errors=True)
        if timed_out or (check and status != 0):
            raise ToolFailed(args, status, proc.stdout, proc.stderr, timed_out=timed_out)
        return proc

    def close(self) -> None:
        """End the interpreter (a call still running is killed) and remove its files."""
        with self._lock:
            self._gone = self._gone or StackcrateError(f"the interpreter running {self.program} was closed")
        tools.end_coprocess(self._proc, END_TIMEOUT)
        shutil.rmtree(self._work, ignore_errors=True)


def _text(path: Path) -> str:
    """A call's output file; empty when close() removed it while the call ran (its child killed)."""
    try:
        return path.read_text(errors="replace")
    except FileNotFoundError:
        return ""
