"""A component's venv once built: the tree every artifact writer starts from."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..targets import Target
from .lock import LockedComponent, LockedPackage


@dataclass(frozen=True)
class BuiltComponent:
    """The venv of one component, packed as a deterministic .tar.zst whose paths are relative to /."""

    name: str
    version: str
    install_path: str             # where the venv lives on the target, e.g. /opt/openstack/keystone-29.1.0
    tarball: Path                 # in the cache; the other formats unpack it
    key: str                      # build key: digest of everything that decides the tree
    epoch: int                    # SOURCE_DATE_EPOCH of every file and artifact made from it
    target: Target
    series: str
    locked: LockedComponent
    packages: tuple[LockedPackage, ...]   # every distribution in the venv
    sysdeps_exclude: tuple[str, ...] = ()  # bindep entries the manifest says are not needed at run time
    bindep_extra: tuple[str, ...] = ()     # bindep lines the manifest adds to the component's own
    rebuilt: bool = False         # built by this run (not found in the cache)

    @property
    def own_package(self) -> LockedPackage | None:
        return next((p for p in self.packages if p.key == self.locked.key), None)

    def describe(self) -> str:
        return (f"OpenStack {self.name} {self.version} (series {self.series}) in a Python venv at "
                f"{self.install_path}, built by stackcrate from {self.locked.source.origin} "
                f"(revision {self.locked.revision}).")
