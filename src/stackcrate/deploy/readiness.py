"""When a cloud can build servers: its compute hosts mapped into the cell (once nova-compute registered them) and
offered by placement."""

from __future__ import annotations

import time

from .. import tools
from ..errors import StackcrateError
from . import backing, bootstrap
from .config import Deployment
from .health import Checker, Tokens
from .layout import Layout
from .manager import Manager
from .processes import Call, ProcessDef
from .timer import Timer
from .warm_program import WarmProgram

READY_TIMEOUT = 180.0   # seconds for the cloud to be able to build a server once every process is up


def _sql_list(hosts: list[str]) -> str:
    return ", ".join(f"'{h}'" for h in hosts)  # host names are validated: letters, digits, dots and dashes


def discover_hosts(lay: Layout, sup: Manager, t: Timer, hosts: list[str], manage: WarmProgram | None = None) -> None:
    """Map the compute hosts into cell1 once each has registered (nova-compute does that on start); manage: a
    nova-manage already loaded to run it with."""
    def count(q: str) -> int:
        return int(backing.sql(lay.d, q, sup).strip() or 0)

    with t.step(f"Mapping the compute host(s) {', '.join(hosts)} (nova-manage cell_v2 discover_hosts)") as info:
        if count(f"SELECT COUNT(*) FROM nova_api.host_mappings WHERE host IN ({_sql_list(hosts)});") == len(hosts):
            info["note"] = "already mapped"
            return
        deadline = time.monotonic() + 120
        # Polling the database is instant; nova-manage takes ~3 s to start, so run it once the nodes exist.
        while count(f"SELECT COUNT(DISTINCT host) FROM nova.compute_nodes WHERE host IN ({_sql_list(hosts)}) "
                    "AND deleted=0;") < len(hosts):
            if time.monotonic() > deadline:
                raise StackcrateError(f"nova-compute did not register on every one of {', '.join(hosts)} within "
                                      "120s", hint="see `stackcrate deploy logs nova-compute` (on each host)")
            time.sleep(0.5)
        call = _discover_call(lay)
        if manage is not None:
            manage.run(call.argv, call.env, timeout=300)
        else:
            sup.run(call, timeout=300)


def _discover_call(lay: Layout) -> Call:
    return bootstrap.management_call(lay, "nova", [lay.bin("nova", "nova-manage"), "--config-file",
                                                   str(lay.conf_file("nova")), "cell_v2", "discover_hosts"])


def compute_in_placement(lay: Layout, host: str, tokens: Tokens | None = None) -> str | None:
    """Why placement cannot yet offer the compute host to the scheduler (None: it can)."""
    placement = lay.d.services.enabled()["placement"]
    base = f"http://{lay.d.control}:{placement.backend_port}"
    checker = Checker(lay.d, lay.secrets, tokens=tokens)
    try:
        rps = checker.api_get(f"{base}/resource_providers?name={host}").json()["resource_providers"]
        if not rps:
            return f"no resource provider {host} in placement yet"
        inv = checker.api_get(f"{base}/resource_providers/{rps[0]['uuid']}/inventories").json()["inventories"]
    except tools.FetchFailed as exc:
        return f"placement: {exc.reason}"
    missing = [rc for rc in ("VCPU", "MEMORY_MB", "DISK_GB") if rc not in inv]
    return f"its inventory lacks {', '.join(missing)}" if missing else None


def _hosts_to_ready(d: Deployment, hosts: list[str] | None = None) -> list[str]:
    """The compute hosts wait_cloud_ready maps and waits for: by default this host when it is control and compute
    at once; none without nova-compute."""
    nova = d.services.enabled().get("nova")
    if nova is None or "compute" not in nova.processes:
        return []
    return hosts if hosts is not None else ([d.host] if d.has("control") and d.has("compute") else [])


def wait_cloud_ready(lay: Layout, sup: Manager, t: Timer, hosts: list[str] | None = None,
                     manage: WarmProgram | None = None, tokens: Tokens | None = None) -> None:
    """Return once the cloud can build servers on `hosts`: each mapped into the cell and offered by placement
    (each nova process was already seen consuming its RPC queue). By default this host when it is control and
    compute at once; a control host of several hosts maps its compute hosts once they run (`add-compute`)."""
    hosts = _hosts_to_ready(lay.d, hosts)
    if not hosts:
        return
    discover_hosts(lay, sup, t, hosts, manage)
    with t.step(f"Waiting until placement offers {', '.join(hosts)}") as info:
        deadline = time.monotonic() + READY_TIMEOUT
        tokens = tokens or Tokens()
        while why := next((f"{h}: {w}" for h in hosts if (w := compute_in_placement(lay, h, tokens))), None):
            if time.monotonic() > deadline:
                raise StackcrateError(f"the cloud cannot build servers after {READY_TIMEOUT:.0f}s: {why}",
                                      hint="see `stackcrate deploy logs nova-compute` and `... logs placement`")
            time.sleep(0.5)
        info["note"] = "ready"


class ComputeReadiness:
    """The `then` of start_processes that maps the compute host into the cell and waits until placement offers it
    as soon as nova-compute serves, while the others still start (`ready` once done). warm_up(): nova-manage,
    loaded on the host (warm_program) as nova's migrations begin, runs them and then the mapping (which, at the
    very end of `run`, does not wait ~2 s for it to import nova again); it ends once used (or with stackcrate,
    whose end closes its input)."""

    def __init__(self, lay: Layout, sup: Manager, t: Timer, tokens: Tokens | None = None):
        self.lay, self.sup, self.t, self.tokens = lay, sup, t, tokens
        self.ready = False
        self.manage: WarmProgram | None = None

    def warm_up(self) -> WarmProgram | None:
        if self.lay.d.backend == "local" and _hosts_to_ready(self.lay.d) and self.manage is None:
            call = _discover_call(self.lay)
            self.manage = WarmProgram(call.program, call.env)
        return self.manage

    def then(self, p: ProcessDef) -> None:
        if p.name == "nova-compute":
            try:
                wait_cloud_ready(self.lay, self.sup, self.t, manage=self.manage, tokens=self.tokens)
            finally:
                self.close()
            self.ready = True

    def close(self) -> None:
        """End the loaded nova-manage (used or not: init ends it whatever happens)."""
        if self.manage is not None:
            self.manage.close()
            self.manage = None
