"""The lock stage's own logic, without uv or the network: reading uv's annotations, explaining its failures,
the constraints handed to it, closures and SOURCE_DATE_EPOCH."""

from __future__ import annotations

from pathlib import Path

import pytest

from stackcrate.constraints import Constraints
from stackcrate.manifest import Component, LoadedManifest, load
from stackcrate.model.lock import Lock, LockedPackage
from stackcrate.model.source import LockedPypi
from stackcrate.resolve import closure_of, effective_constraints, explain_failure, parse_via, upload_epoch
from stackcrate.sources import PreparedComponent

# uv pip compile --format requirements.txt --annotation-style split, as uv 0.9 writes it
UV_GRAPH = """\
keystone==29.1.0
    # via -r requirements.in
oslo-config==10.3.0
    # via
    #   -c constraints.txt
    #   keystone
    #   oslo-log
oslo-log==7.2.1
    # via
    #   -c constraints.txt
    #   keystone
pbr==7.0.1
    # via
    #   -c constraints.txt
    #   oslo-config
    #   oslo-log
python-memcached==1.62
    # via -r requirements.in
"""


KEYSTONE = 'series: "2026.1"\ncomponents:\n  - name: keystone\n    pypi: {version: "29.1.0"}\n'


def keystone_manifest(tmp_path: Path, more: str = "") -> LoadedManifest:
    """tmp_path/m.yaml: keystone 29.1.0 of 2026.1, `more` lines after its own (indented: more of keystone's)."""
    (tmp_path / "m.yaml").write_text(KEYSTONE + more)
    return load(tmp_path / "m.yaml")


def a_lock(series: str = "2026.1", packages: tuple[LockedPackage, ...] = (), inputs: dict | None = None,
           overrides: list[str] | None = None) -> Lock:
    """A lock of no component, with these packages and inputs."""
    return Lock(series=series, target="debian-bookworm", python_version="3.11.2",
                python_platform="x86_64-manylinux_2_36", constraints_source="uc.txt", overrides=overrides or [],
                packages={p.key: p for p in packages}, components=[], inputs=inputs or {})


def test_parse_via_inverts_annotations_into_dependencies():
    deps = parse_via(UV_GRAPH)
    assert deps["keystone"] == {"oslo-config", "oslo-log"}
    assert deps["oslo-config"] == {"pbr"}
    assert deps["oslo-log"] == {"oslo-config", "pbr"}
    assert deps["pbr"] == set() and deps["python-memcached"] == set()
    assert "-r" not in deps and "-c" not in deps  # the input files are not packages


def test_closure_follows_edges_and_ignores_unknown_names():
    pkgs = {n: LockedPackage(n, "1", dependencies=sorted(d)) for n, d in parse_via(UV_GRAPH).items()}
    pkgs["oslo-log"].dependencies.append("not-in-the-lock")
    assert closure_of("keystone", pkgs) == {"keystone", "oslo-config", "oslo-log", "pbr"}
    assert closure_of("pbr", pkgs) == {"pbr"}


def test_effective_constraints_drop_components_and_overridden_pins():
    uc = Constraints("uc.txt", "keystone===28.0.0\noslo.config===10.3.0\nurllib3===2.3.0\nsix===1.17.0\n")
    lines, origin = effective_constraints(uc, {"keystone"}, ["urllib3==2.5.0"])
    assert lines == ["oslo.config===10.3.0", "six===1.17.0", "urllib3==2.5.0"]
    assert origin["oslo-config"] == "oslo.config===10.3.0 (upper-constraints uc.txt, line 2)"
    assert origin["urllib3"] == "urllib3==2.5.0 (override)"
    assert "keystone" not in origin


UV_CONFLICT = """\
  × No solution found when resolving dependencies:
  ╰─▶ Because fixture-svc==1.2.0 depends on oslo-i18n>=6.0.0 and you require oslo-i18n==5.0.0, we can
      conclude that fixture-svc==1.2.0 cannot be used.
      And because you require fixture-svc==1.2.0, we can conclude that your requirements are unsatisfiable.
"""


