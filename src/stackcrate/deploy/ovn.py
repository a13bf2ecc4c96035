"""OVN, the network neutron's ML2/OVN driver programs, from Debian's packages (ovn-central, ovn-host,
openvswitch-switch), run like the other backing services: under the deployment's state folder, on its own ports.

Control plane: the northbound and southbound databases (ovsdb-server, on TCP for neutron and a unix socket for
ovn-northd) and ovn-northd, which turns the logical network neutron writes into logical flows.
Compute node: Open vSwitch's database, ovs-vswitchd and ovn-controller, the chassis that claims the ports of the
servers on its integration bridge.

ovs-vswitchd runs in a network namespace of the deployment's own (`netns`): its bridge and every server's port
exist only there, never among the machine's interfaces. Without the Open vSwitch kernel module (none on these
hosts) it forwards in userspace (datapath type netdev); `ovs_datapath` in the configuration picks one.
"""

from __future__ import annotations

from pathlib import Path

from .. import tools
from .config import DEFAULT_HOST, Deployment
from .processes import Call, Health, ProcessDef, Runner

# Where each program is in Debian (in the image too), and its package (named when it is missing).
PATHS = {"ovsdb-server": "/usr/sbin/ovsdb-server", "ovsdb-tool": "/usr/bin/ovsdb-tool",
         "ovsdb-client": "/usr/bin/ovsdb-client",
         "ovs-vsctl": "/usr/bin/ovs-vsctl", "ovs-vswitchd": "/usr/lib/openvswitch-switch/ovs-vswitchd",
         "ovn-northd": "/usr/bin/ovn-northd", "ovn-controller": "/usr/bin/ovn-controller"}
PACKAGES = {"ovsdb-server": "openvswitch-common", "ovsdb-tool": "openvswitch-common",
            "ovsdb-client": "openvswitch-common",
            "ovs-vsctl": "openvswitch-switch", "ovs-vswitchd": "openvswitch-switch", "ovn-northd": "ovn-central",
            "ovn-controller": "ovn-host"}
SCHEMAS = {"ovnnb_db": "/usr/share/ovn/ovn-nb.ovsschema", "ovnsb_db": "/usr/share/ovn/ovn-sb.ovsschema",
           "conf": "/usr/share/openvswitch/vswitch.ovsschema"}
# The processes, in start order: the databases before what reads them. The central ones run on the control host,
# the chassis on each compute host.
CENTRAL = ("ovn-nb-db", "ovn-sb-db", "ovn-northd")
CHASSIS = ("openvswitch-db", "ovs-vswitchd", "ovn-controller")
NAMES = CENTRAL + CHASSIS
IMAGE = "ovn"   # the image all of them run from on a container backend (backing.SYSTEM_IMAGES)
KERNEL_MODULE = Path("/sys/module/openvswitch")


def enabled(d: Deployment) -> bool:
    """OVN runs where neutron does (its only user)."""
    return "neutron" in d.services.enabled()


def data_dir(d: Deployment) -> Path:
    return d.state / "data" / "ovn"


def ovn_rundir(d: Deployment) -> Path:
    return d.state / "run" / "ovn"


def ovs_rundir(d: Deployment) -> Path:
    return d.state / "run" / "openvswitch"


def ovs_socket(d: Deployment) -> Path:
    """Open vSwitch's database: ovs-vswitchd, ovn-controller and nova-compute's VIF plugging use it."""
    return ovs_rundir(d) / "db.sock"


def nb_remote(d: Deployment) -> str:
    return f"tcp:{d.control}:{d.services.backing.ovn.nb_port}"


def sb_remote(d: Deployment) -> str:
    return f"tcp:{d.control}:{d.services.backing.ovn.sb_port}"


def _listen(port: int, d: Deployment) -> str:
    """ovsdb-server's passive TCP remote (port first, then the address)."""
    return f"ptcp:{port}:{d.listen}"


def netns(d: Deployment) -> str:
    """The deployment's network namespace, where ovs-vswitchd and so every bridge and port of it live."""
    return f"stackcrate-{d.id}"


def bridge(d: Deployment) -> str:
    """The integration bridge (ovn-controller makes it): per deployment, within the 15 characters of a netdev."""
    return f"sc{d.id}-int"


