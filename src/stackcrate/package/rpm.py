""".rpm of a built component, written by rpmbuild (the reference rpm writer: the result is what rpm itself
verifies, with no reimplementation of the header format to trust).

Same naming as the .deb: `openstack-<name>-<version>`, so versions install side by side. Requires are the
interpreter, the bindep.txt entries for the rpm platform and, for each library the ELF scan found, rpm's own
soname capability (`libfoo.so.1()(64bit)`); rpmbuild's automatic dependency generator is off because it
would read the venv's own paths as dependencies.
"""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

from ..cache import Cache
from ..errors import StackcrateError
from ..model.built import BuiltComponent
from ..tools import ToolFailed, run, which
from ..ui import UI
from . import Made, cached, sbom, sysdeps, unpacked
from .deb import package_name

RPM_FORMAT = 2

COMPRESSOR = "zstd -3 -T0"              # the payload's, as the benchmark shows it
COMPRESSOR_CLI = "zstd -q -3 -T0"       # the same from the command line: on every core, like w3T0.zstdio

# rpmbuild gives every file a class from libmagic's whole database and matches it against every dependency
# generator's rules, although AutoReqProv is off: 60 % of its time for a venv's 12,000 files. What the package
# still needs a class for is an ELF object's colour (32 or 64 bit), so libmagic reads this small database
# instead (through its MAGIC variable) and the generators' rules are one that matches no file.
FILE_MAGIC = "".join("\t".join(fields) + "\n" for fields in [
    ("0", "string", "\\177ELF", "ELF"),
    (">4", "byte", "1", "32-bit"),
    (">4", "byte", "2", "64-bit"),
    (">5", "byte", "1", "LSB"),
    (">5", "byte", "2", "MSB"),
    (">16", "leshort", "2", "executable"),
    (">16", "leshort", "3", "shared object"),
    ("0", "string", "#!", "script text executable"),
])
NO_FILE_ATTRS = "%__stackcrate_path ^$\n"

# rpmbuild settings that make the output depend only on its inputs (see DESIGN.md) and leave the venv as built
REPRODUCIBLE = {
    "_buildhost": "stackcrate",
    "use_source_date_epoch_as_buildtime": "1",
    "clamp_mtime_to_source_date_epoch": "1",
    "__os_install_post": "%{nil}",     # no stripping, no byte-compiling, no shebang mangling of the venv
    "debug_package": "%{nil}",
    "_build_id_links": "none",
    "_binary_payload": "w3T0.zstdio",   # zstd's threaded output is the same for any number of threads
    "_binary_filedigest_algorithm": "8",  # sha256
}


def make(built: BuiltComponent, cache: Cache, ui: UI) -> list[Made]:
    deps = sysdeps.system_deps(built, cache, "rpm")
    name = package_name(built)
    fname = f"{name}-{built.version}-1.x86_64.rpm"

    def build(out: Path) -> None:
        with ui.step(f"Writing {fname}"), unpacked(built, cache) as tree:
            write_rpm(built, deps, name, tree, tree.parent / "rpmbuild", out / fname)
            sbom.write(built, deps, out / f"{fname}.cdx.json", fname)

    inputs = {"v": RPM_FORMAT, "build": built.key, "deps": deps.to_json(), "order": deps.names}
    entry, made = cached(cache, "rpm", inputs, build)
    return [Made("rpm", entry / fname, made), Made("sbom", entry / f"{fname}.cdx.json", made)]


def spec(built, deps, name: str, tree: Path) -> str:
    # The build root is the unpacked tree itself, moved (the writer's own scratch copy): rpmbuild compares every
    # file with more than one link against every file before it, looking for hard links, so a hard-linked copy
    # (each file linked twice) cost it 12,000² / 2 comparisons for a venv; a copy would write the bytes again.
    requires = "\n".join(f"Requires: {_rpm_dep(d)}" for d in deps.names)
    return textwrap.dedent("""\
        Name: {name}
        Version: {version}
        Release: 1
        Summary: OpenStack {comp} {version} ({series}), self-contained venv
        License: Apache-2.0 and others (see the dist-info folders in {path})
        URL: https://pypi.org/project/{comp}/
        AutoReqProv: no
        Provides: openstack-{comp} = {version}
        {requires}

        %description
        {desc}

        %install
        rmdir "%{{buildroot}}" && mv "{tree}" "%{{buildroot}}"

        %files
        {path}
        """).format(name=name, version=built.version, comp=built.name, series=built.series,
                    path=built.install_path, requires=requires, desc=built.describe(), tree=tree)


def _rpm_dep(spec: str) -> str:
    # bindep writes "pkg (>= 1.0)"; rpm wants "pkg >= 1.0"
    name, _, cons = spec.partition(" (")
    return f"{name} {cons.rstrip(')')}" if cons else name


def write_rpm(built, deps, name: str, tree: Path, top: Path, out: Path) -> None:
    specfile = top / "SPECS" / f"{name}.spec"
    specfile.parent.mkdir(parents=True)
    specfile.write_text(spec(built, deps, name, tree))
    (top / "fileattrs").mkdir()
    (top / "fileattrs" / "none.attr").write_text(NO_FILE_ATTRS)
    (top / "file.magic").write_text(FILE_MAGIC)
    settings = {**REPRODUCIBLE, "_topdir": str(top), "_fileattrsdir": str(top / "fileattrs")}
    defines = [a for k, v in settings.items() for a in ("--define", f"{k} {v}")]
    try:
        run([which("rpmbuild", "rpm"), "-bb", "--quiet", *defines, specfile],
            env={"SOURCE_DATE_EPOCH": str(built.epoch), "TZ": "UTC", "LC_ALL": "C", "MAGIC": str(top / "file.magic")})
    except ToolFailed as exc:
        raise StackcrateError(f"rpmbuild could not build {out.name}:\n{exc.stderr.strip()[-1500:]}") from None
    (rpm,) = (top / "RPMS").rglob("*.rpm")
    shutil.move(rpm, out)  # from a scratch folder, maybe on another filesystem