def test_explain_failure_names_the_component_and_the_blocking_pin():
    comp = Component(name="fixture-svc", path="../svc")
    prepared = [PreparedComponent(comp, 0, "fixture-svc @ file:///w/fixture_svc-1.2.0-py3-none-any.whl",
                                  LockedPypi(version="1.2.0"))]
    origin = {"oslo-i18n": "oslo-i18n==5.0.0 (override)", "six": "six===1.17.0 (upper-constraints uc, line 9)"}
    err = explain_failure(UV_CONFLICT, prepared, origin, "2026.1").render()
    assert "cannot be satisfied together with the 2026.1 constraints" in err
    assert "Because fixture-svc==1.2.0 depends on oslo-i18n>=6.0.0" in err
    assert "No solution found" not in err and "╰─▶" not in err
    assert "components involved: fixture-svc (fixture-svc)" in err
    assert "- oslo-i18n==5.0.0 (override)" in err
    assert "six" not in err  # not involved in the conflict


def test_upload_epoch_is_the_newest_file():
    pkg = LockedPackage("six", "1.17.0", wheels=[{"upload-time": "2024-12-04T17:35:26.475Z"}],
                        sdist={"upload-time": "2024-12-04T17:35:28.174Z"})
    assert upload_epoch(pkg) == 1733333728
    assert upload_epoch(LockedPackage("x", "1")) == 0


def test_example_lock_names_its_inputs():
    lock = Lock.load(Path(__file__).resolve().parents[3] / "examples" / "keystone.lock")
    assert (lock.series, lock.target) == ("2026.1", "debian-bookworm")
    (ks,) = lock.components
    assert isinstance(ks.source, LockedPypi) and not ks.source.built_here and ks.revision == "29.1.0"
    assert set(ks.closure) <= set(lock.packages) and "keystone" in ks.closure


def test_example_lock_was_made_from_the_example_manifest_as_it_is():
    """The README's main job starts from examples/keystone.lock: a manifest digest that drifted (the example
    edited, or the digest's form changed) would make its first `lock` re-resolve and `build --locked` refuse."""
    from stackcrate.resolve import manifest_digest

    examples = Path(__file__).resolve().parents[3] / "examples"
    lock = Lock.load(examples / "keystone.lock")
    assert lock.inputs["manifest"] == manifest_digest(load(examples / "keystone.yaml"), [])


def test_an_override_removed_from_the_manifest_makes_the_lock_stale_one_given_on_the_command_line_does_not(tmp_path):
    from stackcrate.cache import Cache
    from stackcrate.resolve import load_inputs, manifest_digest, stale_reasons
    from tests.conftest import SNAPSHOT_REQS

    cache = Cache(tmp_path / "cache")
    with_override = keystone_manifest(tmp_path, 'overrides: ["pbr==6.1.1"]\n')
    _, _, constraints = load_inputs(with_override, cache, str(SNAPSHOT_REQS))

    def lock_of(manifest, extra: list[str]) -> Lock:
        return a_lock(overrides=sorted({*manifest.model.overrides, *extra}),
                      inputs={"manifest": manifest_digest(manifest, extra), "constraints": constraints.digest,
                              "extra_overrides": ",".join(extra)})

    def stale(lock_: Lock, manifest) -> list[str]:
        return stale_reasons(lock_, manifest, cache, str(SNAPSHOT_REQS), tmp_path / "m.lock")

    made_with_it = lock_of(with_override, [])
    assert stale(made_with_it, with_override) == []
    without = keystone_manifest(tmp_path)  # the override taken out of the manifest
    assert "the manifest m.yaml changed" in stale(made_with_it, without)[0]
    given_on_the_command_line = lock_of(without, ["pbr==6.1.1"])
    assert stale(given_on_the_command_line, without) == []


def test_a_component_field_a_later_stackcrate_adds_leaves_the_lock_up_to_date(tmp_path):
    """A field added to Component at its default must not change the digest a lock holds (adding `bindep` made
    every lock stale, and the re-lock moved the packages upper-constraints does not pin)."""
    from pydantic import Field

    from stackcrate.resolve import manifest_digest

    today = keystone_manifest(tmp_path, "    extras: [ldap]\n")

    class Later(Component):
        runtime_hooks: list[str] = Field(default_factory=list)

    def with_later(**given) -> LoadedManifest:
        c = today.model.components[0]
        model = today.model.model_copy(update={"components": [Later(**c.model_dump(exclude_unset=True), **given)]})
        return LoadedManifest(model, today.path, today.rendered)

    assert manifest_digest(with_later(), []) == manifest_digest(today, [])
    assert manifest_digest(with_later(runtime_hooks=["x"]), []) != manifest_digest(today, [])
    # what locks written before hold: every field, so the added one changed it
    assert manifest_digest(with_later(), [], every_field=True) != manifest_digest(today, [], every_field=True)


