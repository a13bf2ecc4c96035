"""The process manager of a deployment's backend: Debian's supervisord for the local backend, the container engine
for podman and docker. Both answer to the same calls (ensure, states, start, stop, shutdown, run, remove), so the
lifecycle (lifecycle.py) is written once."""

from __future__ import annotations

from .config import Deployment
from .containers import Containers
from .supervisor import Supervisor

Manager = Supervisor | Containers

# the states both report (supervisord's names; containers.py maps the engine's to them)
STOPPED = {"STOPPED", "EXITED", "FATAL", "UNKNOWN"}     # not running: start it
DIED = {"EXITED", "FATAL", "BACKOFF", "STOPPED"}        # while starting: it failed


def manager_for(d: Deployment) -> Manager:
    return Supervisor(d) if d.backend == "local" else Containers(d)


def running_names(sup: Manager) -> set[str]:
    """The processes that run now (none while supervisord is down; a container engine always answers)."""
    return {n for n, st in sup.states().items() if st.state not in STOPPED} if sup.running() else set()
