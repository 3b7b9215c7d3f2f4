"""Image tagging with a deterministic fake tagger: exact counts, postings, skips, inputs, resume.

The fake tagger reads an image's mean colour and says "red" with probability R/100 (clipped to
1), likewise green and blue, so every expected count below is worked out by hand from the
colours, including the strict ``> 0.7`` rule (R = 70 gives exactly 0.7: not present).
"""

import io
import json
import tarfile

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from letitwag.concepts import Concept, ConceptList
from letitwag.engine.executors import LocalExecutor
from letitwag.errors import UserInputError
from letitwag.frequency.images import Tagger, tag_images
from letitwag.frequency.images.readers import (
    decode_image,
    plan_shards,
    read_shard,
    webdataset_key,
)
from letitwag.postings import read_postings
from letitwag.tables import FrequencyTable

CONCEPTS = ConceptList([Concept("red"), Concept("green"), Concept("blue")], "colours")

# name -> colour; expected tags by hand (probability = channel / 100, present iff > 0.7)
COLOURS = {
    "a": (100, 0, 0),  # red
    "b": (80, 80, 0),  # red, green
    "c": (70, 0, 0),  # nothing: 0.70 is not > 0.7
    "d": (71, 0, 200),  # red, blue
    "e": (0, 0, 0),  # nothing
}
EXPECTED_POSTINGS = {("a", "red"), ("b", "red"), ("b", "green"), ("d", "red"), ("d", "blue")}
EXPECTED_COUNTS = {"red": 3, "green": 1, "blue": 1}


class ColourTagger:
    """Implements the Tagger protocol; counts its model calls so resume can be checked."""

    def __init__(self):
        self.calls = 0
        self.prepared = None

    def prepare(self, concepts):
        self.prepared = list(concepts.ids)

    def preprocess(self, image):
        return np.asarray(image, dtype=np.float64).reshape(-1, 3).mean(axis=0)

    def probabilities(self, batch):
        self.calls += 1
        return np.clip(np.stack(batch) / 100.0, 0.0, 1.0)

    def metadata(self):
        return {"tagger": "colour-fake"}


def _png(colour) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (6, 6), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def _truncated_png() -> bytes:
    buffer = io.BytesIO()
    noise = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    Image.fromarray(noise).save(buffer, format="PNG")
    return buffer.getvalue()[:1500]


BROKEN = {"not_an_image": b"hello, I am text", "empty": b"", "corrupt_image": _truncated_png()}


def _folder(tmp_path):
    folder = tmp_path / "images"
    (folder / "sub").mkdir(parents=True, exist_ok=True)
    for name, colour in COLOURS.items():
        target = folder / ("sub" if name == "d" else "") / f"{name}.png"
        target.write_bytes(_png(colour))
    for reason, data in BROKEN.items():
        (folder / f"broken_{reason}.jpg").write_bytes(data)
    (folder / "notes.txt").write_text("not an image file, ignored")
    return folder


def _run(tmp_path, images, tagger=None, out="out", **options):
    tagger = tagger or ColourTagger()
    table = tag_images([str(i) for i in images], CONCEPTS, tagger, tmp_path / out, **options)
    postings = read_postings(tmp_path / out / "image_postings.parquet")
    pairs = set(zip(postings["sample_id"].to_pylist(), postings["concept_id"].to_pylist()))
    return table, pairs, tagger


def test_protocol_is_satisfied_by_the_fake():
    assert isinstance(ColourTagger(), Tagger)


def test_folder_counts_postings_and_skips_exactly(tmp_path):
    table, pairs, tagger = _run(tmp_path, [_folder(tmp_path)], shard_size=3, batch_size=2)
    assert table.counts() == EXPECTED_COUNTS
    renamed = {("sub/d" if s == "d" else s, c) for s, c in EXPECTED_POSTINGS}
    assert pairs == renamed
    assert set(table.table["count_type"].to_pylist()) == {"image"}
    assert table.table["corpus_size"].to_pylist() == [5, 5, 5]
    stored = FrequencyTable.read(tmp_path / "out" / "image.parquet")
    assert stored.provenance["skipped"] == {"corrupt_image": 1, "empty": 1, "not_an_image": 1}
    assert stored.provenance["images_tagged"] == 5
    assert stored.provenance["tagger"] == {"tagger": "colour-fake"}
    assert stored.provenance["parameters"]["threshold"] == 0.7
    assert tagger.prepared == ["red", "green", "blue"]


def test_threshold_is_strict_and_configurable(tmp_path):
    table, pairs, _ = _run(tmp_path, [_folder(tmp_path)], threshold=0.5)
    # at 0.5: a red; b red+green; c red (0.70 > 0.5); d red+blue; e nothing
    assert table.counts() == {"red": 4, "green": 1, "blue": 1}
    with pytest.raises(UserInputError, match="threshold"):
        _run(tmp_path, [_folder(tmp_path)], out="bad", threshold=1.5)