def test_a_lock_holding_the_digest_of_every_field_is_still_up_to_date(tmp_path):
    from stackcrate.cache import Cache
    from stackcrate.resolve import load_inputs, manifest_digest, stale_reasons
    from tests.conftest import SNAPSHOT_REQS

    manifest, cache = keystone_manifest(tmp_path), Cache(tmp_path / "cache")
    _, _, constraints = load_inputs(manifest, cache, str(SNAPSHOT_REQS))
    for every_field, other in ((True, "a"), (False, "b")):
        lock_ = a_lock(inputs={"manifest": manifest_digest(manifest, [], every_field),
                               "constraints": constraints.digest, "extra_overrides": ""})
        assert stale_reasons(lock_, manifest, cache, str(SNAPSHOT_REQS), tmp_path / "m.lock") == []
        lock_.inputs["manifest"] = other * 64
        assert "the manifest m.yaml changed" in stale_reasons(lock_, manifest, cache, str(SNAPSHOT_REQS),
                                                              tmp_path / "m.lock")[0]


def test_upgrade_package_without_a_lock_to_keep_is_a_clear_error(tmp_path):
    from stackcrate.cache import Cache
    from stackcrate.errors import StackcrateError
    from stackcrate.pipeline import ensure_lock
    from stackcrate.ui import UI

    manifest, cache = keystone_manifest(tmp_path), Cache(tmp_path / "cache")
    with pytest.raises(StackcrateError, match="m.lock does not exist") as exc:
        ensure_lock(manifest, tmp_path / "m.lock", cache, UI(quiet=True), upgrade_packages=("certifi",))
    assert "without --upgrade-package" in exc.value.hint
    a_lock(packages=(LockedPackage("keystone", "29.1.0"),)).write(tmp_path / "m.lock")
    with pytest.raises(StackcrateError, match="left aside by --upgrade") as exc:
        ensure_lock(manifest, tmp_path / "m.lock", cache, UI(quiet=True), upgrade=True, upgrade_packages=("certifi",))
    assert "not both" in exc.value.hint
    with pytest.raises(StackcrateError, match="keystone: a component's version is the manifest's"):
        ensure_lock(manifest, tmp_path / "m.lock", cache, UI(quiet=True), upgrade_packages=("Keystone",))


def test_preferences_seed_only_versions_of_index_packages(tmp_path):
    """uv prefers what the files it is about to write hold; a package from git or a folder has no version there
    (`name==` would stop uv), and the components' and the packages to upgrade are left out."""
    from stackcrate.resolve import _seed_preferences

    prefer = a_lock(packages=(
        LockedPackage("certifi", "2024.12.14"), LockedPackage("keystone", "29.1.0"),
        LockedPackage("setuptools", "75.8.0"), LockedPackage("from-git", "", vcs={"type": "git", "url": "x"}),
        LockedPackage("from-folder", "1.0", directory={"path": "/src"})))
    _seed_preferences(tmp_path, prefer, {"keystone", "setuptools"})
    assert (tmp_path / "graph.txt").read_text() == "certifi==2024.12.14\n"
    assert (tmp_path / "pylock.toml").read_text().count("[[packages]]") == 1
    assert 'name = "certifi"\nversion = "2024.12.14"' in (tmp_path / "pylock.toml").read_text()


class Resolved(Exception):
    pass


@pytest.fixture
def asked(monkeypatch) -> list:
    """The `prefer` lock each resolution was given; the resolution itself (uv and the index) raises Resolved."""
    from stackcrate import pipeline

    given = []

    def resolve(*args, prefer=None, **kw):
        given.append(prefer)
        raise Resolved

    monkeypatch.setattr(pipeline, "resolve_lock", resolve)
    return given


def test_refresh_re_creates_an_unreadable_lock_without_its_versions(tmp_path, asked):
    from stackcrate import pipeline
    from stackcrate.cache import Cache
    from stackcrate.errors import StackcrateError
    from stackcrate.ui import UI

    (tmp_path / "m.lock").write_text("[not a lock")
    manifest, cache = keystone_manifest(tmp_path), Cache(tmp_path / "cache")
    warned = []

    class Told(UI):
        def warn(self, text: str) -> None:
            warned.append(text)

    with pytest.raises(StackcrateError, match="m.lock is not valid TOML"):  # without --refresh: told, as before
        pipeline.ensure_lock(manifest, tmp_path / "m.lock", cache, Told(quiet=True))
    with pytest.raises(Resolved):
        pipeline.ensure_lock(manifest, tmp_path / "m.lock", cache, Told(quiet=True), refresh=True)
    assert asked == [None] and "m.lock is not valid TOML" in warned[0] and "without its versions" in warned[0]


