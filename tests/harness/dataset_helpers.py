"""Small datasets written in the test (Pillow images, ClassLabel), in HF Hub layout."""

import io
from pathlib import Path

CLASS_IDS = ["Harriss_Hawk", "A300B4", "eastern_hog-nosed_snake", "Acadian_Flycatcher", "A310", "Affenpinscher"]


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
        colour = (40 + 40 * label, (37 * i) % 255, 220 - 35 * label)
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
