"""Each wheel's bytecode compiled once and shared (stackcrate.bytecode), without a build root: the worker runs
with this machine's interpreter on wheels made here."""

from __future__ import annotations

import importlib.util
import marshal
import subprocess
import sys
import zipfile
from pathlib import Path

from stackcrate import bytecode
from stackcrate.cache import Cache
from stackcrate.targets import get_target

TARGET = get_target("debian-bookworm")


def make_wheel(path: Path, files: dict[str, str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        for name, text in files.items():
            zf.writestr(name, text)
    return path


def compile_with_worker(wheel: Path, work: Path) -> bytes:
    """What compile_wheels has each build-root process do, here: the .pyc zip of one wheel."""
    work.mkdir(parents=True, exist_ok=True)
    base = work / "0"
    (work / "0.whl").write_bytes(wheel.read_bytes())
    (work / "0.txt").write_text("".join(f"{m}\t{rel}\n" for m, rel in bytecode.modules(wheel)))
    subprocess.run([sys.executable, "-S", "-c", bytecode._WORKER, str(base)], check=True, timeout=60,
                   env={"PYTHONHASHSEED": "0"})
    return (work / "0.pyc.zip").read_bytes()


def test_only_modules_installed_into_site_packages_are_compiled(tmp_path):
    wheel = make_wheel(tmp_path / "w-1.0-py3-none-any.whl", {
        "pkg/__init__.py": "", "pkg/mod.py": "X = 1\n", "pkg/data.json": "{}",
        "w-1.0.dist-info/METADATA": "Name: w\n", "w-1.0.data/scripts/tool.py": "print(1)\n",
        "w-1.0.data/purelib/extra.py": "Y = 2\n", "../escape.py": "", "/abs.py": ""})
    assert bytecode.modules(wheel) == [("pkg/__init__.py", "pkg/__init__.py"), ("pkg/mod.py", "pkg/mod.py"),
                                       ("w-1.0.data/purelib/extra.py", "extra.py")]


def test_a_wheels_bytecode_is_the_same_each_time_and_names_its_module_relative_to_site_packages(tmp_path):
    wheel = make_wheel(tmp_path / "w-1.0-py3-none-any.whl",
                       {"pkg/__init__.py": "", "pkg/mod.py": "def f():\n    return 'hello'\n"})
    first = compile_with_worker(wheel, tmp_path / "a")
    assert compile_with_worker(wheel, tmp_path / "b") == first
    tag = sys.implementation.cache_tag
    with zipfile.ZipFile(tmp_path / "a" / "0.pyc.zip") as zf:
        assert sorted(zf.namelist()) == [f"pkg/__pycache__/__init__.{tag}.pyc", f"pkg/__pycache__/mod.{tag}.pyc"]
        pyc = zf.read(f"pkg/__pycache__/mod.{tag}.pyc")
    source = b"def f():\n    return 'hello'\n"
    # PEP 552 unchecked-hash: flags 0b01, then the source's hash
    assert pyc[:4] == importlib.util.MAGIC_NUMBER and pyc[4:8] == b"\x01\x00\x00\x00"
    assert pyc[8:16] == importlib.util.source_hash(source)
    code = marshal.loads(pyc[16:])
    assert code.co_filename == "pkg/mod.py"


def test_a_module_that_does_not_compile_fails_naming_it(tmp_path):
    wheel = make_wheel(tmp_path / "w-1.0-py3-none-any.whl", {"pkg/bad.py": "print 'python 2'\n"})
    (tmp_path / "0.whl").write_bytes(wheel.read_bytes())
    (tmp_path / "0.txt").write_text("pkg/bad.py\tpkg/bad.py\n")
    proc = subprocess.run([sys.executable, "-S", "-c", bytecode._WORKER, str(tmp_path / "0")], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1 and "pkg/bad.py" in proc.stdout


def test_bytecode_is_written_beside_installed_sources_but_not_for_a_module_two_wheels_ship(tmp_path):
    cache = Cache(tmp_path / "cache")
    tag = "cpython-311"
    one = make_wheel(tmp_path / "a" / "one-1.0-py3-none-any.whl", {"one/m.py": ""})
    two = make_wheel(tmp_path / "b" / "two-1.0-py3-none-any.whl", {"two/m.py": "", "shared/x.py": ""})
    three = make_wheel(tmp_path / "c" / "three-1.0-py3-none-any.whl", {"shared/x.py": "", "gone/m.py": ""})
    for wheel in (one, two, three):
        entry = bytecode.entry(wheel, TARGET, cache)
        entry.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(entry, "w") as zf:
            for _, rel in bytecode.modules(wheel):
                folder, name = rel.rsplit("/", 1)
                zf.writestr(f"{folder}/__pycache__/{name[:-3]}.{tag}.pyc", f"bytecode of {wheel.name} {rel}")
    site = tmp_path / "site-packages"
    for folder in ("one", "two", "shared"):  # the installer put these in place; not gone/
        (site / folder).mkdir(parents=True)
    bytecode.write_into(site, [one, two, three], TARGET, cache)
    assert (site / f"one/__pycache__/m.{tag}.pyc").read_text() == "bytecode of one-1.0-py3-none-any.whl one/m.py"
    assert (site / f"two/__pycache__/m.{tag}.pyc").exists()
    assert not (site / f"shared/__pycache__/x.{tag}.pyc").exists()   # left to compile_rest
    assert not (site / "gone").exists()