@pytest.mark.parametrize("series, preferred", [("2026.1", True), ("2025.2", False)], ids=["same", "another"])
def test_locking_again_prefers_the_locks_versions_only_within_its_series(tmp_path, asked, series, preferred):
    from stackcrate import pipeline
    from stackcrate.cache import Cache
    from stackcrate.ui import UI

    a_lock(series, packages=(LockedPackage("certifi", "2024.12.14"),)).write(tmp_path / "m.lock")
    with pytest.raises(Resolved):
        pipeline.ensure_lock(keystone_manifest(tmp_path), tmp_path / "m.lock", Cache(tmp_path / "cache"),
                             UI(quiet=True), refresh=True)
    assert (asked[0] is not None and asked[0].packages["certifi"].version == "2024.12.14") == preferred
    assert preferred or asked == [None]


def test_a_relock_tells_each_version_that_moved_against_the_lock_it_wrote_over(tmp_path):
    from stackcrate.pipeline import BuildReport, LockOutcome

    before = a_lock(packages=(LockedPackage("certifi", "2024.12.14"), LockedPackage("pbr", "7.0.1"),
                              LockedPackage("six", "1.16.0"), LockedPackage("idna", "3.10")))
    after = a_lock(packages=(LockedPackage("certifi", "2026.10.19.post1"), LockedPackage("pbr", "7.0.1"),
                             LockedPackage("six", "1.15.0"), LockedPackage("wrapt", "1.17.2")))
    told = LockOutcome(after, tmp_path / "m.lock", written=True, replaced=before).changes
    assert told == [{"name": "certifi", "kind": "major", "old": "2024.12.14", "new": "2026.10.19.post1"},
                    {"name": "idna", "kind": "removed", "old": "3.10", "new": None},
                    {"name": "six", "kind": "downgraded", "old": "1.16.0", "new": "1.15.0"},
                    {"name": "wrapt", "kind": "added", "old": None, "new": "1.17.2"}]
    assert LockOutcome(after, tmp_path / "m.lock", written=False).changes is None  # up to date: nothing to tell
    assert LockOutcome(after, tmp_path / "m.lock", written=True).changes is None  # no earlier lock to tell against
    assert BuildReport(tmp_path, [], [], told).to_json()["lock_changes"] == told
    assert "lock_changes" not in BuildReport(tmp_path, [], [], None).to_json()


def test_a_lock_names_its_constraints_without_this_machines_paths(tmp_path):
    from stackcrate.cache import Cache
    from stackcrate.constraints import load_constraints

    (tmp_path / "2026.1").mkdir()
    (tmp_path / "2026.1" / "upper-constraints.txt").write_text("pbr===7.0.1\n")
    (tmp_path / "uc.txt").write_text("pbr===7.0.1\n")
    cache = Cache(tmp_path / "cache")
    in_folder = load_constraints("2026.1", cache, constraints_dir=str(tmp_path))
    assert in_folder.source == str(tmp_path / "2026.1" / "upper-constraints.txt")  # messages point at the file
    assert in_folder.named == "<constraints folder>/2026.1/upper-constraints.txt"  # the lock says where it sat
    given = load_constraints("2026.1", cache, source="uc.txt", base_dir=tmp_path)
    assert given.source == str(tmp_path / "uc.txt") and given.named == "uc.txt"  # as the manifest gave it
    assert in_folder.digest == given.digest


def test_constraints_read_the_same_whatever_their_line_endings_and_a_path_through_a_file_does_not_exist(tmp_path):
    from stackcrate.cache import Cache
    from stackcrate.constraints import load_constraints
    from stackcrate.errors import StackcrateError

    (tmp_path / "lf.txt").write_bytes(b"pbr===7.0.1\nsix===1.16.0\n")
    (tmp_path / "crlf.txt").write_bytes(b"pbr===7.0.1\r\nsix===1.16.0\r\n")  # as git's autocrlf may check it out
    cache = Cache(tmp_path / "cache")
    lf, crlf = (load_constraints("2026.1", cache, source=n, base_dir=tmp_path) for n in ("lf.txt", "crlf.txt"))
    assert crlf.digest == lf.digest  # a lock made from either is up to date with the other
    with pytest.raises(StackcrateError, match=r"constraints file .*lf.txt/uc.txt does not exist"):
        load_constraints("2026.1", cache, source="lf.txt/uc.txt", base_dir=tmp_path)