def chassis(d: Deployment) -> str:
    """The chassis' name in OVN's southbound database: one per host of the cloud."""
    return f"stackcrate-{d.id}" if d.host == DEFAULT_HOST else f"{d.host}-{d.id}"


def datapath(d: Deployment) -> str:
    """netdev (userspace) or system (the kernel module); `auto`: system only where the module is loaded."""
    chosen = d.config.ovs_datapath
    if chosen == "auto":
        return "system" if KERNEL_MODULE.exists() else "netdev"
    return chosen


def _env(d: Deployment) -> dict[str, str]:
    # every OVS/OVN program puts its pid files and control sockets in these, never in /var/run
    return {"OVS_RUNDIR": str(ovs_rundir(d)), "OVN_RUNDIR": str(ovn_rundir(d)), "OVS_DBDIR": str(data_dir(d)),
            "OVS_LOGDIR": str(d.state / "log")}


def _call(d: Deployment, program: str, args: list[str], writes: tuple = ()) -> Call:
    return Call(IMAGE, PATHS[program], tuple(args), _env(d), None, (), tuple(str(w) for w in writes))


def _logging() -> list[str]:
    # supervisord (or the engine) keeps what goes to the console; OVS would otherwise write to syslog too
    return ["-vconsole:info", "-vsyslog:off", "--no-chdir"]


def _proc(d: Deployment, name: str, program: str, args: list[str], health: Health, writes: tuple,
          ports: tuple[int, ...] = (), **more) -> ProcessDef:
    return ProcessDef(name, "backing", PATHS[program], tuple(args), _env(d), component=IMAGE, ports=ports,
                      health=health, writes=tuple(str(w) for w in writes), start_timeout=60, **more)


def _ovsdb(d: Deployment, name: str, db: str, schema_name: str, remotes: list[str], rundir: Path,
           probe: str, ports: tuple[int, ...] = ()) -> ProcessDef:
    args = [*_logging(), f"--pidfile={rundir / (name + '.pid')}", f"--unixctl={rundir / (name + '.ctl')}",
            *(f"--remote={r}" for r in remotes), str(data_dir(d) / f"{db}.db")]
    return _proc(d, name, "ovsdb-server", args, Health("ovsdb", url=probe, command=schema_name),
                 (data_dir(d), rundir), ports)


def processes(d: Deployment) -> list[ProcessDef]:
    """Every OVN/OVS process of the deployment, in start order (NAMES); none without neutron."""
    if not enabled(d):
        return []
    o = d.services.backing.ovn
    run_ovn, run_ovs = ovn_rundir(d), ovs_rundir(d)
    nb_sock, sb_sock = run_ovn / "ovnnb_db.sock", run_ovn / "ovnsb_db.sock"
    northd = [*_logging(), f"--ovnnb-db=unix:{nb_sock}", f"--ovnsb-db=unix:{sb_sock}",
              f"--pidfile={run_ovn / 'ovn-northd.pid'}", f"--unixctl={run_ovn / 'ovn-northd.ctl'}"]
    vswitchd = [f"unix:{ovs_socket(d)}", *_logging(), f"--pidfile={run_ovs / 'ovs-vswitchd.pid'}",
                f"--unixctl={run_ovs / 'ovs-vswitchd.ctl'}"]
    # ovn-controller 23.03 has no --unixctl: its control socket is <OVN_RUNDIR>/ovn-controller.<pid>.ctl
    controller = [f"unix:{ovs_socket(d)}", *_logging(), f"--pidfile={run_ovn / 'ovn-controller.pid'}"]
    return [
        _ovsdb(d, "ovn-nb-db", "ovnnb_db", "OVN_Northbound", [f"punix:{nb_sock}", _listen(o.nb_port, d)], run_ovn,
               nb_remote(d), (o.nb_port,)),
        _ovsdb(d, "ovn-sb-db", "ovnsb_db", "OVN_Southbound", [f"punix:{sb_sock}", _listen(o.sb_port, d)], run_ovn,
               sb_remote(d), (o.sb_port,)),
        _proc(d, "ovn-northd", "ovn-northd", northd,
              Health("unixctl", url=str(run_ovn / "ovn-northd.ctl"), command="status"), (run_ovn,)),
        _ovsdb(d, "openvswitch-db", "conf", "Open_vSwitch", [f"punix:{ovs_socket(d)}"], run_ovs,
               f"unix:{ovs_socket(d)}"),
        _proc(d, "ovs-vswitchd", "ovs-vswitchd", vswitchd,
              Health("unixctl", url=str(run_ovs / "ovs-vswitchd.ctl"), command="dpif/show"), (run_ovs,),
              netns=netns(d), devices=("/dev/net/tun",), capabilities=("NET_ADMIN",),
              before_start=(chassis_settings(d),)),
        _proc(d, "ovn-controller", "ovn-controller", controller,
              Health("unixctl", url=str(run_ovn / "ovn-controller.pid"), command="connection-status"),
              (run_ovn, run_ovs)),
    ]


