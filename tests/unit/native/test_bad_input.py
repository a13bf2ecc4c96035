"""Bad input for the native formats: one clear message, exit 2, nothing written into --out."""

from __future__ import annotations

from tests.fixtures import assert_clean_failure


def test_unknown_format(stackcrate, tmp_path, out_dir):
    m = tmp_path / "stackcrate.yaml"
    m.write_text('series: "2026.1"\ncomponents:\n  - name: keystone\n    pypi: {version: "29.1.0"}\n')
    res = stackcrate("build", "-m", m, "--format", "deb", "--format", "msi", "--out", out_dir)
    assert_clean_failure(res, out_dir, "unknown format msi", "use one of: tar, deb, rpm, oci")

