"""Where a component's code comes from, once its source was fetched: the variants the lock records.

A component from PyPI without patches is installed from the index's wheel like any other locked package;
every other variant (git, a local path, or a PyPI sdist with patches) is built into a wheel by stackcrate,
from a tree whose content `digest` names.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter


class Patch(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str            # as written in the manifest (relative to it)
    sha256: str


class _Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    patches: list[Patch] = Field(default_factory=list)

    @property
    def built_here(self) -> bool:
        """stackcrate builds this component's wheel itself (not taken from the index as published)."""
        return True

    @property
    def revision(self) -> str:
        raise NotImplementedError

    @property
    def origin(self) -> str:
        """Where it comes from, for people: a URL, a folder or PyPI."""
        raise NotImplementedError

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


class LockedPypi(_Source):
    type: Literal["pypi"] = "pypi"
    version: str
    # with patches only: the sdist they apply to, and the digest of the wheel built from it
    sdist: Optional[str] = None
    sdist_sha256: Optional[str] = None
    digest: Optional[str] = None

    @property
    def built_here(self) -> bool:
        return bool(self.patches)

    @property
    def revision(self) -> str:
        return self.digest or self.version

    @property
    def origin(self) -> str:
        return "PyPI"


class LockedGit(_Source):
    type: Literal["git"] = "git"
    url: str
    ref: str
    commit: str
    digest: str

    @property
    def revision(self) -> str:
        return self.commit

    @property
    def origin(self) -> str:
        return self.url


class LockedPath(_Source):
    type: Literal["path"] = "path"
    path: str
    digest: str

    @property
    def revision(self) -> str:
        return self.digest

    @property
    def origin(self) -> str:
        return self.path


LockedSource = Annotated[LockedPypi | LockedGit | LockedPath, Field(discriminator="type")]
_ADAPTER: TypeAdapter[LockedSource] = TypeAdapter(LockedSource)


def source_from_dict(data: dict[str, Any]) -> LockedPypi | LockedGit | LockedPath:
    """Read a source as the lock stores it (raises pydantic's ValidationError when it is not one)."""
    return _ADAPTER.validate_python(data)