def chassis_settings(d: Deployment) -> Call:
    """What ovn-controller reads from Open vSwitch's database: which chassis it is (the compute host nova
    binds ports to), where the southbound database is, its tunnel endpoint and the bridge to make. Written
    before every start of ovs-vswitchd, so a changed listen address or port takes effect."""
    ids = {"system-id": chassis(d), "hostname": d.host, "ovn-remote": sb_remote(d),
           "ovn-encap-type": "geneve", "ovn-encap-ip": d.listen, "ovn-bridge": bridge(d),
           "ovn-bridge-datapath-type": datapath(d)}
    sets = [f"external_ids:{k}={v}" for k, v in ids.items()]
    return _call(d, "ovs-vsctl", [f"--db=unix:{ovs_socket(d)}", "--no-wait", "--timeout=30", "--", "init",
                                  "--", "set", "Open_vSwitch", ".", *sets], (ovs_rundir(d),))


def create_databases(d: Deployment, runner: Runner) -> list[str]:
    """Each database file, created from Debian's schema once, converted when the packages bring a newer schema;
    what was created or converted."""
    if not enabled(d):
        return []
    data_dir(d).mkdir(parents=True, exist_ok=True)
    done = []
    # the northbound and southbound databases on the control host, Open vSwitch's on each compute host
    here = [db for db in SCHEMAS if d.has("compute" if db == "conf" else "control")]
    for db, schema in ((db, SCHEMAS[db]) for db in here):
        path = data_dir(d) / f"{db}.db"
        if not path.exists():
            runner.run(_call(d, "ovsdb-tool", ["create", str(path), schema], (data_dir(d),)), timeout=60)
            done.append(f"{db} created")
            continue
        needs = runner.run(_call(d, "ovsdb-tool", ["needs-conversion", str(path), schema], (data_dir(d),)),
                           timeout=60).stdout.strip()
        if needs == "yes":
            runner.run(_call(d, "ovsdb-tool", ["convert", str(path), schema], (data_dir(d),)), timeout=120)
            done.append(f"{db} converted")
    return done


# The central databases an upgrade's snapshot keeps (neutron writes the northbound one): name -> (remote, schema)
def _central(d: Deployment) -> dict[str, tuple[str, str]]:
    return {"ovnnb_db": (nb_remote(d), "OVN_Northbound"), "ovnsb_db": (sb_remote(d), "OVN_Southbound")}


def backup(d: Deployment, runner: Runner) -> dict[str, str]:
    """The central databases' contents as ovsdb-server serves them now (`ovsdb-client backup`): each a database
    file ovsdb-server opens as it is (put back while it is stopped)."""
    return {name: runner.run(_call(d, "ovsdb-client", ["backup", remote, schema]), timeout=120).stdout
            for name, (remote, schema) in _central(d).items()}


def ensure_netns(d: Deployment) -> None:
    """The deployment's network namespace, with its loopback up (the tunnel endpoint of a one-node cloud)."""
    name = netns(d)
    if not Path("/run/netns", name).exists():
        tools.run([tools.which("ip", "iproute2"), "netns", "add", name], timeout=30)
    tools.run([tools.which("ip", "iproute2"), "-n", name, "link", "set", "lo", "up"], timeout=30)


def remove_netns(d: Deployment) -> bool:
    """Remove the namespace (with whatever ovs-vswitchd left in it); False when there was none."""
    if not Path("/run/netns", netns(d)).exists():
        return False
    tools.run([tools.which("ip", "iproute2"), "netns", "delete", netns(d)], timeout=30)
    return True
