"""Every bad input: one clear message naming the file/field, exit 2, no traceback, output folder untouched."""



from tests.fixtures import assert_clean_failure, git_manifest, make_patch, manifest


def test_malformed_yaml(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: "2026.1"\ncomponents:\n  - name: keystone\n   pypi: [\n')
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, f"{m}:4", "not valid YAML")


def test_unknown_field(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: "2026.1"\nserie: x\ncomponents:\n  - name: k\n    pypi: {version: "1"}\n')
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, f"{m}:2", "unknown field 'serie'")


def test_missing_field(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: "2026.1"\ncomponents:\n  - name: k\n    git: {url: x}\n')
    res = stackcrate("lock", "-m", m)
    assert_clean_failure(res, out_dir, f"{m}:4", "missing required field 'components[0].git.ref'")


def test_unknown_series(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: "2026.7"\ncomponents:\n  - name: k\n    pypi: {version: "1"}\n')
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "unknown OpenStack series '2026.7'", "2026.1")


def test_python2_era_series_refused(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: kilo\ncomponents:\n  - name: keystone\n    pypi: {version: "2015.1.0"}\n')
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "series kilo cannot be built for debian-bookworm", "Python 2")


def test_unreachable_constraints(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: "2026.1"\nconstraints: "http://127.0.0.1:9/upper-constraints.txt"\n'
                           'components:\n  - name: k\n    pypi: {version: "1"}\n')
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "cannot fetch constraints from http://127.0.0.1:9/upper-constraints.txt",
                         "STACKCRATE_CONSTRAINTS_DIR")


def test_missing_constraints_file(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, 'series: "2026.1"\nconstraints: uc.txt\n'
                           'components:\n  - name: k\n    pypi: {version: "1"}\n')
    res = stackcrate("lock", "-m", m)
    assert_clean_failure(res, out_dir, f"constraints file {tmp_path / 'uc.txt'} does not exist")


def test_files_that_are_not_utf8_are_named_with_their_line(stackcrate, tmp_path, out_dir):
    latin1 = b"# caf\xe9 (latin-1)\n"
    m = manifest(tmp_path, 'series: "2026.1"\nconstraints: uc.txt\ncomponents:\n  - name: k\n'
                           '    pypi: {version: "1"}\n')
    (tmp_path / "uc.txt").write_bytes(b"pbr===7.0.1\n" + latin1)
    res = stackcrate("lock", "-m", m)
    assert_clean_failure(res, out_dir, f"{tmp_path / 'uc.txt'}:2: not UTF-8 text (byte 0xe9", "save the file as UTF-8")
    (tmp_path / "vars.yaml").write_bytes(b"a: 1\n" + latin1)
    res = stackcrate("lock", "-m", m, "--vars", tmp_path / "vars.yaml")
    assert_clean_failure(res, out_dir, f"{tmp_path / 'vars.yaml'}:2: not UTF-8 text")
    m.write_bytes(m.read_bytes() + latin1)
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, f"{m}:6: not UTF-8 text")


def test_unreachable_git_url(stackcrate, tmp_path, out_dir):
    m = manifest(tmp_path, git_manifest(tmp_path / "no-such-repo"))
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "cannot reach git repository", "components[0].git.url")


def test_missing_ref(stackcrate, tmp_path, out_dir, repo):
    m = manifest(tmp_path, git_manifest(repo, ref="9.9.9"))
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "ref '9.9.9' not found", "components[0].git.ref")


def test_missing_patch_file(stackcrate, tmp_path, out_dir, repo):
    m = manifest(tmp_path, git_manifest(repo, extra="    patches: [fixes/missing.patch]\n"))
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "patch file fixes/missing.patch does not exist", "components[0].patches[0]")


def test_patch_that_does_not_apply(stackcrate, tmp_path, out_dir, repo):
    patch = make_patch(repo, "1.2.0", 'MESSAGE = "hello from"', 'MESSAGE = "x"', tmp_path / "p.patch")
    patch.write_text(patch.read_text().replace('-MESSAGE = "hello from"', '-MESSAGE = "something else"'))
    m = manifest(tmp_path, git_manifest(repo, extra="    patches: [p.patch]\n"))
    res = stackcrate("build", "-m", m, "--out", out_dir)
    assert_clean_failure(res, out_dir, "patch p.patch does not apply to fixture-svc", "components[0].patches[0]")


def test_unknown_format(stackcrate, tmp_path, out_dir, repo):
    m = manifest(tmp_path, git_manifest(repo))
    res = stackcrate("build", "-m", m, "--out", out_dir, "--format", "zip")
    assert_clean_failure(res, out_dir, "unknown format zip")

