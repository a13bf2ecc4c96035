"""Bad input found only by asking PyPI or building: one clear message, exit 2, no traceback, --out untouched."""



from tests.fixtures import assert_clean_failure, git_manifest, manifest, pbr_project


def test_unknown_pypi_version(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: "2026.1"\ncomponents:\n  - name: keystone\n    pypi: {version: "99.0.0"}\n')
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "keystone 99.0.0 is not on the package index", "components[0].pypi.version",
                         "newest releases")


def test_resolution_conflict_names_the_blocking_pin(stackcrate, tmp_path, out_dir, repo):
    m = manifest(tmp_path, git_manifest(repo).replace('series: "2026.1"\n',
                                                      'series: "2026.1"\noverrides: ["oslo.i18n==5.0.0"]\n'))
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "cannot be satisfied", "fixture-svc", "oslo-i18n==5.0.0 (override)")


def test_locked_with_stale_lock(stackcrate, tmp_path, out_dir, repo):
    m = manifest(tmp_path, git_manifest(repo))
    assert stackcrate("lock", "-m", m).returncode == 0
    m.write_text(git_manifest(repo, extra='    extra_requirements: ["six"]\n'))
    res = stackcrate("build", "--locked", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "the lock is stale", "stackcrate.yaml changed", "stackcrate lock")


def test_build_path_left_in_a_built_file_fails_the_build(stackcrate, tmp_path, out_dir):
    """A distribution that records its build folder would break on the target: the build must refuse it."""
    repo = pbr_project(tmp_path / "repos", "leaky-svc")
    (repo / "setup.py").write_text(
        "import os, setuptools\n"
        "open('leaky_svc/_build.py', 'w').write('BUILD_DIR = %r\\n' % os.getcwd())\n"
        "setuptools.setup(setup_requires=['pbr'], pbr=True)\n")
    from tests.fixtures import git

    git(repo, "commit", "-q", "-am", "record the build folder")
    git(repo, "tag", "-a", "1.2.1", "-m", "1.2.1")
    m = manifest(tmp_path, f'series: "2026.1"\ncomponents:\n  - name: leaky-svc\n'
                           f'    git: {{url: "{repo}", ref: "1.2.1"}}\n')
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "built files of leaky-svc still contain build-time paths", "_build.py")

