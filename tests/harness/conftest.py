import io
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

CLASS_IDS = ["Harriss_Hawk", "A300B4", "eastern_hog-nosed_snake"]


def png(colour, size=(24, 20)) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def make_dataset(rows: int = 12, corrupt_rows=(), with_label=True):
    """A small dataset with an Image and a ClassLabel column (Pillow images, varied colours)."""
    import datasets

    images, labels = [], []
    for i in range(rows):
        label = i % len(CLASS_IDS)
        colour = (40 + 70 * label, (37 * i) % 255, 200 - 60 * label)
        data = b"this is not an image" if i in corrupt_rows else png(colour, (20 + i, 18 + label))
        images.append({"bytes": data, "path": None})
        labels.append(label)
    columns = {"picture": images, "concept": labels, "note": [f"row {i}" for i in range(rows)]}
    features = {"picture": datasets.Image(), "concept": datasets.ClassLabel(names=CLASS_IDS), "note": datasets.Value("string")}
    if not with_label:
        columns.pop("concept")
        features.pop("concept")
    return datasets.Dataset.from_dict(columns, features=datasets.Features(features))


def write_hub_layout(dataset, folder: Path, split: str = "test", shards: int = 2) -> Path:
    """Parquet shards under data/ as the HF Hub stores them."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    for shard in range(shards):
        part = dataset.shard(num_shards=shards, index=shard, contiguous=True)
        part.to_parquet(str(folder / "data" / f"{split}-{shard:05d}-of-{shards:05d}.parquet"))
    return folder


@pytest.fixture(scope="session")
def tiny_open_clip(tmp_path_factory):
    from letitwag.models.tiny import build_tiny_open_clip

    return build_tiny_open_clip(tmp_path_factory.mktemp("tiny") / "open_clip")


@pytest.fixture(scope="session")
def hub_dataset(tmp_path_factory):
    return write_hub_layout(make_dataset(12, corrupt_rows=(5,)), tmp_path_factory.mktemp("ds") / "hub")


@pytest.fixture(scope="session", autouse=True)
def one_torch_thread():
    """The test machine is shared by many processes: one intra-op thread avoids spin-wait slowdowns."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
