"""The candidate/curated manifest contract: round trip, conforming, and one-line errors."""

import json

import pyarrow as pa
import pytest

from letitwag.builders.manifest import (
    CANDIDATE_SCHEMA,
    ManifestError,
    read_candidates,
    read_image_bytes,
    write_candidates,
)


def _rows(tmp_path):
    (tmp_path / "images").mkdir(parents=True, exist_ok=True)
    (tmp_path / "images" / "a.jpg").write_bytes(b"file-bytes")
    return pa.table(
        {
            "candidate_id": ["folder/a", "knn/7"],
            "concept_id": ["dog", "cat"],
            "image": [{"bytes": None, "path": "images/a.jpg"}, {"bytes": b"inline", "path": None}],
            "source": ["folder", "knn"],
            "similarity": [None, 0.31],
            "my_extra": [1, 2],
        }
    )


def test_round_trip_conforms_and_keeps_extra_columns(tmp_path):
    write_candidates(tmp_path, _rows(tmp_path), {"source": "test"})
    manifest = read_candidates(tmp_path)
    assert manifest.table.schema.names[: len(CANDIDATE_SCHEMA)] == CANDIDATE_SCHEMA.names
    assert manifest.table["my_extra"].to_pylist() == [1, 2]
    assert manifest.table["url"].null_count == 2
    assert manifest.table.schema.field("similarity").type == pa.float32()
    assert manifest.provenance == {"format": "letitwag.candidates/1", "source": "test"}
    images = manifest.table["image"].to_pylist()
    assert read_image_bytes(manifest, images[0]) == b"file-bytes"
    assert read_image_bytes(manifest, images[1]) == b"inline"


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda t: t.drop(["candidate_id"]), "missing column"),
        (lambda t: t.set_column(0, "candidate_id", pa.array(["x", "x"])), "'x' appears more than once"),
        (lambda t: t.set_column(1, "concept_id", pa.array(["dog", None])), "row 1 has no concept_id"),
        (
            lambda t: t.set_column(2, "image", pa.array([{"bytes": None, "path": None}] * 2,
                                                        pa.struct([("bytes", pa.binary()), ("path", pa.string())]))),
            "row 0 has neither image bytes nor an image path",
        ),
    ],
)
def test_bad_manifests_fail_with_one_line(tmp_path, change, message):
    with pytest.raises(ManifestError, match=message):
        write_candidates(tmp_path, change(_rows(tmp_path)))


def test_unknown_major_version_is_refused(tmp_path):
    write_candidates(tmp_path, _rows(tmp_path))
    (tmp_path / "candidates.provenance.json").write_text(json.dumps({"format": "letitwag.candidates/2"}))
    with pytest.raises(ManifestError, match="is not 'letitwag.candidates/1'"):
        read_candidates(tmp_path)
    with pytest.raises(ManifestError, match="no candidates.parquet"):
        read_candidates(tmp_path / "nothing")
