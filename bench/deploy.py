#!/usr/bin/env python3
"""Benchmark: `stackcrate deploy run` from built artifacts to a healthy cloud, then `deploy verify`.

    python bench/deploy.py [--workdir DIR] [--cache DIR] [--runs N]

Uses examples/deploy (keystone, glance, placement, neutron with OVN, nova with the fake driver, horizon) on the
local backend: builds its artifacts first (`deploy build`; quick with --cache naming a filled cache), then N times
(default 2): `deploy rm --purge`, `deploy run`, `deploy verify`. The first run is the first deploy of these
artifacts (each archive read whole under the member rules and unpacked, the dashboard's static files made from
scratch, every database migrated; the later runs find those in stackcrate's cache: the venvs linked from the
unpacked copies the first run kept, the new clouds' databases loaded from its schemas); venvs another deployment
installed are kept, and that run does not install them (its table says which). Prints each run's steps and totals
with the targets (run <= 30 s, verify <= 15 s) and the core-seconds the machine was busy meanwhile (that work
spread over every core is as fast as any order of it can be), writes DIR/deploy.json, and leaves nothing running.
Needs root and the packages of the README's deploy section (MariaDB, RabbitMQ, OVN, ...).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from example import arguments, prepared

# ext4 without a journal (these machines' disks) skips inodes freed in the last 30-35 s when it allocates new
# ones, looking each one up (ext4_create -> find_inode_bit -> recently_deleted, in `perf record`): unpacking nova's
# 25,000 files took 1.0 s of kernel time on a quiet disk, 6.6-14.6 s right after as many were removed (and once
# 45 s after). A machine deploying for the first time has none: the bench puts the cache's parts that a first
# deploy makes aside (a rename frees nothing) and removes them at its end; between runs it waits `rm --purge`'s
# out.
INODES_AGE = 40


def cpu_seconds() -> tuple[float, float]:
    """Since the machine booted, summed over its cores (/proc/stat): the CPU time spent running anything, and
    the time the hypervisor gave this virtual machine's cores to others instead (steal)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def stackcrate(work: Path, env: dict, *args: str, timeout: float = 1800) -> tuple[float, dict]:
    """Run `stackcrate --json deploy ARGS`: the seconds it took and its answer, with `busy_core_seconds`: the CPU
    time the whole machine spent meanwhile (the services' processes included), and `steal_core_seconds`."""
    t0, (busy0, steal0) = time.monotonic(), cpu_seconds()
    proc = subprocess.run([sys.executable, "-m", "stackcrate", "--json", "deploy", *args, "-s",
                           work / "services.yaml", "-c", work / "configuration.yaml"],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        sys.exit(f"deploy {' '.join(args)} failed:\n{proc.stderr[-3000:]}")
    answer = json.loads(proc.stdout) if proc.stdout.strip() else {}
    busy, steal = cpu_seconds()
    return time.monotonic() - t0, {**answer, "busy_core_seconds": round(busy - busy0, 1),
                                   "steal_core_seconds": round(steal - steal0, 1)}


def table(title: str, seconds: float, answer: dict, target: float) -> None:
    steps, busy, cores = answer.get("steps", []), answer["busy_core_seconds"], os.cpu_count() or 1
    print(f"\n{title}: {seconds:.1f} s (target <= {target:.0f} s: {'met' if seconds <= target else 'NOT met'})")
    # the CPU the run needed, spread over every core: no schedule of the same work finishes sooner; what the
    # hypervisor ran instead on these cores (steal) is time the run could not have
    print(f"  the machine ran {busy:.1f} core-seconds of {seconds * cores:.1f} ({busy / (seconds * cores):.0%}): that"
          f" work takes >= {busy / cores:.1f} s on {cores} cores; the hypervisor took "
          f"{answer['steal_core_seconds']:.1f} core-seconds")
    print("   began   took  step (steps run side by side)")
    for s in steps:
        print(f"  {s.get('began', 0):6.1f} {s['seconds']:6.1f}  {s['step'][:100]}")


def main() -> None:
    args = arguments(__doc__, ("--runs", {"type": int, "default": 2}))
    work, cache, env = prepared(args, "deploy")
    built, _ = stackcrate(work, env, "build", timeout=7200)
    print(f"artifacts built in {built:.1f} s", flush=True)
    (cache / "artifacts-checked" / "artifacts-checked.json").unlink(missing_ok=True)  # a first deploy
    # the venvs unpacked from their archives, the dashboard's static files and the databases made from scratch
    aside = cache / "bench-deploy-aside"  # a bench killed before its end left it
    if aside.exists():
        shutil.rmtree(aside)
        time.sleep(INODES_AGE)
    aside.mkdir()
    for made in ("venvs", "made-files", "schemas"):
        if (cache / made).exists():
            (cache / made).rename(aside / made)
    runs = []
    try:
        for n in range(args.runs):
            if (work / "state").exists():
                stackcrate(work, env, "rm", "--purge", "--yes")
                time.sleep(INODES_AGE)
            run_s, run = stackcrate(work, env, "run")
            verify_s, verify = stackcrate(work, env, "verify")
            runs.append({"run_seconds": round(run_s, 1), "verify_seconds": round(verify_s, 1),
                         **{f"{verb}_{k}": answer[k] for verb, answer in (("run", run), ("verify", verify))
                            for k in ("busy_core_seconds", "steal_core_seconds")},
                         "run_steps": run.get("steps", []), "verify_steps": verify.get("steps", [])})
            installed = any(s["step"].startswith("Installing") for s in run.get("steps", []))
            kind = ("venvs installed by this run" if installed else "venvs found installed, by another deployment") \
                + ("; first deploy of the artifacts" if n == 0 else "")
            table(f"run {n + 1} ({kind}): deploy run", run_s, run, 30)
            table(f"run {n + 1}: deploy verify", verify_s, verify, 15)
    finally:
        stackcrate(work, env, "rm", "--purge", "--yes")
        shutil.rmtree(aside)
    cores = os.cpu_count() or 1
    print(f"\nrun      deploy run   its CPU work / {cores} cores   stolen   verify")
    for n, r in enumerate(runs, 1):
        print(f"{n:<9}{r['run_seconds']:>8.1f} s {r['run_busy_core_seconds'] / cores:>18.1f} s "
              f"{r['run_steal_core_seconds']:>6.1f} s {r['verify_seconds']:>6.1f} s")
    (work / "deploy.json").write_text(json.dumps({"cores": os.cpu_count(), "runs": runs}, indent=2) + "\n")


if __name__ == "__main__":
    main()
