"""Several console scripts of one venv run by one interpreter: keystone's four `keystone-manage` commands, nova's
`nova-manage` ones. Importing nova or keystone costs 1.3-1.9 s of CPU per process, which `deploy run` pays while
every service migrates at once on a few cores.

The interpreter imports each program's entry point once, then runs each command in a child forked from it: the
child starts with the modules loaded and nothing else (oslo.config's global CONF is parsed by each command's
main(), once per process), as a process of its own would. The commands run in order; the first whose exit status
is not one of its own ok ones ends the batch with that status and a last line on stderr naming it."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from .processes import Call

# What both ways of running a venv's console scripts in one interpreter share (this batch and warm_program's
# server): console scripts are found by name in the venv's entry points (what the scripts in bin/ call), and
# called only when the script in bin/ is the one installed (RECORD's sha256); otherwise the child executes the
# script itself. A child dies with the interpreter that forked it (a timeout kills the interpreter).
PRELUDE = r"""
import base64, ctypes, hashlib, json, os, signal, sys, traceback

if sys.path[:1] == [""]:  # `python -c` puts the working folder first; a program run as itself has its bin/ there
    del sys.path[0]
from importlib.metadata import entry_points

parent = os.getpid()
found = entry_points(group="console_scripts")
loaded = {}  # entry point -> its main
mains = {}   # program path -> its main, or None (run it as itself)


def as_installed(ep, path):
    # the program is the one its installer wrote (its sha256 in the distribution's RECORD): calling its entry
    # point is running it; a program changed since (a wrapper, a hotfix) runs as itself
    real = os.path.realpath(path)
    for f in ep.dist.files or ():
        if f.hash and os.path.realpath(f.locate()) == real:
            with open(path, "rb") as fh:
                digest = hashlib.new(f.hash.mode, fh.read()).digest()
            return base64.urlsafe_b64encode(digest).rstrip(b"=").decode() == f.hash.value
    return False


def main_of(path):
    # the program's entry point, imported once; None: run the program itself. Asked once per program: the check
    # reads the script and walks its distribution's RECORD (nova's: thousands of files)
    if path not in mains:
        ep = next(iter(found.select(name=os.path.basename(path))), None)
        if ep is None or not as_installed(ep, path):
            mains[path] = None
        else:
            if ep.value not in loaded:
                sys.argv = [path]  # what a module may read as it is imported (cliff's App takes its name from it)
                loaded[ep.value] = ep.load()
            mains[path] = loaded[ep.value]
    return mains[path]


def child(argv, main):
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:
        os._exit(1)
    if main is None:
        try:
            os.execv(argv[0], argv)
        except OSError as exc:
            print(f"{argv[0]}: {exc}", file=sys.stderr, flush=True)
            os._exit(127)
    sys.argv = list(argv)
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code
    except BaseException:
        traceback.print_exc()
        code = 1
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code or 0)
"""

# Run as `<venv>/bin/python -c SCRIPT <commands as JSON>`. stdout and stderr are flushed before each fork and in
# each child before it exits, so the output keeps its order.
SCRIPT = PRELUDE + r"""
commands = json.loads(sys.argv[1])
for c in commands:
    main_of(c["argv"][0])  # every program loaded before the first command runs
for i, c in enumerate(commands):
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        child(c["argv"], main_of(c["argv"][0]))
    status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    if status not in c["ok"]:
        print(f"stackcrate: command {i} exited {status}", file=sys.stderr, flush=True)
        sys.exit(status if status > 0 else 1)
"""

_FAILED = re.compile(r"^stackcrate: command (\d+) exited (-?\d+)$", re.MULTILINE)


@dataclass(frozen=True)
class Step:
    """One console script of a venv with its arguments, and the exit statuses that mean it did its work."""

    argv: tuple[str, ...]          # argv[0]: the program's path in the venv's bin/
    env: tuple[tuple[str, str], ...] = ()
    ok_exit: tuple[int, ...] = (0,)


def can_share(steps: list[Step]) -> bool:
    """Whether these steps can run in one interpreter: one venv, and no variable set to two values (the batch
    has one environment: PYTHONPATH and the like are read when the interpreter starts)."""
    env: dict[str, str] = {}
    for s in steps:
        for k, v in s.env:
            if env.setdefault(k, v) != v:
                return False
    return len({Path(s.argv[0]).parent for s in steps}) == 1


def call(component: str, steps: list[Step], reads: tuple[str, ...], writes: tuple[str, ...]) -> Call:
    """The Call running these steps (can_share) one after the other in one interpreter of their venv."""
    python = str(Path(steps[0].argv[0]).parent / "python")
    commands = [{"argv": list(s.argv), "ok": list(s.ok_exit)} for s in steps]
    env = {k: v for s in steps for k, v in s.env}
    return Call(component, python, ("-c", SCRIPT, json.dumps(commands)), env, reads=reads, writes=writes)


def failed_step(stderr: str, steps: list[Step]) -> Step | None:
    """The step whose exit ended a batch, from the line SCRIPT wrote last (None: the interpreter itself failed,
    e.g. a program not among the venv's console scripts)."""
    found = _FAILED.findall(stderr or "")
    if not found:
        return None
    index = int(found[-1][0])
    return steps[index] if index < len(steps) else None


def argvs(call: Call) -> list[tuple[str, ...]]:
    """The command lines a Call runs: those of a batch (call), or its own (what `status` and tests show)."""
    if call.args[:2] == ("-c", SCRIPT):
        return [tuple(c["argv"]) for c in json.loads(call.args[2])]
    return [tuple(call.argv)]
