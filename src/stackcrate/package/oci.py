"""OCI image of a built component, written without any container engine.

Layers, bottom up (gzip: umoci and docker-archive reject zstd):
  1. the target's base rootfs (mmdebstrap minbase + interpreter): the same for every component of a target;
  2. the component's system packages: what an mmdebstrap with them added changes (whiteouts for removals),
     so components needing the same packages share it too;
  3. the component's venv (its deterministic tarball, uncompressed and re-gzipped).
Layer blobs are cached by content, so images of several components share their lower layers byte for byte.
"""

from __future__ import annotations

import filecmp
import gzip
import hashlib
import json
import os
import stat
import tarfile
import time
from pathlib import Path

import zstandard

from ..archive import walk_sorted
from ..buildroot import base_rootfs
from ..cache import Cache, remove_tree
from ..errors import StackcrateError
from ..model.built import BuiltComponent
from ..model.source import LockedGit
from ..ui import UI
from . import Made, cached, sbom, sysdeps

OCI_FORMAT = 2
GZ_LEVEL = 6
REF_NAME = "org.opencontainers.image.ref.name"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


class _Hashing:
    """A write-only file that hashes (and optionally forwards) what is written."""

    def __init__(self, inner=None):
        self.h, self.inner, self.size = hashlib.sha256(), inner, 0

    def write(self, b):
        self.h.update(b)
        self.size += len(b)
        return self.inner.write(b) if self.inner else len(b)

    def flush(self):
        pass


def gzip_layer(write_tar, cache: Cache, key: str) -> dict:
    """A gzip layer blob (cached by key): write_tar(fileobj) writes the uncompressed tar stream."""
    blobs = cache.dir("packages", "oci-blobs")
    meta = blobs / f"{key}.json"
    if meta.exists():
        return json.loads(meta.read_text())
    tmp = cache.tempdir("layer-") / "layer.tar.gz"
    try:
        with open(tmp, "wb") as raw:
            comp = _Hashing(raw)
            # mtime=0 and no file name: the gzip header holds nothing that changes between builds
            with gzip.GzipFile(filename="", mode="wb", fileobj=comp, compresslevel=GZ_LEVEL, mtime=0) as gz:
                plain = _Hashing(gz)
                write_tar(plain)
        desc = {"digest": f"sha256:{comp.h.hexdigest()}", "size": comp.size, "diff_id": f"sha256:{plain.h.hexdigest()}"}
        os.replace(tmp, blobs / comp.h.hexdigest())
        meta.write_text(json.dumps(desc))
    finally:
        remove_tree(tmp.parent)
    return desc


def _copy_file(src: Path):
    def write(out):
        with open(src, "rb") as fh:
            while block := fh.read(1 << 20):
                out.write(block)
    return write


