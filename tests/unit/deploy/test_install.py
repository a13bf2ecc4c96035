"""Installing artifacts safely, on tiny real artifacts built here and an install root inside tmp_path: every
artifact checked before anything is written, venvs renamed into place whole, a changed venv replaced only when
asked, and `rm --purge` removing only the venvs no other deployment uses."""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import pytest
import yaml
import zstandard

from stackcrate.archive import BadArchive, read_tar_zst, write_tar_zst
from stackcrate.cache import Cache
from stackcrate.deploy import install as inst
from stackcrate.deploy import installed
from stackcrate.deploy.config import Deployment
from stackcrate.deploy.timer import Timer
from stackcrate.errors import StackcrateError
from stackcrate.model.artifacts import Artifact, ArtifactIndex, ArtifactSource
from stackcrate.ui import UI

from .conftest import COMPONENTS

EPOCH = 1700000000


def init_install(d, t, **kw) -> None:
    """What init does: install, then (its checks passed) record the venvs the deployment uses."""
    inst.install(d, t, **kw)
    inst.record_use(d, kw.get("root", inst.ROOT))


def venv_tree(build: Path, name: str, version: str, extra: str = "") -> Path:
    """A venv-like tree at build/opt/openstack/<name>-<version>, as a build makes it (bin/python links to the
    system's interpreter); `extra` changes one file's content."""
    venv = build / "opt" / "openstack" / f"{name}-{version}"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    (venv / "lib64").symlink_to("lib")
    pkg = venv / "lib" / "python3.11" / "site-packages" / name.replace("-", "_")
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(f"VERSION = {version!r}{extra}\n")
    (venv / "bin" / f"{name}-api").write_text("#!/usr/bin/env python3\n")
    (venv / "bin" / f"{name}-api").chmod(0o755)
    return build


def index_entry(out: Path, name: str, version: str) -> Artifact:
    return Artifact(component=name, version=version, format="tar", file=out.name,
                    sha256=hashlib.sha256(out.read_bytes()).hexdigest(), size=out.stat().st_size,
                    install_path=f"/opt/openstack/{name}-{version}",
                    source=ArtifactSource(type="pypi", revision=version), series="2026.1",
                    target="debian-bookworm", source_date_epoch=EPOCH, build_key="k" * 64)


class Dist:
    """An artifacts folder of tiny real artifacts, one per component of examples/deploy."""

    def __init__(self, folder: Path, work: Path):
        self.folder, self.work = folder, work
        self.folder.mkdir(parents=True, exist_ok=True)
        for name in COMPONENTS:
            self.build(name)

    def file(self, name: str) -> Path:
        return self.folder / f"{name}-{COMPONENTS[name]}.tar.zst"

    def build(self, name: str, extra: str = "") -> Path:
        """(Re)build name's artifact (extra: a change to its content, same version) and list it."""
        tree = self.work / f"tree-{name}-{hashlib.sha256(extra.encode()).hexdigest()[:8]}"
        if not tree.exists():
            venv_tree(tree, name, COMPONENTS[name], extra)
        write_tar_zst(tree, self.file(name), EPOCH)
        self.relist()
        return self.file(name)

    def relist(self, keep_sha: tuple[str, ...] = ()) -> None:
        """Rewrite artifacts.json from the files (the sha256 of those in keep_sha is left as it was)."""
        old = {a.component: a for a in ArtifactIndex.load(self.folder).artifacts} \
            if (self.folder / "artifacts.json").exists() else {}
        entries = [old[n] if n in keep_sha else index_entry(self.file(n), n, v) for n, v in COMPONENTS.items()]
        ArtifactIndex(stackcrate="test", artifacts=entries).write(self.folder)

    def pack(self, name: str, members: list[tuple[tarfile.TarInfo, bytes]]) -> None:
        """name's artifact made of exactly these members, and listed."""
        self.file(name).write_bytes(tar_zst(members))
        self.relist()


