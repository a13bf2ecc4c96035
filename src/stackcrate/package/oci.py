"""OCI images written without any container engine: a built component's, and a system image of the target's own
packages (the backing services a container backend runs).

Layers, bottom up (gzip: umoci and docker-archive reject zstd):
  1. the target's base rootfs (mmdebstrap minbase + interpreter): the same for every image of a target;
  2. the system packages of the components built together: what an mmdebstrap with them added changes
     (whiteouts for removals): one layer that every service image of a build shares;
  3. a component's venv (its deterministic tarball, uncompressed and re-gzipped), or, in a system image, what
     its own packages add on top of layer 2.
Layer blobs are cached by content, so images share their lower layers byte for byte and a node stores them once.

An image is delivered into the output folder's one OCI image layout (`LAYOUT`, see `gather`): each blob once,
whichever images hold it; artifacts.json names an image by its manifest blob there, whose sha256 is the image's
manifest digest and pins every other blob of it.
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
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import zstandard

from ..archive import walk_sorted
from ..buildroot import base_rootfs
from ..cache import Cache, digest_of, link_or_copy, remove_tree
from ..errors import StackcrateError
from ..model.built import BuiltComponent
from ..model.source import LockedGit
from ..model.system_image import SystemImage
from ..targets import Target
from ..ui import UI
from . import Made, cached, sbom, sysdeps

OCI_FORMAT = 3
GZ_LEVEL = 6
REF_NAME = "org.opencontainers.image.ref.name"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
LAYOUT = "images"  # the output folder's OCI image layout
BLOBS = ("packages", "oci-blobs")  # in the cache: layer blobs by digest, each layer's record as <key>.json


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
    blobs = cache.dir(*BLOBS)
    meta = blobs / f"{key}.json"
    if meta.exists():
        cache.used(meta)
        return json.loads(meta.read_text())
    with cache.locked(f"layer:{key}"):  # images are made side by side: the one that is first makes a shared layer
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
            desc = {"digest": f"sha256:{comp.h.hexdigest()}", "size": comp.size,
                    "diff_id": f"sha256:{plain.h.hexdigest()}"}
            os.replace(tmp, blobs / comp.h.hexdigest())
            meta.with_suffix(".tmp").write_text(json.dumps(desc))
            os.replace(meta.with_suffix(".tmp"), meta)  # a reader outside the lock sees all of it or nothing
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


def layer_blob(desc: dict, cache: Cache) -> Path:
    """The cache's file of the layer a record (gzip_layer's answer, kept as <key>.json beside it) describes."""
    return cache.root.joinpath(*BLOBS, desc["digest"].split(":", 1)[1])


def dpkg_packages(root: Path) -> dict[str, tuple[str, str]]:
    """Packages dpkg has installed in a rootfs: name -> (version, architecture)."""
    out: dict[str, tuple[str, str]] = {}
    for stanza in (root / "var/lib/dpkg/status").read_text().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line[0].isspace())
        if fields.get("Status", "").endswith(" installed") and "Package" in fields:
            out[fields["Package"]] = (fields.get("Version", ""), fields.get("Architecture", ""))
    return out


def installed(root: Path) -> set[str]:
    return set(dpkg_packages(root))


def entrypoint(built, root_names: set[str]) -> list[str]:
    for cand in (f"{built.name}-api", f"{built.name}-manage", built.name):
        if cand in root_names:
            return [f"{built.install_path}/bin/{cand}"]
    return [f"{built.install_path}/bin/python"]


def shared_packages(builts: Sequence[BuiltComponent], cache: Cache) -> list[str]:
    """The system packages of every component built together: one layer that all their images share."""
    return sorted({d.split(" ", 1)[0] for b in builts for d in sysdeps.system_deps(b, cache, "deb").names})


def system_layers(target: Target, stack: Sequence[Sequence[str]], cache: Cache) -> tuple[list[dict], Path, list[str]]:
    """The base layer, then one layer per package set of `stack` (each added on top of the ones below; none
    when it adds nothing), the rootfs they make together and each layer's history line. Every image whose stack
    starts the same way shares those layers byte for byte."""
    base = base_rootfs(target, cache)
    layers = [gzip_layer(_copy_file(base.with_suffix(".tar")), cache, f"base-{base.name}")]
    history = ["base rootfs"]
    lower, below, have = base, [], installed(base)
    for packages in stack:
        below = sorted({*below, *(p for p in packages if p not in have)})  # e.g. libc6: in the base already
        upper = base_rootfs(target, cache, extra_packages=below) if below else base
        if upper != lower:
            layers.append(gzip_layer(_diff(lower, upper), cache, f"diff-{lower.name}-{upper.name}"))
            history.append(f"system packages: {' '.join(sorted(packages))}")
        lower = upper
    return layers, lower, history


def shared_layers(target: Target, stacks: Sequence[Sequence[Sequence[str]]], cache: Cache, ui: UI) -> None:
    """The system layers of each stack, made (or found) ahead of the images that hold them, while the images'
    own layers are written beside: otherwise every image but the first waits for the ones it shares."""
    for stack in stacks:
        with ui.step(f"Preparing the shared OCI layers ({', '.join(str(len(s)) for s in stack)} system packages)"):
            system_layers(target, stack, cache)


def make(built: BuiltComponent, cache: Cache, ui: UI, shared: Sequence[str] = ()) -> list[Made]:
    """The component's image: base, system packages (`shared`, those of the components built with it, plus its
    own), its venv."""
    deps = sysdeps.system_deps(built, cache, "deb")
    own = {d.split(" ", 1)[0] for d in deps.names} - {built.target.python_package}
    packages = sorted(own | set(shared))
    # the venv layer first: images are made side by side, and the layers below are shared (see shared_layers)
    with ui.step(f"Writing the {built.name} venv layer"):
        venv = gzip_layer(_unzstd(built.tarball), cache, f"venv-{built.key}")
    with ui.step(f"Preparing OCI base layers for {built.name} ({len(packages)} system packages)"):
        layers, _, history = system_layers(built.target, [packages], cache)
    layers.append(venv)
    history.append(f"venv: {built.install_path}")
    ref = f"{built.name}-{built.version}"

    def build(out: Path) -> None:
        with ui.step(f"Writing the {ref} image"):
            config = image_config(built, layers, history)
            write_layout(config, ref, built.epoch, layers, cache, out / "layout")
            sbom.write(built, deps, out / f"{ref}.oci.cdx.json", f"{LAYOUT}:{ref}")

    inputs = {"v": OCI_FORMAT, "build": built.key, "layers": layers, "deps": deps.to_json(), "order": deps.names}
    entry, made = cached(cache, "oci", inputs, build)
    return [Made("oci", manifest_blob(entry / "layout"), made), Made("sbom", entry / f"{ref}.oci.cdx.json", made)]


@dataclass(frozen=True)
class SystemBuilt:
    """A system image once written: what its artifacts.json entries say about it."""
    name: str
    version: str                   # the Debian version of its first package
    key: str                       # digest of its layers and config
    epoch: int
    made: list[Made]


def tag(version: str) -> str:
    """A version usable in an image tag and a file name (Debian's 1:10.11.6+deb12u1 has : and +)."""
    return "".join(ch if ch.isalnum() or ch in "_.-" else "_" for ch in version)[:128]


def make_system(spec: SystemImage, target: Target, stack: Sequence[Sequence[str]], epoch: int, cache: Cache,
                ui: UI) -> SystemBuilt:
    """An image of the target's packages: base, then a layer per package set of `stack` (the system packages
    the service images of the same build share, then those of every system image of the build: one mmdebstrap
    and one layer for all of them), which must hold spec's packages; its SBOM lists every Debian package in it."""
    with ui.step(f"Preparing the {spec.name} image's layers ({', '.join(spec.packages)})"):
        layers, root, history = system_layers(target, stack, cache)
    packages = dpkg_packages(root)
    if spec.packages[0] not in packages:
        raise StackcrateError(f"the {spec.name} image has no {spec.packages[0]} package installed",
                              hint=f"check that {spec.packages[0]} exists in Debian {target.suite}")
    version = packages[spec.packages[0]][0]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    labels = {
        "org.opencontainers.image.title": spec.name,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": f"https://packages.debian.org/{target.suite}/{spec.packages[0]}",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.description": f"{spec.name} from Debian {target.suite}'s packages",
        "io.stackcrate.target": target.name,
    }
    config = config_document(epoch, [spec.entrypoint], [], "/", ["LANG=C.UTF-8"], labels, layers, history)
    key = digest_of({"v": OCI_FORMAT, "config": config, "packages": sorted(packages.items())})
    ref = f"{spec.name}-{tag(version)}"

    def build(out: Path) -> None:
        with ui.step(f"Writing the {ref} image"):
            write_layout(config, ref, epoch, layers, cache, out / "layout")
            sbom.write_debian(spec.name, version, packages, target, epoch, out / f"{ref}.oci.cdx.json",
                              f"{LAYOUT}:{ref}")

    entry, made = cached(cache, "oci-system", {"key": key}, build)
    return SystemBuilt(spec.name, version, key, epoch, [Made("oci", manifest_blob(entry / "layout"), made),
                                                        Made("sbom", entry / f"{ref}.oci.cdx.json", made)])


def config_document(epoch: int, entry: list[str], cmd: list[str], workdir: str, env: list[str], labels: dict,
                    layers: list[dict], history: list[str]) -> dict:
    """An OCI image config (everything a container engine reads before it runs the image)."""
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))
    return {
        "created": created, "architecture": "amd64", "os": "linux",
        "config": {"Entrypoint": entry, "Cmd": cmd, "WorkingDir": workdir,
                   "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *env]
                   if not any(e.startswith("PATH=") for e in env) else env,
                   "Labels": labels},
        "rootfs": {"type": "layers", "diff_ids": [d["diff_id"] for d in layers]},
        "history": [{"created": created, "created_by": f"stackcrate: {what}"} for what in history],
    }


