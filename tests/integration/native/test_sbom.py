"""Each artifact's CycloneDX SBOM validates against the CycloneDX 1.6 JSON schema and says what is inside."""

from __future__ import annotations

import json

from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator


def test_sboms_validate_and_list_lock_and_system_packages(native):
    validator = JsonStrictValidator(SchemaVersion.V1_6)
    lock = native["manifest"].with_suffix(".lock").read_text()
    for path in native["sboms"]:
        text = path.read_text()
        assert validator.validate_str(text) is None, path
        doc = json.loads(text)
        props = {p["name"]: p["value"] for p in doc["metadata"]["component"]["properties"]}
        assert doc["metadata"]["component"]["version"] == "29.1.0" and props["stackcrate:source-revision"]
        pypi = [c for c in doc["components"] if c["purl"].startswith("pkg:pypi/")]
        assert len(pypi) == 96  # keystone's closure minus keystone itself
        for c in pypi:
            (h,) = c["hashes"]
            assert h["content"] in lock, c["name"]  # the hash of the file the lock pinned
        system = {c["name"] for c in doc["components"] if not c["purl"].startswith("pkg:pypi/")}
        assert {"python3.11", "gettext"} <= system
