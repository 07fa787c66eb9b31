"""edge.metadata: what we write is what we read, and what MediaPipe reads."""
import os
import sys
import types
import zipfile
import io

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from _edge_models import LABELS, SPEC, edge_models_fixture  # noqa: E402

from edge.metadata import (MetadataError, ModelInfo, metadata_buffer, read_metadata,  # noqa: E402
                           write_metadata)
from edge.samples import sample_photo  # noqa: E402
from edge.variants import preprocess_spec  # noqa: E402


@pytest.fixture(scope="session")
def models(tmp_path_factory):
    return edge_models_fixture(tmp_path_factory)


def _info(**kw):
    d = dict(name="efficientnet-lite0", description="test", version="2", spec=preprocess_spec("lite0"),
             labels=[f"n{i}" for i in range(10)], input_mean=[127.0], input_std=[128.0],
             output_kind="logits", author="me", license="Apache-2.0")
    d.update(kw)
    return ModelInfo(**d)


def test_round_trip(models):
    bare = open(models.bare_logits, "rb").read()
    assert read_metadata(bare) is None
    info = _info()
    assert read_metadata(write_metadata(bare, info)) == info


def test_writing_twice_replaces_instead_of_duplicating(models):
    bare = open(models.bare_logits, "rb").read()
    once = write_metadata(bare, _info())
    twice = write_metadata(once, _info(name="second", labels=[f"m{i}" for i in range(10)]))
    assert abs(len(twice) - len(once)) < 200
    with zipfile.ZipFile(io.BytesIO(twice)) as zf:
        assert sorted(zf.namelist()) == ["efficientnet_edge.json", "labels.txt"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
    got = read_metadata(twice)
    assert got.name == "second" and got.labels[0] == "m0"


def test_json_spec_file_contents(models):
    with zipfile.ZipFile(models.int8) as zf:
        import json
        d = json.loads(zf.read("efficientnet_edge.json"))
    assert d["format"] == "efficientnet-edge/1"
    assert d["spec"] == SPEC.to_dict()
    assert d["input_mean"] == [0.0] and d["input_std"] == [1.0]
    assert d["output"] == "probabilities" and d["labels_file"] == "labels.txt"


def test_rejects_non_models_and_mismatched_labels(models, tmp_path):
    with pytest.raises(MetadataError):
        write_metadata(b"not a model at all", _info())
    with pytest.raises(MetadataError):
        write_metadata(open(models.bare_logits, "rb").read(), _info(labels=["just", "three", "labels"]))
    with pytest.raises(FileNotFoundError):
        read_metadata(tmp_path / "missing.tflite")


def _mediapipe_metadata_module():
    """mediapipe's metadata module imports a C++ version helper this wheel does not ship; the
    displayer does not use it, so stand in an empty module for the import only."""
    name = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"
    parts = name.split(".")
    for i in range(3, len(parts) + 1):
        sys.modules.setdefault(".".join(parts[:i]), types.ModuleType(".".join(parts[:i])))
    from mediapipe.tasks.python.metadata import metadata
    return metadata


def test_mediapipe_metadata_displayer_reads_it(models):
    pytest.importorskip("mediapipe")
    md = _mediapipe_metadata_module()
    d = md.MetadataDisplayer.with_model_file(models.int8)
    assert sorted(d.get_packed_associated_file_list()) == ["efficientnet_edge.json", "labels.txt"]
    assert d.get_associated_file_buffer("labels.txt").decode().split() == LABELS
    import json
    meta = json.loads(d.get_metadata_json())
    assert meta["name"] == "tiny-test-net"
    tin = meta["subgraph_metadata"][0]["input_tensor_metadata"][0]
    assert tin["content"]["content_properties"]["color_space"] == "RGB"
    assert tin["process_units"][0]["options"] == {"mean": [0.0], "std": [1.0]}
    assert meta["min_parser_version"] == "1.0.0"


def test_mediapipe_image_classifier_returns_our_labels(models):
    mp = pytest.importorskip("mediapipe")
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.ImageClassifierOptions(base_options=BaseOptions(model_asset_path=models.int8),
                                         max_results=3)
    with vision.ImageClassifier.create_from_options(opts) as clf:
        result = clf.classify(mp.Image.create_from_file(sample_photo("chelsea").path))
    cats = result.classifications[0].categories
    assert len(cats) == 3
    assert all(c.category_name == LABELS[c.index] for c in cats)


def test_metadata_buffer_is_the_m001_flatbuffer(models):
    buf = metadata_buffer(models.fp32)
    assert buf[4:8] == b"M001"