def image_config(built, layers: list[dict], history: list[str]) -> dict:
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(built.epoch))
    src = built.locked.source
    with open(built.tarball, "rb") as raw, zstandard.ZstdDecompressor().stream_reader(raw) as zf, \
            tarfile.open(fileobj=zf, mode="r|") as tf:
        prefix = built.install_path.lstrip("/") + "/bin/"
        names = set()
        for m in tf:  # the members are sorted (archive.walk_sorted): bin/ is read, not the 20,000 after it
            if m.name.startswith(prefix):
                names.add(m.name[len(prefix):])
            elif names:
                break
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
    env = [f"PATH={built.install_path}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           "LANG=C.UTF-8", f"VIRTUAL_ENV={built.install_path}"]
    return config_document(built.epoch, entrypoint(built, names), ["--help"], built.install_path, env, labels,
                           layers, history)


def _put(layout: Path, data: bytes) -> dict:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs/sha256" / digest).write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _json(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_layout(config: dict, ref: str, epoch: int, layers: list[dict], cache: Cache, layout: Path) -> dict:
    """An OCI image layout of one image (`ref`): its layers (hard links to the cached blobs), config, manifest."""
    (layout / "blobs/sha256").mkdir(parents=True)
    for d in layers:
        dest = layout / "blobs/sha256" / d["digest"].split(":", 1)[1]
        try:
            link_or_copy(layer_blob(d, cache), dest)
        except FileNotFoundError:
            raise StackcrateError(f"cached layer {d['digest']} is missing",
                                  hint="remove the cache's packages/oci-blobs folder and build again") from None
    cdesc = _put(layout, _json(config))
    manifest = {
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **cdesc},
        "layers": [{"mediaType": LAYER, "digest": d["digest"], "size": d["size"]} for d in layers],
        "annotations": {"org.opencontainers.image.created": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                          time.gmtime(epoch))},
    }
    mdesc = _put(layout, _json(manifest))
    index = {"schemaVersion": 2, "manifests": [{
        "mediaType": "application/vnd.oci.image.manifest.v1+json", **mdesc, "annotations": {REF_NAME: ref}}]}
    (layout / "index.json").write_bytes(_json(index))
    (layout / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))
    return mdesc