def _unzstd(src: Path):
    def write(out):
        with open(src, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zf:
            while block := zf.read(1 << 20):
                out.write(block)
    return write


def _same(a: Path, b: Path) -> bool:
    sa, sb = a.lstat(), b.lstat()
    if (sa.st_mode, sa.st_uid, sa.st_gid) != (sb.st_mode, sb.st_uid, sb.st_gid):
        return False
    if stat.S_ISLNK(sa.st_mode):
        return os.readlink(a) == os.readlink(b)
    if stat.S_ISREG(sa.st_mode):
        return sa.st_size == sb.st_size and filecmp.cmp(a, b, shallow=False)
    return True


def _diff(lower: Path, upper: Path):
    """Tar writer of what turns lower into upper (changed/new entries, their parents, whiteouts)."""
    def write(out):
        changed = set()
        for p in walk_sorted(upper):
            rel = p.relative_to(upper)
            q = lower / rel
            if not (q.exists() or q.is_symlink()) or not _same(p, q):
                changed.add(rel)
                changed.update(rel.parents)
        changed.discard(Path("."))
        removed = [p.relative_to(lower) for p in walk_sorted(lower)
                   if not (upper / p.relative_to(lower)).exists() and not (upper / p.relative_to(lower)).is_symlink()]
        removed = [r for r in removed if not any(par in set(removed) for par in r.parents)]
        with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            entries = sorted([(r.as_posix(), False) for r in changed]
                             + [((r.parent / f".wh.{r.name}").as_posix(), True) for r in removed])
            added: set[str] = set()
            for name, whiteout in entries:
                if whiteout:
                    info = tarfile.TarInfo(name)
                    info.mode = 0o644
                    tf.addfile(info)
                    continue
                info = tf.gettarinfo(str(upper / name), name)
                info.uname = info.gname = ""
                if info.islnk() and info.linkname not in added:  # the other link is in a lower layer
                    info.type, info.linkname, info.size = tarfile.REGTYPE, "", (upper / name).stat().st_size
                added.add(name)
                if info.isreg():
                    with open(upper / name, "rb") as fh:
                        tf.addfile(info, fh)
                else:
                    tf.addfile(info)
    return write


def _blob(desc: dict, cache: Cache) -> Path:
    return cache.root / "packages" / "oci-blobs" / desc["digest"].split(":", 1)[1]


def installed(root: Path) -> set[str]:
    """Packages dpkg has installed in a rootfs."""
    names, pkg = set(), None
    for line in (root / "var/lib/dpkg/status").read_text().splitlines():
        if line.startswith("Package: "):
            pkg = line.split(": ", 1)[1].strip()
        elif line.startswith("Status: ") and line.endswith(" installed") and pkg:
            names.add(pkg)
    return names


def entrypoint(built, root_names: set[str]) -> list[str]:
    for cand in (f"{built.name}-api", f"{built.name}-manage", built.name):
        if cand in root_names:
            return [f"{built.install_path}/bin/{cand}"]
    return [f"{built.install_path}/bin/python"]


def make(built: BuiltComponent, cache: Cache, ui: UI) -> list[Made]:
    deps = sysdeps.system_deps(built, cache, "deb")
    target = built.target
    extra = sorted({d.split(" ", 1)[0] for d in deps.names} - {target.python_package})
    base = base_rootfs(target, cache)
    extra = [p for p in extra if p not in installed(base)]  # e.g. libc6: already in the base layer
    with ui.step(f"Preparing OCI base layers for {built.name} ({len(extra)} system packages to add)"):
        layers = [gzip_layer(_copy_file(base.with_suffix(".tar")), cache, f"base-{base.name}")]
        if extra:
            full = base_rootfs(target, cache, extra_packages=extra)
            if full != base:
                layers.append(gzip_layer(_diff(base, full), cache, f"diff-{base.name}-{full.name}"))
    with ui.step(f"Writing the {built.name} venv layer"):
        layers.append(gzip_layer(_unzstd(built.tarball), cache, f"venv-{built.key}"))
    fname = f"{built.name}-{built.version}.oci.tar"

    def build(out: Path) -> None:
        with ui.step(f"Writing {fname}"):
            layout = out / "layout"
            write_layout(built, layers, cache, layout)
            write_archive(layout, out / fname, built.epoch)
            sbom.write(built, deps, out / f"{fname}.cdx.json", fname)

    inputs = {"v": OCI_FORMAT, "build": built.key, "layers": layers, "deps": deps.to_json(), "order": deps.names}
    entry, made = cached(cache, "oci", inputs, build)
    return [Made("oci", entry / fname, made), Made("sbom", entry / f"{fname}.cdx.json", made)]


def image_config(built, layers: list[dict]) -> dict:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(built.epoch))
    src = built.locked.source
    with open(built.tarball, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zf, \
            tarfile.open(fileobj=zf, mode="r|") as tf:
        prefix = built.install_path.lstrip("/") + "/bin/"
        names = {m.name[len(prefix):] for m in tf if m.name.startswith(prefix)}
    labels = {
        "org.opencontainers.image.title": built.name,
        "org.opencontainers.image.version": built.version,
        "org.opencontainers.image.revision": str(built.locked.revision),
        "org.opencontainers.image.source": (src.url if isinstance(src, LockedGit)
                                            else f"https://pypi.org/project/{built.name}/{built.version}/"),
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.description": f"OpenStack {built.name} {built.version} ({built.series})",
        "io.stackcrate.series": built.series,
        "io.stackcrate.build-key": built.key,
    }
    return {
        "created": created, "architecture": "amd64", "os": "linux",
        "config": {
            "Entrypoint": entrypoint(built, names), "Cmd": ["--help"], "WorkingDir": built.install_path,
            "Env": [f"PATH={built.install_path}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                    "LANG=C.UTF-8", f"VIRTUAL_ENV={built.install_path}"],
            "Labels": labels,
        },
        "rootfs": {"type": "layers", "diff_ids": [d["diff_id"] for d in layers]},
        "history": [{"created": created, "created_by": f"stackcrate: {what}"}
                    for what in ("base rootfs", "system packages", "venv")[-len(layers):]],
    }


def _put(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_layout(built, layers: list[dict], cache: Cache, layout: Path) -> dict:
    (layout / "blobs/sha256").mkdir(parents=True)
    for d in layers:
        dest = layout / "blobs/sha256" / d["digest"].split(":", 1)[1]
        try:
            os.link(_blob(d, cache), dest)
        except FileNotFoundError:
            raise StackcrateError(f"cached layer {d['digest']} is missing",
                                  hint="remove the cache's packages/oci-blobs folder and build again") from None
        except OSError:
            dest.write_bytes(_blob(d, cache).read_bytes())
    config = _put(layout, _json(image_config(built, layers)))
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config},
        "layers": [{"mediaType": LAYER, "digest": d["digest"], "size": d["size"]} for d in layers],
        "annotations": {"org.opencontainers.image.created": time.strftime(
            "%Y-%m-%dT%H:%M:%SZ", time.gmtime(built.epoch))},
    }
    mdesc = _put(layout, _json(manifest))
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **mdesc,
        "annotations": {REF_NAME: f"{built.name}-{built.version}"}}]}
    (layout / "index.json").write_bytes(_json(index))
    (layout / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    return mdesc


def write_archive(layout: Path, out: Path, epoch: int) -> None:
    """oci-archive: the layout as a plain tar, sorted, owned by root, mtimes at epoch."""
    with tarfile.open(out, "w", format=tarfile.PAX_FORMAT) as tf:
        for p in walk_sorted(layout):
            info = tf.gettarinfo(str(p), p.relative_to(layout).as_posix())
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = epoch
            info.mode = 0o755 if info.isdir() else 0o644
            if info.isreg():
                with open(p, "rb") as fh:
                    tf.addfile(info, fh)
            else:
                tf.addfile(info)


def archive_index(tf: tarfile.TarFile) -> dict:
    """The index.json of an open oci-archive."""
    return json.load(tf.extractfile("index.json"))  # type: ignore[arg-type]


def archive_ref_name(archive: Path) -> str:
    """The ref name of the one image in an oci-archive written by write_archive."""
    try:
        with tarfile.open(archive) as tf:
            return archive_index(tf)["manifests"][0]["annotations"][REF_NAME]
    except (OSError, tarfile.TarError, KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise StackcrateError(f"{archive} is not an OCI image archive built by stackcrate",
                              hint="build it again (`stackcrate build --format oci`)") from None
