"""Target root filesystems (made by mmdebstrap, cached by package set) and running commands inside them.

A build never writes to the host's /opt: commands run in a private mount namespace, chrooted into a cached
rootfs whose /opt, /tmp and /mnt are fresh tmpfs mounts, with the caller's folders bind-mounted where the
command expects them (e.g. a staging folder at the component's final install path).
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .cache import Cache, digest_of, remove_tree
from .errors import StackcrateError
from .targets import Target
from .tools import ToolFailed, run, which

ROOTFS_FORMAT = 1  # bump when the way we make a rootfs changes


def require_root() -> None:
    if os.geteuid() != 0:
        raise StackcrateError("building needs root: it runs mmdebstrap, unshare and chroot to build in the "
                              "target's own root filesystem", hint="run stackcrate build as root (e.g. with sudo)")


def rootfs_packages(target: Target, extra: Iterable[str] = ()) -> list[str]:
    return sorted({target.python_package, *extra})


def base_rootfs(target: Target, cache: Cache, extra_packages: Iterable[str] = (),
                mirror: str | None = None) -> Path:
    """An unpacked minbase rootfs of the target with its interpreter (and extra packages), made once: a system
    as dpkg installs it (the base layer of images, the lab's nodes).

    Returns the folder; ``<folder>.tar`` beside it is the tarball mmdebstrap wrote (for image layers).
    """
    return _rootfs(target, cache, "minbase", rootfs_packages(target, extra_packages), mirror)


BUILD_ROOT_PACKAGES = ("coreutils",)   # /usr/bin/env, which chroot_run starts programs with


def build_root(target: Target, cache: Cache, mirror: str | None = None) -> Path:
    """The root venvs are built in: the target's interpreter with its libraries, as the target's packages ship
    them, unpacked but not installed (mmdebstrap's extract variant: no maintainer scripts, no dpkg run).

    Building needs only the interpreter and its standard library, so it does not wait for a whole system to
    be installed (5–8 s with the standard library compiled, instead of 18–22 s). Python's postinst would
    byte-compile the standard library; this does the same once, so each build process loads it from bytecode
    rather than compiling it from source.
    """
    def finish(tree: Path) -> None:
        for mount_point in ("proc", "dev", *(d.lstrip("/") for d in _SCRATCH)):  # no base-files to make them
            (tree / mount_point).mkdir(mode=0o755, exist_ok=True)
        chroot_run(tree, [target.python, "-m", "compileall", "-q", "-j0", f"/usr/lib/python{target.python_minor}"],
                   timeout=600)

    return _rootfs(target, cache, "extract", rootfs_packages(target, BUILD_ROOT_PACKAGES), mirror, finish)


def _rootfs(target: Target, cache: Cache, variant: str, packages: list[str], mirror: str | None,
            finish: Callable[[Path], object] | None = None) -> Path:
    """mmdebstrap's root of `variant` with `packages`, unpacked in the cache (made once). The minbase one keeps the
    tarball mmdebstrap wrote beside it (image layers are made from it); the others are written as a folder."""
    require_root()
    mirror = mirror or os.environ.get("STACKCRATE_DEBIAN_MIRROR") or target.mirror
    key = digest_of({"v": ROOTFS_FORMAT, "suite": target.suite, "packages": packages, "mirror": mirror,
                     **({"variant": variant} if variant != "minbase" else {})})[:24]
    final = cache.dir("rootfs") / f"{target.name}-{'' if variant == 'minbase' else variant + '-'}{key}"
    if (final / "usr").is_dir():
        cache.used(final)
        return final
    with cache.locked(f"rootfs:{key}"):
        if (final / "usr").is_dir():
            return final
        work = cache.tempdir("rootfs-")
        keep_tar = variant == "minbase"
        tree, tarball = work / "tree", work / "tree.tar"
        argv = [which("mmdebstrap"), f"--variant={variant}", f"--include={','.join(packages)}",
                "--mode=root", f"--format={'tar' if keep_tar else 'directory'}", target.suite,
                str(tarball if keep_tar else tree), mirror]
        try:
            run(argv, env={"SOURCE_DATE_EPOCH": "0"}, timeout=1800)
            if keep_tar:
                tree.mkdir()
                run(["tar", "-C", tree, "--numeric-owner", "-xpf", tarball])
            if finish:
                finish(tree)
        except ToolFailed as exc:
            remove_tree(work)
            raise StackcrateError(
                f"the {variant} root filesystem for {target.name} (packages: {', '.join(packages)}) could not be "
                f"built by mmdebstrap:\n{exc.stderr.strip()[-1500:] or exc.stdout.strip()[-1500:]}",
                hint="check that the package names exist in Debian " + target.suite
                + " and that the mirror " + mirror + " is reachable",
            ) from None
        if keep_tar:
            Cache.commit(tarball, final.with_suffix(".tar"))
        Cache.commit(tree, final)
        remove_tree(work)
    return final


@dataclass(frozen=True)
class Bind:
    host: Path
    inside: str            # absolute path inside the root; must live under /opt, /mnt or /tmp
    readonly: bool = False


_SCRATCH = ("/opt", "/mnt", "/tmp")


def chroot_run(root: Path, argv: Sequence[str], *, binds: Sequence[Bind] = (),
               env: Mapping[str, str] | None = None, check: bool = True, timeout: float = 1800):
    """Run argv chrooted into root without modifying root: /opt, /mnt and /tmp are private tmpfs mounts."""
    unshare = which("unshare", "util-linux")
    lines = ["set -e", f"R={shlex.quote(str(root))}"]
    for d in _SCRATCH:
        lines.append(f'mount -t tmpfs -o mode=0755 stackcrate "$R{d}"')
    for b in binds:
        if not any(b.inside == d or b.inside.startswith(d + "/") for d in _SCRATCH):
            raise ValueError(f"bind target {b.inside} must be under {_SCRATCH}")
        target = f'"$R"{shlex.quote(b.inside)}'
        if b.host.is_dir():
            lines.append(f"mkdir -p {target}")
        else:
            lines.append(f"mkdir -p \"$(dirname {target})\" && : > {target}")
        lines.append(f"mount --bind {shlex.quote(str(b.host))} {target}")
        if b.readonly:
            lines.append(f"mount -o remount,bind,ro {target}")
    lines.append('mount -t proc proc "$R/proc"')
    lines.append('mount --rbind /dev "$R/dev"')
    envs = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/tmp",
            "LANG": "C.UTF-8", **(env or {})}
    env_args = " ".join(shlex.quote(f"{k}={v}") for k, v in envs.items())
    lines.append(f'exec chroot "$R" /usr/bin/env -i {env_args} {shlex.join([str(a) for a in argv])}')
    return run([unshare, "--mount", "--pid", "--fork", "--kill-child", "/bin/sh", "-c", "\n".join(lines)],
               check=check, timeout=timeout)
