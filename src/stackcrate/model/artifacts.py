"""artifacts.json: the index of a build's output folder. One model, one writer (the build), one reader (publish,
deploy and anyone scripting around a build)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, PrivateAttr, ValidationError

from ..errors import StackcrateError

INDEX = "artifacts.json"
Format = Literal["tar", "deb", "rpm", "oci", "sbom"]


class ArtifactSource(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["pypi", "git", "path", "debian"]   # debian: a system image of the target's packages
    revision: str
    url: Optional[str] = None     # git: the repository; debian: the archive
    ref: Optional[str] = None     # git only


class Artifact(BaseModel):
    model_config = ConfigDict(extra="forbid")
    component: str
    version: str
    format: Format
    file: str                     # name inside the output folder (an image: its manifest blob in images/)
    sha256: str
    size: int                     # bytes (an image: of all its blobs)
    install_path: str
    source: ArtifactSource
    series: str
    target: str
    source_date_epoch: int
    build_key: str


class ArtifactIndex(BaseModel):
    model_config = ConfigDict(extra="forbid")
    stackcrate: str               # version of stackcrate that wrote it
    artifacts: list[Artifact]
    _folder: Path = PrivateAttr(default=Path("."))

    @property
    def folder(self) -> Path:
        return self._folder

    def path(self, artifact: Artifact) -> Path:
        return self._folder / artifact.file

    def find(self, component: str, fmt: str) -> Artifact | None:
        return next((a for a in self.artifacts if a.component == component and a.format == fmt), None)

    @classmethod
    def load(cls, folder: Path) -> "ArtifactIndex":
        path = folder / INDEX
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise StackcrateError(f"no artifacts: {path} does not exist",
                                  hint="run `stackcrate build --out DIR` (or `stackcrate deploy build`)") from None
        except ValueError as exc:
            raise StackcrateError(f"{path} is not valid JSON: {exc}", hint="build again to rewrite it") from None
        try:
            index = cls.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"])
            raise StackcrateError(f"{path}: {where}: {first['msg']}",
                                  hint="it was not written by this version of stackcrate; build again") from None
        index._folder = folder
        return index

    def write(self, folder: Path) -> Path:
        """Write the index into folder, atomically (readers never see half a file)."""
        path = folder / INDEX
        tmp = folder / f".{INDEX}.tmp-{os.getpid()}"
        tmp.write_text(json.dumps(self.model_dump(mode="json", exclude_none=True), indent=2, sort_keys=True) + "\n")
        tmp.replace(path)
        self._folder = folder
        return path