def manifest_blob(layout: Path) -> Path:
    """The manifest blob of the one image in a layout written by write_layout."""
    index = json.loads((layout / "index.json").read_bytes())
    return layout / "blobs/sha256" / index["manifests"][0]["digest"].split(":", 1)[1]


@dataclass(frozen=True)
class LaidOut:
    """One image of an OCI image layout: where skopeo copies it from, and what identifies it."""
    layout: Path
    ref: str              # its org.opencontainers.image.ref.name in the layout's index.json
    digest: str           # its manifest's, "sha256:...": what a registry knows it by
    image_id: str         # its config's sha256 (hex): the ID container engines give it
    index_entry: dict     # its descriptor in the layout's index.json
    manifest: dict

    @property
    def source(self) -> str:
        return f"oci:{self.layout}:{self.ref}"

    @property
    def blobs(self) -> list[str]:
        """The digests of every blob of the image: manifest, config, layers."""
        return [self.digest, self.manifest["config"]["digest"], *(d["digest"] for d in self.manifest["layers"])]


def laid_out(manifest: Path) -> LaidOut:
    """The image whose manifest blob is `manifest` (LAYOUT/blobs/sha256/<hex>, as artifacts.json names it)."""
    layout = manifest.parents[2]
    digest = f"sha256:{manifest.name}"
    try:
        raw = manifest.read_bytes()
        if hashlib.sha256(raw).hexdigest() != manifest.name:
            raise StackcrateError(f"{manifest} was altered: its sha256 is not the one it is named by",
                                  hint="build the images again (`stackcrate build --format oci`)")
        data = json.loads(raw)
        entry = next(m for m in json.loads((layout / "index.json").read_bytes())["manifests"]
                     if m["digest"] == digest)
        return LaidOut(layout, entry["annotations"][REF_NAME], digest, data["config"]["digest"].split(":", 1)[1],
                       entry, data)
    except (OSError, StopIteration, KeyError, IndexError, TypeError, ValueError, AttributeError):
        raise StackcrateError(f"{manifest} is not the manifest of an image in an OCI layout built by stackcrate",
                              hint="build it again (`stackcrate build --format oci`)") from None


