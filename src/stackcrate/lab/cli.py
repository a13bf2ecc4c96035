"""`stackcrate lab`: thin wiring of lab.py."""

from __future__ import annotations

import click

dir_option = click.option("--dir", "lab_dir", default="lab", show_default=True, type=click.Path(file_okay=False),
                          help="The lab's folder (its inventory is <dir>/hosts.yml).")


@click.group()
def lab() -> None:
    """Nodes on this machine (namespaces + sshd) to try a multi-node deployment on."""


@lab.command()
@click.option("-n", "--nodes", "count", default=3, show_default=True, type=int, help="How many nodes.")
@click.option("--target", default="debian-bookworm", show_default=True, help="The nodes' distribution.")
@dir_option
@click.pass_obj
def up(obj, count: int, target: str, lab_dir: str) -> None:
    """Start the nodes (node1 control, the others compute) and write the Ansible inventory."""
    from .lab import up as lab_up
    from .state import LabDir

    lab = LabDir(lab_dir)
    state = lab_up(lab, count, obj.cache, target, progress=obj.ui.info)
    rows = "\n".join(f"  {n.name}  {n.ip}  (enter: stackcrate lab exec {n.name})" for n in state.nodes)
    obj.ui.result({"inventory": str(lab.inventory), "netns": state.netns, "seconds": state.seconds_up,
                   "nodes": [{"name": n.name, "ip": n.ip, "pid": n.pid} for n in state.nodes]},
                  f"{len(state.nodes)} node(s) up in {state.seconds_up:.1f}s; inventory {lab.inventory}\n{rows}")


@lab.command()
@dir_option
@click.pass_obj
def down(obj, lab_dir: str) -> None:
    """Stop every node and remove the lab's namespace, bridge, mounts and files."""
    from .lab import down as lab_down
    from .lab import leftovers
    from .state import LabDir

    lab = LabDir(lab_dir)
    done = lab_down(lab)
    left = leftovers(lab)
    if left:
        from ..errors import StackcrateError

        raise StackcrateError(f"the lab left: {', '.join(left)}", hint="run `stackcrate lab down` again")
    obj.ui.result({"removed": done}, "\n".join(done) if done else f"no lab was up in {lab.path}")


@lab.command()
@dir_option
@click.pass_obj
def status(obj, lab_dir: str) -> None:
    """The nodes and whether each runs."""
    from .lab import status as lab_status
    from .state import LabDir

    rows = lab_status(LabDir(lab_dir))
    text = "\n".join(f"{r['node']}  {r['ip']}  {'running' if r['running'] else 'NOT running'}" for r in rows)
    obj.ui.result(rows, text or "no lab is up")


@lab.command(context_settings={"ignore_unknown_options": True})
@dir_option
@click.argument("node")
@click.argument("argv", nargs=-1, type=click.UNPROCESSED)
def exec(lab_dir: str, node: str, argv: tuple[str, ...]) -> None:  # noqa: A001 - the verb users type
    """Run a command in a node (a shell without one), as root: stackcrate lab exec node2 -- hostname"""
    import os

    from .lab import node_command
    from .state import LabDir

    command = node_command(LabDir(lab_dir), node, list(argv))
    os.execv(command[0], command)
