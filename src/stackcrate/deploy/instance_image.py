"""The container image `deploy verify` boots with compute_driver podman, made by stackcrate from the target's
own busybox-static (no registry): a `docker save` archive (docker-archive), which is what Glance holds for
container_format docker, disk_format raw.

One layer: /bin/busybox and the applets the command uses. The command prints a line naming the instance (what
`openstack console log show` shows), then waits, exiting at once on SIGTERM (stop and reboot do not wait for the
engine's timeout). Bytes are the same on every build: fixed times, owners and order.
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path

from ..buildroot import base_rootfs
from ..cache import Cache
from ..targets import Target

PACKAGE = "busybox-static"
REF = "localhost/stackcrate/busybox:latest"
GREETING = "stackcrate instance"
APPLETS = ("sh", "echo", "sleep", "hostname", "date", "cat", "ls", "ps", "uname")
COMMAND = ["/bin/sh", "-c", (f'echo "{GREETING} $(hostname) up: $(uname -sr)"; trap "exit 0" TERM; '
           "while :; do sleep 1; done")]
EPOCH = 315532800  # 1980-01-01: the image's files and its creation time


def _entry(name: str, **kw) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime, info.uid, info.gid, info.uname, info.gname = EPOCH, 0, 0, "root", "root"
    for k, v in kw.items():
        setattr(info, k, v)
    return info


def _layer(busybox: bytes) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_entry("bin", type=tarfile.DIRTYPE, mode=0o755))
        tf.addfile(_entry("bin/busybox", size=len(busybox), mode=0o755), io.BytesIO(busybox))
        for applet in APPLETS:
            tf.addfile(_entry(f"bin/{applet}", type=tarfile.SYMTYPE, linkname="busybox", mode=0o777))
        tf.addfile(_entry("tmp", type=tarfile.DIRTYPE, mode=0o1777))
    return buf.getvalue()


def archive_bytes(busybox: bytes, arch: str = "amd64") -> bytes:
    """The docker-archive of an image whose one layer holds this busybox binary."""
    layer = _layer(busybox)
    layer_sha = hashlib.sha256(layer).hexdigest()
    created = "1980-01-01T00:00:00Z"
    config = json.dumps({
        "architecture": arch, "os": "linux", "created": created,
        "config": {"Env": ["PATH=/bin"], "Cmd": COMMAND, "WorkingDir": "/",
                   "Labels": {"org.opencontainers.image.title": "busybox for stackcrate's verify"}},
        "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_sha}"]},
        "history": [{"created": created, "created_by": f"stackcrate: /bin/busybox from Debian's {PACKAGE}"}],
    }, sort_keys=True, separators=(",", ":")).encode()
    config_sha = hashlib.sha256(config).hexdigest()
    manifest = json.dumps([{"Config": f"{config_sha}.json", "RepoTags": [REF],
                            "Layers": [f"{layer_sha}/layer.tar"]}], separators=(",", ":")).encode()
    repo, tag = REF.rsplit(":", 1)
    repositories = json.dumps({repo: {tag: layer_sha}}, separators=(",", ":")).encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        tf.addfile(_entry(f"{layer_sha}", type=tarfile.DIRTYPE, mode=0o755))
        for name, data in ((f"{layer_sha}/layer.tar", layer), (f"{layer_sha}/VERSION", b"1.0"),
                           (f"{config_sha}.json", config), ("manifest.json", manifest),
                           ("repositories", repositories)):
            tf.addfile(_entry(name, size=len(data), mode=0o644), io.BytesIO(data))
    return buf.getvalue()


def build(target: Target, cache: Cache, out: Path) -> Path:
    """Write the image archive to `out` (busybox from the target's rootfs with busybox-static, made once)."""
    root = base_rootfs(target, cache, extra_packages=[PACKAGE])
    data = archive_bytes((root / "bin" / "busybox").read_bytes())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    return out