def gather(manifests: list[Path], dest: Path) -> None:
    """One OCI image layout at dest (a new folder) of the images whose manifest blobs are given: each blob once,
    a hard link where the filesystem allows; the index lists the images by ref name."""
    (dest / "blobs/sha256").mkdir(parents=True)
    entries = {}
    for manifest in manifests:
        image = laid_out(manifest)
        for digest in image.blobs:
            hexd = digest.split(":", 1)[1]
            if not (dest / "blobs/sha256" / hexd).exists():
                link_or_copy(image.layout / "blobs/sha256" / hexd, dest / "blobs/sha256" / hexd)
        entries[image.ref] = image.index_entry
    index = {"schemaVersion": 2, "manifests": [entries[ref] for ref in sorted(entries)]}
    (dest / "index.json").write_bytes(_json(index))
    (dest / "oci-layout").write_bytes(_json({"imageLayoutVersion": "1.0.0"}))


@dataclass(frozen=True)
class ImageSizes:
    per_image: dict[str, int]      # image -> the sum of its layers (what one image alone takes)
    summed: int                    # all images' sizes added up (every image stored on its own)
    unique: int                    # each layer counted once (what a store holding all of them takes)

    def to_json(self) -> dict:
        return {"images": self.per_image, "summed_bytes": self.summed, "unique_bytes": self.unique,
                "unique_percent": round(100 * self.unique / self.summed, 1) if self.summed else 0.0}


def image_sizes(manifests: dict[str, Path]) -> ImageSizes:
    """Compressed layer bytes of each image (name -> its manifest blob), summed and unique (layers shared between
    images counted once)."""
    layers = {name: [(d["digest"], d["size"]) for d in laid_out(path).manifest["layers"]]
              for name, path in manifests.items()}
    unique = dict(lay for image in layers.values() for lay in image)
    per = {name: sum(size for _, size in image) for name, image in layers.items()}
    return ImageSizes(per, sum(per.values()), sum(unique.values()))