def _tar(tmp_path):
    path = tmp_path / "shard-00000.tar"
    with tarfile.open(path, "w") as archive:
        for name, colour in COLOURS.items():
            for member, data in ((f"0000/{name}.png", _png(colour)), (f"0000/{name}.txt", b"a caption")):
                info = tarfile.TarInfo(member)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        info = tarfile.TarInfo("0000/zz.jpg")
        info.size = len(BROKEN["not_an_image"])
        archive.addfile(info, io.BytesIO(BROKEN["not_an_image"]))
    return path


def test_webdataset_tar_uses_keys_as_sample_ids(tmp_path):
    table, pairs, _ = _run(tmp_path, [_tar(tmp_path)])
    assert table.counts() == EXPECTED_COUNTS
    assert pairs == {(f"0000/{s}", c) for s, c in EXPECTED_POSTINGS}
    assert table.provenance["skipped"] == {"not_an_image": 1}
    assert webdataset_key("a/b/000123.seg.png") == ("a/b/000123", "seg.png")


def test_quoted_globs_and_compressed_tars(tmp_path):
    import gzip

    plain = _tar(tmp_path)
    (tmp_path / "shard-00001.tgz").write_bytes(gzip.compress(plain.read_bytes()))
    shards = plan_shards([str(tmp_path / "shard-*")])
    assert [s.source for s in shards] == [str(plain), str(tmp_path / "shard-00001.tgz")]
    table, pairs, _ = _run(tmp_path, [tmp_path / "shard-00001.tgz"])
    assert table.counts() == EXPECTED_COUNTS
    with pytest.raises(UserInputError, match="matches no file"):
        plan_shards([str(tmp_path / "nothing-*.tar")])


def test_truncated_tar_is_a_counted_skip_not_a_crash(tmp_path):
    data = _tar(tmp_path).read_bytes()
    cut = tmp_path / "cut.tar"
    cut.write_bytes(data[: 5 * 512 + 30])  # a.png, a.txt whole; the tar ends inside b.png's bytes
    table, pairs, _ = _run(tmp_path, [cut])
    assert table.provenance["skipped"] == {"corrupt_tar": 1}
    assert table.provenance["images_tagged"] == 1 and pairs == {("0000/a", "red")}


def test_parquet_with_bytes_and_with_hf_image_structs(tmp_path):
    names = list(COLOURS)
    raw = tmp_path / "raw.parquet"
    pq.write_table(pa.table({"key": names, "jpg": [_png(COLOURS[n]) for n in names]}), raw)
    table, pairs, _ = _run(tmp_path, [raw], out="raw", id_column="key", shard_size=2)
    assert table.counts() == EXPECTED_COUNTS and pairs == EXPECTED_POSTINGS

    structs = tmp_path / "structs.parquet"
    cells = [{"bytes": _png(COLOURS[n]), "path": None} for n in names] + [{"bytes": None, "path": None}]
    pq.write_table(pa.table({"picture": cells, "caption": ["x"] * 6}), structs)
    table, pairs, _ = _run(tmp_path, [structs], out="structs")
    # default ids follow the caption readers: <file>:<row>
    assert pairs == {(f"structs.parquet:{names.index(s)}", c) for s, c in EXPECTED_POSTINGS}
    assert table.provenance["skipped"] == {"missing_image": 1}


@pytest.mark.parametrize("id_column", ["key", None])
def test_sample_ids_join_with_the_text_side(tmp_path, id_column):
    """Count captions and tag images of one parquet into one --out: the ids line up for match."""
    from letitwag.frequency.alignment import matched_table
    from letitwag.frequency.count import count_text

    names = list(COLOURS)
    captions = ["a red car", "red and green", "a red thing", "blue sky", "green grass"]
    corpus = tmp_path / "corpus.parquet"
    pq.write_table(pa.table({"key": names, "caption": captions, "jpg": [_png(COLOURS[n]) for n in names]}), corpus)
    count_text([corpus], CONCEPTS, tmp_path / "out", id_column=id_column, postings=True)
    _run(tmp_path, [corpus], id_column=id_column, image_column="jpg")
    # text: red {a, b, c}, green {b, e}, blue {d}; image: red {a, b, d}, green {b}, blue {d}
    assert matched_table(tmp_path / "out", tmp_path / "out").counts() == {"red": 2, "green": 1, "blue": 1}


def test_hf_dataset_saved_to_disk(tmp_path):
    import datasets

    names = list(COLOURS)
    features = datasets.Features({"image": datasets.Image(), "uid": datasets.Value("string")})
    rows = {"image": [{"bytes": _png(COLOURS[n]), "path": None} for n in names], "uid": names}
    split = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": split, "test": split.select(range(2))}).save_to_disk(str(tmp_path / "hfds"))
    table, pairs, _ = _run(tmp_path, [tmp_path / "hfds"], out="all", id_column="uid")
    assert table.provenance["images_tagged"] == 7  # both splits, like the caption readers
    table, pairs, _ = _run(tmp_path, [tmp_path / "hfds"], out="train", split="train")
    assert table.counts() == EXPECTED_COUNTS
    assert pairs == {(f"hfds/train:{names.index(s)}", c) for s, c in EXPECTED_POSTINGS}
    with pytest.raises(UserInputError, match="no split"):
        plan_shards([str(tmp_path / "hfds")], split="validation")