def tar_zst(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    """A .tar.zst of exactly these members (written by tarfile: any name, type or link)."""
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for info, data in members:
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return zstandard.ZstdCompressor(write_checksum=True).compress(raw.getvalue())


@pytest.fixture
def dist(dep, tmp_path) -> Dist:
    return Dist(dep["dist"], tmp_path / "trees")


@pytest.fixture
def d(dep, dist, tmp_path) -> Deployment:
    # a cache of its own: the venvs kept there by another test would be linked instead of unpacked
    return Deployment(dep["services"], dep["config"], cache=Cache(tmp_path / "cache"))


@pytest.fixture
def root(tmp_path) -> Path:
    return tmp_path / "root"


class Warnings(UI):
    def __init__(self):
        super().__init__(quiet=True)
        self.warnings: list[str] = []

    def warn(self, text: str) -> None:
        self.warnings.append(text)


@pytest.fixture
def t() -> Timer:
    return Timer(Warnings())


def listing(root: Path) -> dict[str, tuple]:
    """Every path below root with its type, mode, inode and content hash (or link target): any change shows."""
    out: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(folder, name)
            st = p.lstat()
            what = os.readlink(p) if p.is_symlink() else \
                hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            out[str(p.relative_to(root))] = (st.st_mode, st.st_ino, what)
    return out


def venv(root: Path, name: str) -> Path:
    return root / "opt" / "openstack" / f"{name}-{COMPONENTS[name]}"


def temp_folders(root: Path) -> list[str]:
    prefix = root / "opt" / "openstack"
    return sorted(p.name for p in prefix.glob(".*.tmp-*")) if prefix.is_dir() else []


# ------------------------------------------------------------------------------------------- broken artifacts

def truncate(path: Path, keep: int) -> None:
    data = path.read_bytes()
    path.write_bytes(data[:keep])


@pytest.mark.parametrize("installed_before", [False, True], ids=["fresh", "over-installed"])
def test_truncated_artifact_with_updated_sha256_changes_nothing(d, dist, root, t, installed_before):
    if installed_before:
        init_install(d, t, root=root)
    before = listing(root)
    truncate(dist.file("glance"), dist.file("glance").stat().st_size // 2)
    dist.relist()  # the sha256 in artifacts.json is the truncated file's
    for reinstall in (False, True):
        with pytest.raises(StackcrateError) as exc:
            init_install(d, t, reinstall=reinstall, root=root)
        assert str(dist.file("glance")) in exc.value.message and "truncated" in exc.value.message
        assert "build it again" in exc.value.hint and exc.value.exit_code == 2
    assert listing(root) == before
    assert root.exists() == installed_before


def test_altered_artifact_with_stale_sha256_is_refused(d, dist, root, t):
    init_install(d, t, root=root)
    before = listing(root)
    data = bytearray(dist.file("nova").read_bytes())
    data[len(data) // 2] ^= 0xFF
    dist.file("nova").write_bytes(bytes(data))
    with pytest.raises(StackcrateError) as exc:  # installed already: the file is still checked
        init_install(d, t, root=root)
    assert str(dist.file("nova")) in exc.value.message and "artifacts.json says" in exc.value.message
    with pytest.raises(StackcrateError) as exc:  # to be installed
        init_install(d, t, root=root / "other")
    assert str(dist.file("nova")) in exc.value.message and "artifacts.json says" in exc.value.message
    assert listing(root) == before and not (root / "other").exists()


@pytest.mark.parametrize("cut", [-1, -4, 1 / 2, 20])
def test_a_tar_zst_cut_anywhere_is_not_whole(dist, cut):
    f = dist.file("keystone")
    size = f.stat().st_size
    truncate(f, size + cut if cut < 0 else int(size * cut) if cut < 1 else cut)
    with pytest.raises(BadArchive, match="truncated"):
        read_tar_zst(f, list)


@pytest.mark.parametrize("cut, why", [(2048, "not a whole tar archive"), (512 + 5120, "end-of-archive marker")],
                         ids=["in-a-member", "between-members"])
def test_a_tar_cut_before_compression_is_not_whole(tmp_path, cut, why):
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tf:
        data = b"x" * 5000
        info = tarfile.TarInfo("opt/a")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    f = tmp_path / "cut.tar.zst"
    f.write_bytes(zstandard.ZstdCompressor(write_checksum=True).compress(raw.getvalue()[:cut]))
    with pytest.raises(BadArchive, match=why):
        read_tar_zst(f, list)


def info(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "", mode: int = 0o644) -> tarfile.TarInfo:
    m = tarfile.TarInfo(name)
    m.type, m.linkname, m.mode = kind, linkname, mode
    return m


VENV = "opt/openstack/glance-32.0.0"
GOOD = [(info("opt", tarfile.DIRTYPE, mode=0o755), b""), (info("opt/openstack", tarfile.DIRTYPE, mode=0o755), b""),
        (info(VENV, tarfile.DIRTYPE, mode=0o755), b""), (info(f"{VENV}/bin", tarfile.DIRTYPE, mode=0o755), b""),
        (info(f"{VENV}/bin/python", tarfile.SYMTYPE, "/usr/bin/python3"), b"")]


@pytest.mark.parametrize("bad, why", [
    ([info("etc/cron.d/evil")], "lies outside /opt/openstack/glance-32.0.0"),
    ([info("/etc/evil")], "absolute name"),
    ([info(f"{VENV}/../../../etc/evil")], "'..'"),
    ([info(f"{VENV}/dev/sda", tarfile.BLKTYPE)], "a device file"),
    ([info(f"{VENV}/fifo", tarfile.FIFOTYPE)], "a FIFO"),
    ([info(f"{VENV}/lib/escape", tarfile.SYMTYPE, "../../../../etc")], "out of /opt/openstack/glance-32.0.0"),
    ([info(f"{VENV}/bin/python/evil")], "below the symlink"),
    ([info(f"{VENV}/hard", tarfile.LNKTYPE, "etc/passwd")], "hard link"),
    ([info(f"{VENV}/x"), info(f"{VENV}/x")], "appears twice"),
], ids=["outside", "absolute", "dotdot", "device", "fifo", "symlink-out", "through-symlink", "hardlink-out",
        "twice"])
def test_member_outside_its_venv_is_refused(d, dist, root, t, bad, why):
    dist.pack("glance", GOOD + [(m, b"evil\n" if m.isreg() else b"") for m in bad])
    with pytest.raises(StackcrateError) as exc:
        init_install(d, t, root=root)
    assert str(dist.file("glance")) in exc.value.message and why in exc.value.message
    assert repr(bad[0].name) in exc.value.message
    assert not root.exists()


def test_artifact_replaced_after_its_checks_is_not_unpacked(d, dist, root, t, monkeypatch):
    """glance's archive is swapped, after every check passed, for one with a member outside its venv: what would
    be unpacked is not what was checked, so nothing is."""
    real = inst.unpack.unpack

    def swapped_first(path, install_path, checked_sha256, target):
        if path == dist.file("glance"):  # not listed: artifacts.json keeps the sha256 that was checked
            path.write_bytes(tar_zst(GOOD + [(info("etc/cron.d/evil"), b"evil\n")]))
        real(path, install_path, checked_sha256, target)

    monkeypatch.setattr(inst.unpack, "unpack", swapped_first)
    with pytest.raises(StackcrateError, match="glance.* changed after it was checked"):
        init_install(d, t, root=root)
    assert not venv(root, "glance").exists() and temp_folders(root) == []
    assert not (root / "etc").exists()


def test_folder_above_the_venv_as_a_symlink_is_refused(d, dist, root, t):
    dist.pack("glance", [GOOD[0], (info("opt/openstack", tarfile.SYMTYPE, "/etc"), b""), *GOOD[2:]])
    with pytest.raises(StackcrateError, match="is a symlink where the folder /opt/openstack belongs"):
        init_install(d, t, root=root)
    assert not root.exists()


def test_archive_of_another_install_path_is_refused(d, dist, root, t):
    other = [(info(m.name.replace("glance-32.0.0", "glance-31.0.0"), m.type, m.linkname, m.mode), b"")
             for m, _ in GOOD]
    dist.pack("glance", other)
    with pytest.raises(StackcrateError, match="lies outside /opt/openstack/glance-32.0.0"):
        init_install(d, t, root=root)
    dist.pack("glance", GOOD[:3])
    with pytest.raises(StackcrateError, match="no /opt/openstack/glance-32.0.0/bin/python: it is not a venv"):
        init_install(d, t, root=root)
    assert not root.exists()


def test_good_archive_of_members_installs_without_setuid_or_world_writable_bits(d, dist, root, t):
    dist.pack("glance", GOOD + [(info(f"{VENV}/bin/glance-api", mode=0o755), b"#!x\n"),
                                (info(f"{VENV}/bin/same", tarfile.LNKTYPE, f"{VENV}/bin/glance-api"), b""),
                                (info(f"{VENV}/bin/setuid", mode=0o4777), b"#!x\n")])
    init_install(d, t, root=root)
    g = venv(root, "glance")
    assert os.readlink(g / "bin" / "python") == "/usr/bin/python3"
    assert (g / "bin" / "same").read_text() == "#!x\n" and (g / "bin" / "same").samefile(g / "bin" / "glance-api")
    assert (g / "bin" / "setuid").stat().st_mode & 0o7777 == 0o755
    assert temp_folders(root) == []


# ------------------------------------------------------------------------------------ installed venvs that differ

def test_changed_artifact_of_an_installed_venv_is_refused_then_replaced_on_request(d, dist, root, t):
    init_install(d, t, root=root)
    old_sha = installed.read(venv(root, "glance")).sha256
    old_inode = venv(root, "glance").stat().st_ino
    with open(venv(root, "glance") / "bin" / "glance-api") as held:  # a process holding an old file open
        before = listing(root)
        new = dist.build("glance", extra="  # patched")
        new_sha = hashlib.sha256(new.read_bytes()).hexdigest()
        with pytest.raises(StackcrateError) as exc:
            init_install(d, t, root=root)
        assert "glance:" in exc.value.message and old_sha in exc.value.message and new_sha in exc.value.message
        assert "--reinstall" in exc.value.hint
        with pytest.raises(StackcrateError, match="--reinstall"):  # start refuses it too
            inst.venvs(d, root)
        assert listing(root) == before

        init_install(d, t, reinstall=True, root=root)
        assert held.read() == "#!/usr/bin/env python3\n"
    g = venv(root, "glance")
    assert g.stat().st_ino != old_inode  # a new tree renamed in, not files written over the old one
    assert "patched" in (g / "lib" / "python3.11" / "site-packages" / "glance" / "__init__.py").read_text()
    assert installed.read(g).sha256 == new_sha and inst.venvs(d, root)["glance"] == str(g)
    after = listing(root)
    assert {k: v for k, v in after.items() if "glance" not in k} == \
           {k: v for k, v in before.items() if "glance" not in k}
    assert temp_folders(root) == []


def test_missing_venv_with_its_record_is_installed_again(d, dist, root, t):
    init_install(d, t, root=root)
    import shutil
    shutil.rmtree(venv(root, "neutron"))
    init_install(d, t, root=root)
    assert (venv(root, "neutron") / "bin" / "python").is_symlink()


def test_venv_stackcrate_did_not_install_is_refused_unless_reinstall(d, dist, root, t):
    by_hand = venv(root, "openstack-placement")
    (by_hand / "bin").mkdir(parents=True)
    (by_hand / "bin" / "python").write_text("by hand")
    with pytest.raises(StackcrateError, match="stackcrate did not install it"):
        init_install(d, t, root=root)
    assert (by_hand / "bin" / "python").read_text() == "by hand"
    init_install(d, t, reinstall=True, root=root)
    assert (by_hand / "bin" / "python").is_symlink()


def test_modified_venv_is_kept_with_a_warning_and_reinstall_restores_it(d, dist, root, t):
    init_install(d, t, root=root)
    init = venv(root, "keystone") / "lib" / "python3.11" / "site-packages" / "keystone" / "__init__.py"
    original = init.read_text()
    init.write_text(original + "HOTFIX = True\n")
    (init.parent / "__pycache__").mkdir()  # Python writing its caches is no change
    init_install(d, t, root=root)
    assert init.read_text().endswith("HOTFIX = True\n")
    assert [w for w in t.ui.warnings if "keystone" in w and "changed after it was installed" in w]
    init_install(d, t, reinstall=True, root=root)
    assert init.read_text() == original
    t.ui.warnings.clear()
    init_install(d, t, root=root)
    assert t.ui.warnings == []


def test_reinstall_is_refused_while_a_process_runs_from_the_venv(d, dist, root, t):
    init_install(d, t, root=root)
    dist.build("nova", extra="  # patched")
    script = venv(root, "nova") / "bin" / "nova-api"
    sleep = [sys.executable, "-c", "import time; time.sleep(25)", str(script)]
    ours = subprocess.Popen(sleep, cwd=d.state)  # in its state folder, like the deployment's processes
    other = subprocess.Popen(sleep, cwd=root)
    try:
        before = listing(root)
        with pytest.raises(StackcrateError) as exc:
            init_install(d, t, reinstall=True, root=root)
        assert str(venv(root, "nova")) in exc.value.message
        assert f"{ours.pid} (of this deployment)" in exc.value.message
        assert f"{other.pid} ({sys.executable} -c import time" in exc.value.message
        assert "stop them first" in exc.value.hint
        assert listing(root) == before
    finally:
        for proc in (ours, other):
            proc.kill()
            proc.wait(timeout=10)
    init_install(d, t, reinstall=True, root=root)
    assert installed.read(venv(root, "nova")).sha256 == ArtifactIndex.load(dist.folder).find("nova", "tar").sha256


@pytest.mark.parametrize("fresh", [True, False], ids=["fresh", "reinstall"])
def test_interrupted_extraction_leaves_no_temp_folder(d, dist, root, t, tmp_path, monkeypatch, fresh):
    """Each extraction interrupted once tar has written its files (as Ctrl-C reaches every process): fresh, every
    venv to install, unpacked together in worker processes; reinstall, glance alone, in this process."""
    if not fresh:
        init_install(d, t, root=root)
        dist.build("glance", extra="  # patched")
    before = listing(root)
    real, calls = inst.unpack._extract, tmp_path / "calls"  # a file: the workers are forked processes

    def interrupted(data, install_path, dest):
        real(data, install_path, dest)
        with calls.open("a") as f:
            f.write(f"{install_path} {len(list(dest.rglob('*')))}\n")
        raise KeyboardInterrupt

    monkeypatch.setattr(inst.unpack, "_extract", interrupted)
    with pytest.raises(KeyboardInterrupt):
        init_install(d, t, reinstall=not fresh, root=root)
    written = dict(line.split() for line in calls.read_text().splitlines())
    assert all(int(n) > 3 for n in written.values()) and temp_folders(root) == []
    if fresh:  # every venv's extraction wrote its files, and none is in place
        assert len(written) == len(inst.artifacts(d))
        assert not [c for c in inst.artifacts(d) if venv(root, c).exists()]
    else:
        assert list(written) == [inst.artifacts(d)["glance"].install_path] and listing(root) == before


def test_killed_install_leftovers_are_removed_by_the_next_one(d, dist, root, t):
    leftover = root / "opt" / "openstack" / ".glance-32.0.0.tmp-killed" / "bin"
    leftover.mkdir(parents=True)
    init_install(d, t, root=root)
    assert temp_folders(root) == []


# ----------------------------------------------------------------------------------------------- speed

def test_checked_artifacts_are_not_read_again_until_they_change(d, dist, root, t, monkeypatch):
    init_install(d, t, root=root)
    reads = []
    real_check, real_sha = inst.unpack.check, inst.sha256_file
    monkeypatch.setattr(inst.unpack, "check", lambda path, top: reads.append(path) or real_check(path, top))
    monkeypatch.setattr(inst, "sha256_file", lambda p: reads.append(p) or real_sha(p))
    inst.prepare(d, root=root)
    assert reads == []
    time.sleep(0.01)
    os.utime(dist.file("nova"))  # same bytes, but touched: read again (sha256 only: nova is installed)
    inst.prepare(d, root=root)
    assert reads == [dist.file("nova")]


def counted_extractions(monkeypatch, log: Path) -> None:
    """Each tar extraction logged to a file (the workers are forked processes) by its install path."""
    real = inst.unpack._extract

    def logged(data, install_path, dest):
        with open(log, "a") as f:
            f.write(f"{install_path}\n")
        return real(data, install_path, dest)

    monkeypatch.setattr(inst.unpack, "_extract", logged)


def extractions(log: Path) -> list[str]:
    return sorted(log.read_text().split()) if log.exists() else []


def test_venvs_installed_again_are_linked_from_the_cache_without_unpacking(d, dist, root, t, tmp_path, monkeypatch):
    log = tmp_path / "extractions.log"
    counted_extractions(monkeypatch, log)
    init_install(d, t, root=root)
    assert extractions(log) == sorted(a.install_path for a in inst.artifacts(d).values())  # unpacked once each
    before = listing(root)
    for c in inst.artifacts(d):
        shutil.rmtree(venv(root, c))  # as `rm --purge` leaves the install root
    log.unlink()
    init_install(d, t, root=root)
    assert extractions(log) == []
    nova_init = Path("lib/python3.11/site-packages/nova/__init__.py")
    installed_file = venv(root, "nova") / nova_init
    [kept] = (d.cache.root / "venvs").glob(f"*/*/tree/{nova_init}")
    assert installed_file.stat().st_ino == kept.stat().st_ino  # one file, two names
    assert {k: v[0::2] for k, v in listing(root).items()} == {k: v[0::2] for k, v in before.items()}
    for c in inst.artifacts(d):  # each record's tree digest is the installed tree's
        assert installed.read(venv(root, c)).tree == installed.tree_digest(venv(root, c))
    assert temp_folders(root) == []


def test_a_kept_venv_written_over_through_its_installed_links_is_unpacked_again(d, dist, root, t, tmp_path,
                                                                                monkeypatch):
    """A file of an installed venv written over in place (same size, as an editor keeping hard links does) is
    also the cache's: that entry is not linked again, the artifact is unpacked instead."""
    init_install(d, t, root=root)
    init = venv(root, "keystone") / "lib" / "python3.11" / "site-packages" / "keystone" / "__init__.py"
    original = init.read_text()
    with open(init, "r+") as f:
        f.write(original.replace("VERSION", "HOTFIX_"))
    shutil.rmtree(venv(root, "keystone"))
    log = tmp_path / "extractions.log"
    counted_extractions(monkeypatch, log)
    init_install(d, t, root=root)
    assert init.read_text() == original
    assert extractions(log) == [inst.artifacts(d)["keystone"].install_path]


def test_a_rebuilt_artifact_replaces_the_kept_venv_of_its_install_path(d, dist, root, t):
    def kept() -> dict[str, str]:  # install path's slot -> the artifact kept there
        return {p.parent.name: p.name for p in (d.cache.root / "venvs").glob("*/*")}

    init_install(d, t, root=root)
    before, old = kept(), inst.artifacts(d)["glance"].sha256
    assert sorted(before.values()) == sorted(a.sha256 for a in inst.artifacts(d).values())
    dist.build("glance", extra="  # patched")
    init_install(d, t, reinstall=True, root=root)
    [slot] = [s for s, sha in before.items() if sha == old]
    assert kept() == {**before, slot: inst.artifacts(d)["glance"].sha256} != before


def test_kept_venvs_others_could_write_are_not_linked_and_venvs_are_unpacked(d, dist, root, t, tmp_path,
                                                                             monkeypatch):
    init_install(d, t, root=root)
    venvs = d.cache.root / "venvs"
    venvs.chmod(0o775)  # a group may now replace an entry's files with ones of the same sizes and times
    for c in inst.artifacts(d):
        shutil.rmtree(venv(root, c))
    log = tmp_path / "extractions.log"
    counted_extractions(monkeypatch, log)
    init_install(d, t, root=root)
    assert extractions(log) == sorted(a.install_path for a in inst.artifacts(d).values())
    assert (venv(root, "nova") / "bin" / "nova-api").stat().st_nlink == 1


@pytest.mark.skipif(not Path("/dev/shm").is_dir(), reason="needs /dev/shm, a filesystem of its own")
def test_a_cache_on_another_filesystem_keeps_nothing_and_venvs_are_unpacked(dep, dist, root, t, tmp_path):
    cache = Path(tempfile.mkdtemp(prefix="stackcrate-test-cache-", dir="/dev/shm"))
    try:
        assert os.stat(cache).st_dev != os.stat(tmp_path).st_dev
        d = Deployment(dep["services"], dep["config"], cache=Cache(cache))
        init_install(d, t, root=root)
        assert not list((cache / "venvs").glob("*/*"))
        python = venv(root, "nova") / "bin" / "nova-api"
        assert python.stat().st_nlink == 1 and installed.read(venv(root, "nova")).tree == \
            installed.tree_digest(venv(root, "nova"))
    finally:
        shutil.rmtree(cache)


def test_an_artifact_artifacts_json_does_not_vouch_for_is_never_decompressed(d, dist, root, t, tmp_path, monkeypatch):
    """Its sha256 is checked first: bytes altered after the build (which could be made to expand without bound)
    never reach the member rules' walk. The walks happen in forked workers, so they are logged to a file."""
    log = tmp_path / "walks.log"
    real_check = inst.unpack.check

    def logged(path, top):
        with open(log, "a") as f:
            f.write(f"{path.name}\n")
        return real_check(path, top)

    monkeypatch.setattr(inst.unpack, "check", logged)
    data = bytearray(dist.file("nova").read_bytes())
    data[len(data) // 2] ^= 0xFF
    dist.file("nova").write_bytes(bytes(data))
    with pytest.raises(StackcrateError, match="artifacts.json says"):
        inst.prepare(d, root=root)
    walked = log.read_text().splitlines() if log.exists() else []
    assert dist.file("nova").name not in walked
    assert dist.file("glance").name in walked  # the others were walked: the log works


# ----------------------------------------------------------------------------------------------- purge

def keystone_only(dep, tmp_path) -> Deployment:
    """A second deployment sharing the artifacts and install root: keystone (and the client) only."""
    services = yaml.safe_load(dep["services"].read_text())
    services["services"] = {"keystone": services["services"]["keystone"]}
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "services.yaml").write_text(yaml.safe_dump(services))
    return Deployment(tmp_path / "b" / "services.yaml", dep["config"], state_dir=str(tmp_path / "b" / "state"))


def test_purge_removes_only_venvs_no_other_deployment_uses(dep, d, dist, root, t, tmp_path):
    b = keystone_only(dep, tmp_path)
    init_install(d, t, root=root)
    init_install(b, t, root=root)
    shared = {venv(root, "keystone"), venv(root, "python-openstackclient")}
    assert set(installed.read(venv(root, "keystone")).users) == {str(d.state), str(b.state)}

    out = inst.release(d.state)
    assert sorted(out["removed"]) == sorted(str(venv(root, n)) for n in COMPONENTS if venv(root, n) not in shared)
    assert {k["venv"] for k in out["kept"]} == {str(v) for v in shared}
    assert all(f"used by {b.state}" == k["why"] for k in out["kept"])
    assert {p for p in (root / "opt" / "openstack").iterdir() if not p.name.startswith(".")} == shared
    assert installed.read(venv(root, "keystone")).users == [str(b.state)]

    out = inst.release(b.state)
    assert sorted(out["removed"]) == sorted(str(v) for v in shared) and out["kept"] == []
    assert [p.name for p in (root / "opt" / "openstack").iterdir()] == [installed.RECORDS]
    assert [p.name for p in (root / "opt" / "openstack" / installed.RECORDS).iterdir()] == [".lock"]


@pytest.mark.parametrize("broken", ["{not json", '{"other": []}', "", '{"venvs": "abc"}', '{"venvs": ["opt/x"]}'],
                         ids=["not-json", "no-venvs", "empty", "not-a-list", "relative"])
def test_purge_with_a_hand_broken_list_of_used_venvs_finds_them_by_their_records(dep, d, dist, root, t, tmp_path,
                                                                                 broken):
    b = keystone_only(dep, tmp_path)
    init_install(d, t, root=root)
    init_install(b, t, root=root)
    (d.state / inst.USED).write_text(broken)
    shared = {venv(root, "keystone"), venv(root, "python-openstackclient")}

    out = inst.release(d.state, where=inst.prefixes(d, root))
    assert sorted(out["removed"]) == sorted(str(venv(root, n)) for n in COMPONENTS if venv(root, n) not in shared)
    assert {k["venv"] for k in out["kept"]} == {str(v) for v in shared}
    assert installed.read(venv(root, "keystone")).users == [str(b.state)]


def test_purge_keeps_venvs_of_unknown_users_and_drops_users_that_are_gone(dep, d, dist, root, t, tmp_path):
    import shutil
    b = keystone_only(dep, tmp_path)
    init_install(b, t, root=root)
    shutil.rmtree(b.state)  # removed by hand, without `rm --purge`
    init_install(d, t, root=root)
    records = root / "opt" / "openstack" / installed.RECORDS
    (records / "glance-32.0.0.json").unlink()  # glance as an older stackcrate installed it: a marker only
    assert installed.read(venv(root, "glance")).unlisted_users

    out = inst.release(d.state)
    assert str(venv(root, "keystone")) in out["removed"]  # its other user's state folder is gone
    assert [k["venv"] for k in out["kept"]] == [str(venv(root, "glance"))]
    assert "others may use it" in out["kept"][0]["why"]
    assert (venv(root, "glance") / "bin" / "python").is_symlink()


def test_init_switching_versions_stops_using_the_old_venv(d, dist, root, t):
    init_install(d, t, root=root)
    entries = ArtifactIndex.load(dist.folder).artifacts
    g = next(a for a in entries if a.component == "glance")
    tree = dist.work / "tree-glance-33"
    venv_tree(tree, "glance", "33.0.0")
    out = dist.folder / "glance-33.0.0.tar.zst"
    write_tar_zst(tree, out, EPOCH)
    entries[entries.index(g)] = index_entry(out, "glance", "33.0.0")
    ArtifactIndex(stackcrate="test", artifacts=entries).write(dist.folder)
    init_install(d, t, root=root)
    assert installed.read(venv(root, "glance")).users == []
    assert installed.read(root / "opt" / "openstack" / "glance-33.0.0").users == [str(d.state)]
    assert str(venv(root, "glance")) not in inst.release(d.state)["removed"]  # no longer this deployment's


@pytest.fixture
def debs_mode(dep, tmp_path) -> Deployment:
    """venvs_from: debs, with one tiny real .deb per component (packages this machine does not have)."""
    entries = []
    for name, version in COMPONENTS.items():
        tree = tmp_path / "deb-trees" / name
        (tree / "DEBIAN").mkdir(parents=True)
        pkg = f"openstack-{name}-{version}-stackcrate-test"
        (tree / "DEBIAN" / "control").write_text(f"Package: {pkg}\nVersion: {version}\nArchitecture: amd64\n"
                                                 "Maintainer: t <t@example.com>\nDescription: t\n")
        deb = dep["dist"] / f"{pkg}_{version}_amd64.deb"
        subprocess.run(["dpkg-deb", "--root-owner-group", "-Zgzip", "--build", str(tree), str(deb)], check=True,
                       capture_output=True, timeout=60)
        entries.append(index_entry(deb, name, version).model_copy(update={"format": "deb"}))
    ArtifactIndex(stackcrate="test", artifacts=entries).write(dep["dist"])
    conf = yaml.safe_load(dep["config"].read_text())
    dep["config"].write_text(yaml.safe_dump({**conf, "venvs_from": "debs"}))
    return Deployment(dep["services"], dep["config"])


def test_debs_mode_plans_dpkg_for_a_missing_package_and_refuses_an_altered_deb_or_an_unowned_venv(debs_mode, root):
    d = debs_mode
    assert inst.backend_format(d) == "deb"
    planned = inst.prepare(d, root=root)  # never the machine's own /opt/openstack: a deployment may run from it
    assert {p.action for p in planned} == {"install"}
    assert planned[0].why == f"dpkg -i {planned[0].file.name}" and planned[0].file.suffix == ".deb"
    for name, version in COMPONENTS.items():  # venvs at their paths, which dpkg did not install
        (root / f"opt/openstack/{name}-{version}/bin").mkdir(parents=True)
        (root / f"opt/openstack/{name}-{version}/bin/python").symlink_to("/usr/bin/python3")
    with pytest.raises(StackcrateError, match="dpkg does not have openstack-keystone-29.1.0-stackcrate-test"):
        inst.venvs(d, root)
    # a venv at the path that dpkg does not own (unpacked from an archive?) is not written over unless asked
    with pytest.raises(StackcrateError, match="keystone-29.1.0 exists but dpkg did not install it"):
        inst.prepare(d, root=root)
    assert {p.action for p in inst.prepare(d, reinstall=True, root=root) if p.component == "keystone"} == {"replace"}
    deb = planned[0].file
    deb.write_bytes(deb.read_bytes() + b"\0")  # changed after the build: artifacts.json's sha256 no longer holds
    with pytest.raises(StackcrateError, match="was changed or damaged after the build"):
        inst.prepare(d, root=root / "another")


def test_tree_digest_keeps_the_format_of_the_records_earlier_installs_wrote(tmp_path):
    """Records on disk hold digests an earlier stackcrate computed: the walk must give the same lines in the same
    order (each folder's files, then its folders, by name; then each folder's own entries), skip __pycache__, and
    not follow a symlink to a folder; a change of a file's size, mode or mtime changes the digest."""
    venv = tmp_path / "v"
    (venv / "bin" / "sub").mkdir(parents=True)
    (venv / "bin" / "sub" / "x").write_text("x")
    (venv / "lib" / "pkg" / "__pycache__").mkdir(parents=True)
    (venv / "bin" / "tool").write_text("#!/bin/sh\n")
    (venv / "lib" / "pkg" / "a.py").write_text("a = 1\n")
    (venv / "lib" / "pkg" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    (venv / "pyvenv.cfg").write_text("home = /usr/bin\n")
    (venv / "lib64").symlink_to("lib")
    (venv / "bin" / "python").symlink_to("/usr/bin/python3")
    for f in (venv / "bin" / "tool", venv / "bin" / "sub" / "x", venv / "lib" / "pkg" / "a.py", venv / "pyvenv.cfg"):
        os.utime(f, (EPOCH, EPOCH))
        f.chmod(0o755 if f.name == "tool" else 0o644)
    # depth first: bin's folder sub and its file before lib's folder pkg
    lines = ["F pyvenv.cfg 100644 16 1700000000", "D bin 40755", "D lib 40755", "L lib64 -> lib",
             "L bin/python -> /usr/bin/python3", "F bin/tool 100755 10 1700000000", "D bin/sub 40755",
             "F bin/sub/x 100644 1 1700000000", "D lib/pkg 40755", "F lib/pkg/a.py 100644 6 1700000000"]
    os.chmod(venv, 0o755)
    for folder in (venv / "bin", venv / "bin" / "sub", venv / "lib", venv / "lib" / "pkg"):
        folder.chmod(0o755)
    expected = hashlib.sha256("".join(line + "\n" for line in lines).encode()).hexdigest()
    assert installed.tree_digest(venv) == expected
    (venv / "lib" / "pkg" / "__pycache__" / "b.cpython-311.pyc").write_bytes(b"y")  # Python's own writes
    assert installed.tree_digest(venv) == expected
    os.utime(venv / "lib" / "pkg" / "a.py", (EPOCH + 1, EPOCH + 1))
    assert installed.tree_digest(venv) != expected
