"""Starting and stopping a deployment's processes: each started as soon as those it needs serve and waited for
until healthy (a process that dies while starting fails at once, with the end of its log), the configuration each
one started with recorded (one started with another runs with an old configuration); stopped in parallel, then
the backing services in reverse order."""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from ..errors import StackcrateError
from . import backing, ovn
from .config import Deployment
from .health import Checker, Tokens, Verdict
from .layout import Layout
from .manager import DIED, STOPPED, Manager, manager_for
from .preflight import port_free, ports
from .processes import ProcessDef, make_written_folders, process_names
from .timer import Timer


def config_digest(lay: Layout, p: ProcessDef) -> str:
    """What a process reads from the state folder at start (its config files, its WSGI module) and its definition
    (program, arguments, environment, mounts), as a digest: a process started with another one runs with an old
    configuration."""
    h = hashlib.sha256(repr(p).encode())
    for f in sorted({*p.config_files, *_wsgi_files(lay, p)}):
        path = Path(f)
        if lay.d.state in path.parents and path.is_file():
            h.update(f.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def started_with(d: Deployment, name: str) -> Path:
    return d.state / "run" / "started" / f"{name}.config"


def _wsgi_files(lay: Layout, p: ProcessDef) -> set[str]:
    return {str(lay.wsgi_dir() / f"sc_wsgi_{p.service}.py")} if p.service else set()



def log_tail(d: Deployment, name: str, lines: int = 15) -> str:
    try:
        text = (d.state / "log" / f"{name}.log").read_text(errors="replace")
    except FileNotFoundError:
        return "    (no log)"
    return "\n".join("    " + ln for ln in text.splitlines()[-lines:])


HEALTH_POLL = 0.2  # seconds between two health checks of a starting process (most backing ones serve within 0.5 s)


def wait_healthy(d: Deployment, sup: Manager, p: ProcessDef, values: dict[str, str],
                 login_optional: bool = False, tokens: Tokens | None = None) -> Verdict:
    """Until p is RUNNING and its health check passes; at once an error when it dies while starting. tokens:
    shared by the waits of one start (one token, not one per poll)."""
    tokens = tokens or Tokens()
    deadline = time.monotonic() + p.start_timeout
    verdict = Verdict(False, "not checked yet")
    while True:
        st = sup.states().get(p.name)
        if st is None or st.state in DIED:
            why = st.description if st else "unknown to supervisord"
            raise StackcrateError(f"{p.name} exited while starting ({why})",
                                  hint=f"the end of its log ({d.state / 'log' / (p.name + '.log')}):\n"
                                  + log_tail(d, p.name))
        # STARTING too: supervisord calls it RUNNING only after `settle` seconds, but a process that already
        # passes its health check serves (and supervisord still restarts it if it dies)
        if st.state in ("RUNNING", "STARTING"):
            verdict = Checker(d, values, login_optional, tokens).check(p, st.pid)
            if verdict.ok:
                return verdict
        if time.monotonic() > deadline:
            raise StackcrateError(f"{p.name} did not become healthy within {p.start_timeout:.0f}s: {verdict.detail}",
                                  hint="the end of its log:\n" + log_tail(d, p.name))
        time.sleep(HEALTH_POLL)


def needs(plist: list[ProcessDef]) -> dict[str, list[str]]:
    """process -> the processes of plist it needs serving before it starts: those before it named in its
    `after`, and for an OpenStack process every backing process before it; a process without `after` needs
    every process before it."""
    out: dict[str, list[str]] = {}
    for i, p in enumerate(plist):
        before = plist[:i]
        out[p.name] = ([q.name for q in before] if p.after is None else
                       [q.name for q in before if q.name in p.after or (p.kind == "service" and q.kind == "backing")])
    return out


def waves(plist: list[ProcessDef]) -> list[list[ProcessDef]]:
    """The processes in groups, in order: each group's processes need only those of the groups before it."""
    level: dict[str, int] = {}
    for name, before in needs(plist).items():
        level[name] = max((level[n] + 1 for n in before), default=0)
    return [[p for p in plist if level[p.name] == n] for n in sorted(set(level.values()))]


def start_processes(d: Deployment, sup: Manager, plist: list[ProcessDef], values: dict[str, str], t: Timer,
                    restart: set[str] | None = None, lay: Layout | None = None,
                    login_optional: bool = False, settle: bool = True,
                    then: Callable[[ProcessDef], None] | None = None,
                    gate: Callable[[ProcessDef], None] | None = None, tokens: Tokens | None = None) -> list[str]:
    """Start (or restart, for those in `restart`) the processes that do not serve, each as soon as those it needs
    serve (`needs`), and wait until each is healthy; with a layout, record the configuration each one starts
    with. settle: also wait until supervisord counts them started (False: the caller does, later). then: called
    with each process started, once it is healthy, beside the others still starting; gate: called before each
    is launched, returns once it may be (raises: it may not). tokens: the admin token of the checks (one per
    call when not given)."""
    states = sup.states()
    # what runs with an old configuration is stopped first, all at once (nova's take the whole deadline)
    stale = [p.name for p in plist if p.name in (restart or set()) and p.name in states
             and states[p.name].state not in STOPPED]
    if stale:
        stop_names(d, sup, stale, t, verb="Stopping (to restart with the new configuration)")
        states = sup.states()
    started = []
    (d.state / "run" / "started").mkdir(parents=True, exist_ok=True)
    tokens = tokens or Tokens()

    def serving(p: ProcessDef) -> bool:
        st = states.get(p.name)
        return (st is not None and st.state == "RUNNING"
                and Checker(d, values, login_optional, tokens).check(p, st.pid).ok)

    def launch(p: ProcessDef) -> None:
        if gate is not None:
            gate(p)
        st = states.get(p.name)
        if st is None or st.state in STOPPED:
            if lay is not None:
                started_with(d, p.name).write_text(config_digest(lay, p))
            before_start(d, sup, p)
            sup.start(p.name)

    def healthy(p: ProcessDef) -> tuple[str, float]:
        t0 = time.monotonic()
        answer = wait_healthy(d, sup, p, values, login_optional, tokens).detail, time.monotonic() - t0
        if then is not None:
            then(p)
        return answer

    todo = [p for p in plist if not serving(p)]
    verb = "Restarting" if any(p.name in stale for p in todo) else "Starting"
    if len(todo) == 1:
        with t.step(f"{verb} {todo[0].name}") as info:
            launch(todo[0])
            info["note"] = healthy(todo[0])[0]
    elif todo:
        with t.step(f"{verb} {', '.join(p.name for p in todo)} (each once those it needs serve)") as info:
            answers = _each_when_ready(todo, needs(plist), launch, healthy)
            info["note"] = ", ".join(f"{p.name} {sec:.1f}s" for p, (_, sec) in zip(todo, answers, strict=True))
    started += [p.name for p in todo]
    if settle:
        wait_settled(d, sup, [p for p in plist if p.name in started])
    return started


def _each_when_ready(todo: list[ProcessDef], need: dict[str, list[str]], launch, healthy) -> list[tuple[str, float]]:
    """Launch each process of todo as soon as those it needs serve (the ones not in todo serve already), not a
    whole wave after the slowest of the one before; every health check waits beside the others. Each answer
    (health detail, seconds from launch to healthy) in todo's order. The first failure is raised once the
    processes already launched are answered; the ones that needed it are not launched. Each wait is bounded:
    what a process waits for is either healthy or failed within its own start timeout."""
    done = {p.name: threading.Event() for p in todo}
    failed = threading.Event()

    def bring_up(p: ProcessDef) -> tuple[str, float]:
        try:
            for name in need[p.name]:
                if name in done:
                    done[name].wait()
            if failed.is_set():
                return "not started", 0.0
            launch(p)
            return healthy(p)
        except BaseException:
            failed.set()
            raise
        finally:
            done[p.name].set()

    with ThreadPoolExecutor(max_workers=len(todo)) as pool:
        futures = [pool.submit(bring_up, p) for p in todo]
        return [f.result() for f in futures]


def wait_settled(d: Deployment, sup: Manager, plist: list[ProcessDef]) -> None:
    """Until supervisord counts each of these processes as RUNNING: it calls one STARTING for `settle` seconds
    after its spawn even once it serves, and a `start` that returned must leave nothing `status` shows as
    starting (the dashboard, last, is healthy within about a second)."""
    deadline = time.monotonic() + max((p.settle for p in plist), default=0) + 10
    names = {p.name for p in plist}
    if not names:
        return
    while True:
        starting = sorted(n for n, st in sup.states().items() if n in names and st.state == "STARTING")
        if not starting:
            return
        if time.monotonic() > deadline:
            raise StackcrateError(f"{', '.join(starting)} still starting (restarted by supervisord?)",
                                  hint="the end of its log:\n" + log_tail(d, starting[0]))
        time.sleep(0.2)


def before_start(d: Deployment, sup: Manager, p: ProcessDef) -> None:
    """What a process needs in place before it starts (on either backend): the folders it writes, its network
    namespace, the settings it reads."""
    make_written_folders(p)
    if p.netns:
        ovn.ensure_netns(d)
    for call in p.before_start:
        sup.run(call, timeout=120)


def stop_names(d: Deployment, sup: Manager, names: list[str], t: Timer, verb: str = "Stopping") -> dict[str, str]:
    """Stop these processes: OpenStack ones in parallel (nova's sleep part of the deadline: configs.nova_shutdown),
    then backing ones one by one, in reverse start order."""
    order = [n for n in reversed(process_names(d)) if n in names]
    tier1 = [n for n in order if n not in backing.backing_names(d)]
    out: dict[str, str] = {}

    def stop(name: str) -> str:
        t0 = time.monotonic()
        sup.stop(name)
        return "killed after deadline" if time.monotonic() - t0 >= d.config.stop_timeout else "stopped"

    if tier1:
        with t.step(f"{verb} {', '.join(tier1)}") as info:
            with ThreadPoolExecutor(max_workers=len(tier1)) as pool:
                out.update(zip(tier1, pool.map(stop, tier1), strict=True))
            killed = [n for n in tier1 if out[n] != "stopped"]
            info["note"] = f"killed after {d.config.stop_timeout:g}s: {', '.join(killed)}" if killed else ""
            _wait_ports_closed(d, tier1)
    for name in [n for n in order if n in backing.backing_names(d)]:
        with t.step(f"{verb} {name}") as info:
            out[name] = info["note"] = stop(name)
    return out


def _wait_ports_closed(d: Deployment, names: list[str], timeout: float = 20) -> None:
    """A WSGI server's workers may still hold its port a moment after their master exited: wait (bounded) until
    the stopped processes' ports are free, so what starts next finds them so (its preflight names any left)."""
    held = ports(d)
    wanted = [port for n in names for port in held.get(n, [])]
    deadline = time.monotonic() + timeout
    while any(not port_free(d.listen, port) for port in wanted) and time.monotonic() < deadline:
        time.sleep(0.2)


def stop_all(d: Deployment, t: Timer) -> dict[str, str]:
    """Every process (see stop_names), then supervisord itself; processes a killed supervisord left behind too."""
    sup = manager_for(d)
    if not sup.running():
        left = sup.stop_orphans(d.config.stop_timeout)
        return dict.fromkeys(left, "stopped (its supervisor was gone)")
    states = sup.states()
    out = stop_names(d, sup, [n for n, st in states.items() if st.state not in STOPPED], t)
    sup.shutdown()
    return out
