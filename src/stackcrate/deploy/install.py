"""The deployment's artifacts: which ones it needs (from artifacts.json) and installing the venvs at their
built paths."""

from __future__ import annotations

from pathlib import Path

from ..archive import extract_tar_zst
from ..cache import sha256_file
from ..errors import StackcrateError
from ..model.artifacts import Artifact, ArtifactIndex
from .config import Deployment
from .timer import Timer


def needed_components(d: Deployment, fmt: str) -> list[str]:
    """The components whose artifact of `fmt` the deployment runs (the client only as a tarball)."""
    needed = [s.component for s in d.services.enabled().values()]
    return list(dict.fromkeys(needed + ([d.services.client] if fmt == "tar" else [])))


def artifacts(d: Deployment, fmt: str = "tar") -> dict[str, Artifact]:
    """component -> its artifact of format `fmt`, for every component the deployment needs."""
    index = ArtifactIndex.load(d.artifacts_dir)
    by = {a.component: a for a in index.artifacts if a.format == fmt}
    missing = [c for c in needed_components(d, fmt) if c not in by or not index.path(by[c]).is_file()]
    if missing:
        raise StackcrateError(f"missing artifact(s) ({fmt}) in {d.artifacts_dir}: {', '.join(missing)}",
                              hint="run `stackcrate deploy build` (with the configuration's backend), "
                                   "or add the component(s) to the manifest")
    return {c: by[c] for c in needed_components(d, fmt)}


def _install_marker(install_path: str) -> Path:
    # Beside the venvs, not inside one (a venv holds exactly its artifact's files).
    p = Path(install_path)
    return p.parent / ".stackcrate-installed" / f"{p.name}.sha256"


def install(d: Deployment, t: Timer) -> None:
    """Extract each artifact at / (its venv must live at the path it was built for); skip unchanged ones."""
    for a in artifacts(d).values():
        marker = _install_marker(a.install_path)
        if (marker.exists() and marker.read_text().strip() == a.sha256
                and Path(a.install_path, "bin", "python").exists()):
            continue
        with t.step(f"Installing {a.file} at {a.install_path}"):
            f = d.artifacts_dir / a.file
            if sha256_file(f) != a.sha256:
                raise StackcrateError(f"{f} does not match the sha256 in artifacts.json", hint="rebuild it")
            extract_tar_zst(f, Path("/"))
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(a.sha256 + "\n")


def venvs(d: Deployment) -> dict[str, str]:
    """component -> its installed venv, for every component the deployment needs."""
    out = {c: a.install_path for c, a in artifacts(d).items()}
    for s in d.services.enabled().values():
        if not Path(out[s.component], "bin", "python").exists():
            raise StackcrateError(f"{s.component} is not installed at {out[s.component]}",
                                  hint="run `stackcrate deploy init`")
    return out
