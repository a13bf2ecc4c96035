"""Manifest rendering and validation (no network, no builds)."""

import json

import pytest

from stackcrate import manifest as m
from stackcrate.errors import StackcrateError


def write(tmp_path, text, name="stackcrate.yaml"):
    p = tmp_path / name
    p.write_text(text)
    return p


GOOD = """\
series: "{{ series }}"
components:
  - name: keystone
    pypi: {version: "{{ ver | default('29.1.0') }}"}
"""


def test_renders_values_and_defaults(tmp_path):
    loaded = m.load(write(tmp_path, GOOD), {"series": "2026.1"})
    assert loaded.model.series == "2026.1"
    assert loaded.model.target == "debian-bookworm"
    assert loaded.model.components[0].pypi.version == "29.1.0"
    assert loaded.install_path("keystone", "29.1.0") == "/opt/openstack/keystone-29.1.0"


def test_set_and_vars_files(tmp_path):
    vars_file = write(tmp_path, "series: '2025.2'\nver: '28.0.0'\n", "vars.yaml")
    values = m.load_vars([str(vars_file)])
    values.update(m.parse_set(["ver=28.0.1"]))
    loaded = m.load(write(tmp_path, GOOD), values)
    assert (loaded.model.series, loaded.model.components[0].pypi.version) == ("2025.2", "28.0.1")


def test_set_makes_nested_values_and_refuses_what_names_no_value():
    assert m.parse_set(["a.b=1", "a.c=x", "v=29.1.0"]) == {"a": {"b": 1, "c": "x"}, "v": "29.1.0"}
    for pairs, said in ((["v"], "is not KEY=VALUE"), (["=3"], "no name before '='"),
                        (["a..b=1"], "'a..b' is not a name"),
                        (["a=1", "a.b=2"], "a was given a value of its own by an earlier --set")):
        with pytest.raises(StackcrateError, match=said):
            m.parse_set(pairs)


def test_a_pypi_version_that_is_not_a_version_number_is_refused_at_its_line(tmp_path):
    with pytest.raises(StackcrateError) as exc:
        m.load(write(tmp_path, GOOD), {"series": "2026.1", "ver": "latest"})
    assert "stackcrate.yaml:4: field 'components[0].pypi.version': 'latest' is not a version number" \
        in exc.value.render()


def test_undefined_variable_names_line_and_fix(tmp_path):
    with pytest.raises(StackcrateError) as exc:
        m.load(write(tmp_path, GOOD), {})
    text = exc.value.render()
    assert "stackcrate.yaml:1" in text and "'series'" in text and "--set series=" in text


def test_unknown_field_lists_allowed_fields(tmp_path):
    p = write(tmp_path, 'series: "2026.1"\ncomponents:\n  - name: keystone\n    pypi: {version: "1"}\n'
                        '    patchs: [a.patch]\n')
    with pytest.raises(StackcrateError) as exc:
        m.load(p)
    text = exc.value.render()
    assert f"{p}:5" in text and "unknown field 'components[0].patchs'" in text and "patches" in text


def test_missing_field_and_two_sources(tmp_path):
    p = write(tmp_path, 'components:\n  - name: a\n    pypi: {version: "1"}\n    path: ./a\n')
    with pytest.raises(StackcrateError) as exc:
        m.load(p)
    text = exc.value.render()
    assert "missing required field 'series'" in text
    assert f"{p}:2" in text and "exactly one source" in text


def test_override_must_be_exact_pin(tmp_path):
    p = write(tmp_path, 'series: "2026.1"\noverrides: ["urllib3>=2"]\ncomponents:\n  - name: a\n    path: .\n')
    with pytest.raises(StackcrateError, match=r"stackcrate.yaml:2.*must pin one exact version"):
        m.load(p)


def test_schema_is_json_schema():
    schema = json.loads(m.json_schema())
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert {"series", "components"} <= set(schema["required"])
    assert "git" in schema["$defs"]["Component"]["properties"]


LIBRARY = """\
series: "2026.1"
components:
  - name: nova
    pypi: {version: "33.0.2"}
    extra_requirements: [%s]
  - name: stackcrate-nova-podman
    path: ./driver
    library: true
"""


def test_a_library_must_be_required_by_a_component(tmp_path):
    assert m.load(write(tmp_path, LIBRARY % "Stackcrate_Nova_Podman")).model.components[1].library
    with pytest.raises(StackcrateError) as exc:
        m.load(write(tmp_path, LIBRARY % "gunicorn"))
    text = exc.value.render()
    assert "'stackcrate-nova-podman' is a library" in text and "extra_requirements" in text