def test_rerun_resumes_finished_shards_and_writes_identical_files(tmp_path):
    folder = _folder(tmp_path)
    first, _, tagger = _run(tmp_path, [folder], shard_size=2, batch_size=1)
    assert first.provenance["run"]["computed"] == 4 and tagger.calls == 5
    before = (tmp_path / "out" / "image_postings.parquet").read_bytes()
    table_before = pq.read_table(tmp_path / "out" / "image.parquet")

    again, _, tagger = _run(tmp_path, [folder], shard_size=2, batch_size=1)
    assert tagger.calls == 0 and again.provenance["run"]["reused"] == 4

    # lose one shard's completion marker (as after a kill between partial and marker): only it is redone
    (first_shard_marker,) = (tmp_path / "out" / "shards-image").glob("folder-images-*-0.*.done")
    first_shard_marker.unlink()  # the shard of a.png and b.png
    redone, _, tagger = _run(tmp_path, [folder], shard_size=2, batch_size=1)
    assert redone.provenance["run"]["computed"] == 1 and tagger.calls == 2
    assert (tmp_path / "out" / "image_postings.parquet").read_bytes() == before
    assert pq.read_table(tmp_path / "out" / "image.parquet").equals(table_before)

    # a different threshold is a different question: every shard is recomputed
    changed, _, _ = _run(tmp_path, [folder], shard_size=2, batch_size=1, threshold=0.5)
    assert changed.provenance["run"]["computed"] == 4


def test_two_worker_processes_give_identical_outputs(tmp_path):
    folder = _folder(tmp_path)
    _run(tmp_path, [folder], out="one", shard_size=2)
    _run(tmp_path, [folder], out="two", shard_size=2, executor=LocalExecutor(2))
    for name in ("image.parquet", "image_postings.parquet"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()


def test_tagger_with_wrong_output_shape_fails_clearly(tmp_path):
    class Broken(ColourTagger):
        def probabilities(self, batch):
            return np.zeros((len(batch), 2))

    with pytest.raises(ValueError, match="shape"):
        _run(tmp_path, [_folder(tmp_path)], tagger=Broken())


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: p / "missing", "no such image"),
        (lambda p: (p / "x.csv").write_text("a") and p / "x.csv", "unknown image input"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no image files"),
        (lambda p: (p / "bad.tar").write_bytes(b"\x00garbage" * 10) and p / "bad.tar", "not a readable tar"),
    ],
)
def test_bad_inputs_are_one_line_errors(tmp_path, make, message):
    with pytest.raises(UserInputError, match=message) as error:
        plan_shards([str(make(tmp_path))])
    assert "\n" not in str(error.value)


def test_parquet_column_errors(tmp_path):
    path = tmp_path / "captions.parquet"
    pq.write_table(pa.table({"caption": ["a dog"], "n": [1]}), path)
    with pytest.raises(UserInputError, match="no column of image bytes"):
        plan_shards([str(path)])
    with pytest.raises(UserInputError, match="no id column 'key'"):
        plan_shards([str(path)], image_column="caption", id_column="key")


def test_input_broken_after_planning_is_a_one_line_error(tmp_path):
    path = tmp_path / "images.parquet"
    pq.write_table(pa.table({"jpg": [_png((1, 2, 3))] * 4}), path)
    (shard,) = plan_shards([str(path)])
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(UserInputError, match="cannot read rows 0-4") as error:
        list(read_shard(shard))
    assert "\n" not in str(error.value)


def test_decode_reasons():
    assert decode_image(_png((1, 2, 3)))[0].size == (6, 6)
    assert decode_image(b"")[1] == "empty"
    assert decode_image(b"text")[1] == "not_an_image"
    assert decode_image(_truncated_png())[1] == "corrupt_image"
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (480, 640, 3), dtype=np.uint8)).save(buffer, "JPEG")
    assert decode_image(buffer.getvalue())[0].size == (640, 480)
    # DCT-scaled decode: 1/4 gives 160x120, the smallest scale keeping both sides >= 100
    assert decode_image(buffer.getvalue(), draft_size=100)[0].size == (160, 120)
    assert decode_image(_png((1, 2, 3)), draft_size=2)[0].size == (6, 6)  # not a JPEG: full decode


def test_provenance_sidecar_is_json(tmp_path):
    _run(tmp_path, [_folder(tmp_path)])
    sidecar = json.loads((tmp_path / "out" / "image.provenance.json").read_text())
    assert sidecar["format"] == "letitwag.frequency-table/1"
    assert sidecar["sample_ids"]["folder"].startswith("path relative")
