"""Where a series' openstack/requirements files live upstream: which git ref, and under which file name.

openstack/requirements keeps a ``stable/<series>`` branch only while the series is maintained. Afterwards the
branch becomes ``unmaintained/<series>`` (with an ``-eom`` tag), or is deleted and only a ``<series>-eol`` tag
is left, so ``stable/<series>`` answers 404 for those. The table below says, per series, which refs to try
(read from the repository's refs in 2026; a series not in it still has its ``stable/`` branch, or once it goes
end of life its ``-eol`` tag). The denylist was ``blacklist.txt`` up to 2024.1.
"""

from __future__ import annotations

from ..series import get_series

# (kind, name): opendev's raw URLs say whether the ref is a branch or a tag; GitHub's do not need to.
Ref = tuple[str, str]
OPENDEV = "https://opendev.org/openstack/requirements/raw/{kind}/{ref}/{file}"
GITHUB = "https://raw.githubusercontent.com/openstack/requirements/{ref}/{file}"

_EOL_TAG_ONLY = ("juno", "kilo", "liberty", "mitaka", "newton", "ocata", "pike", "queens", "rocky", "stein",
                 "train", "ussuri", "victoria", "wallaby", "xena", "2023.2", "2024.2")
_UNMAINTAINED = ("yoga", "zed", "2023.1", "2024.1")  # branch unmaintained/<series>, tag <series>-eom
REFS: dict[str, tuple[Ref, ...]] = {
    "master": (("branch", "master"),),
    **{s: (("tag", f"{s}-eol"),) for s in _EOL_TAG_ONLY},
    **{s: (("branch", f"unmaintained/{s}"), ("tag", f"{s}-eom")) for s in _UNMAINTAINED},
}
# A file's other names, tried in order where the first does not exist (in a data folder or upstream).
FILE_NAMES = {"denylist.txt": ("denylist.txt", "blacklist.txt")}


def refs(series: str) -> tuple[Ref, ...]:
    """The refs holding the series' files, the likeliest first."""
    name = get_series(series).name
    return REFS.get(name) or (("branch", f"stable/{name}"), ("tag", f"{name}-eol"))


def file_names(file: str) -> tuple[str, ...]:
    return FILE_NAMES.get(file, (file,))


def candidate_urls(series: str, file: str) -> list[str]:
    """The URLs to try for one file of a series, in order: per ref, opendev then GitHub, per file name."""
    return [url for kind, ref in refs(series) for name in file_names(file)
            for url in (OPENDEV.format(kind=kind, ref=ref, file=name), GITHUB.format(ref=ref, file=name))]
