"""pipeline.deliver: the images of a build go into dist/'s one OCI layout, each blob once; artifacts.json names
each image by its manifest blob there; a later build's layout holds only what its images use."""

from __future__ import annotations

import json

from stackcrate import pipeline
from stackcrate.cache import Cache
from stackcrate.model.artifacts import Artifact, ArtifactIndex, ArtifactSource
from stackcrate.package import Made
from stackcrate.package.oci import config_document, gzip_layer, laid_out, manifest_blob, write_layout


def layer(cache: Cache, name: str) -> dict:
    def write_tar(out):  # not a tar: the layout only needs bytes with a digest
        out.write(name.encode() * 1000)
    return gzip_layer(write_tar, cache, name)


def image(cache: Cache, tmp_path, ref: str, layers: list[dict]) -> Made:
    config = config_document(0, ["/bin/true"], [], "/", [], {}, layers, [ref] * len(layers))
    layout = tmp_path / "entries" / ref
    write_layout(config, ref, 0, layers, cache, layout)
    return Made("oci", manifest_blob(layout), True)


def entry(made: Made, component: str) -> Artifact:
    return Artifact(component=component, version="1", format="oci", file=pipeline.dist_name(made),
                    sha256=made.path.name, size=pipeline._size(made), install_path="/",
                    source=ArtifactSource(type="pypi", revision="1"), series="2026.1", target="debian-bookworm",
                    source_date_epoch=0, build_key="k")


def blobs(out) -> set[str]:
    return {p.name for p in (out / "images/blobs/sha256").iterdir()}


def test_images_share_their_common_layers_once_in_dist_and_a_later_build_drops_what_no_image_uses(tmp_path):
    cache = Cache(tmp_path / "cache")
    base, venv_a, venv_b = layer(cache, "base"), layer(cache, "venv-a"), layer(cache, "venv-b")
    a, b = image(cache, tmp_path, "a-1", [base, venv_a]), image(cache, tmp_path, "b-1", [base, venv_b])
    out = tmp_path / "dist"
    out.mkdir()
    (out / "a-0.oci.tar").write_bytes(b"an image as an earlier stackcrate delivered it")
    ArtifactIndex(stackcrate="old", artifacts=[entry(a, "a").model_copy(update={"file": "a-0.oci.tar"})]).write(out)

    pipeline.deliver(out, [a, b], [entry(a, "a"), entry(b, "b")])
    index = ArtifactIndex.load(out)
    shown = {x.component: laid_out(index.path(x)) for x in index.artifacts}
    assert {c: i.ref for c, i in shown.items()} == {"a": "a-1", "b": "b-1"}
    # two manifests, two configs, three layers: the base once
    assert blobs(out) == {d.split(":")[1] for i in shown.values() for d in i.blobs} and len(blobs(out)) == 7
    assert not (out / "a-0.oci.tar").exists()  # the earlier build's archive, no longer listed
    assert [m["annotations"]["org.opencontainers.image.ref.name"]
            for m in json.loads((out / "images/index.json").read_text())["manifests"]] == ["a-1", "b-1"]
    assert index.artifacts[0].size == sum(
        d["size"] for d in [shown["a"].manifest["config"], *shown["a"].manifest["layers"]]) + index.path(
        index.artifacts[0]).stat().st_size

    pipeline.deliver(out, [b], [entry(b, "b")])
    assert blobs(out) == {d.split(":")[1] for d in laid_out(ArtifactIndex.load(out).path(entry(b, "b"))).blobs}
    assert venv_a["digest"].split(":")[1] not in blobs(out) and base["digest"].split(":")[1] in blobs(out)
    assert sorted(p.name for p in out.iterdir()) == ["artifacts.json", "images"]  # no temporary folder left
