import json

import pytest

from letitwag.concepts import Concept, ConceptList
from letitwag.tables import FrequencyTable

IDS = ["Acadian_Flycatcher", "A300B4", "eastern_hog-nosed_snake", "golden retriever", "Harriss_Hawk", "tench",
       "airplane", "Artic_Tern"]
COUNTS = [0, 3, 40, 50000, 7, 1200, 90000, 15]


@pytest.fixture
def table_path(tmp_path):
    """A small frequency table with two count types of one corpus."""
    concepts = ConceptList(Concept(i) for i in IDS)
    text = FrequencyTable.from_counts(concepts, COUNTS, None, "toycorpus", "text", 1000)
    image = FrequencyTable.from_counts(concepts, [c * 2 for c in COUNTS], None, "toycorpus", "image", 1000)
    import pyarrow as pa

    path = tmp_path / "counts.parquet"
    FrequencyTable(pa.concat_tables([text.table, image.table]), text.provenance).write(path)
    return path


def write_results(path, per_class, model="open_clip:ViT-B-32/toycorpus_e1", dataset="toy/set", class_names=None,
                  top1=None, task="classification"):
    data = {
        "format": "letitwag.results/1",
        "task": task,
        "model": {"spec": model, "name": "ViT-B-32", "pretrained": "toycorpus_e1"},
        "dataset": {"id": dataset, "class_names": class_names or list(per_class)},
        "metrics": {"per_class_accuracy": per_class, **({"top1": top1} if top1 is not None else {})},
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


@pytest.fixture
def results_file():
    """The writer of a minimal letitwag.results/1 file."""
    return write_results
