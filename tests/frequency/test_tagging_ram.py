"""The RAM++ adapter against a stand-in ``ram`` package (the real one and its weights cannot be installed here).

The stand-in mimics the parts of recognize-anything's API the adapter relies on: ``ram_plus(...)``
returns a module whose ``generate_tag_openset`` ends in an ``fc`` layer giving one logit per
class, and ``ram.utils.openset_utils`` builds label embeddings. This checks the adapter's own
plumbing (label embedding installed, probabilities read from ``fc`` through the hook, sigmoid,
shapes, pickling); it says nothing about the real RAM++.
"""

import pickle
import sys
import types

import numpy as np
import pytest
import torch
from PIL import Image

from letitwag.concepts import Concept, ConceptList
from letitwag.frequency.images import build_tagger
from letitwag.frequency.images.prompts import PromptSet
from letitwag.frequency.images.ram_plus import RamPlusTagger

CONCEPTS = ConceptList([Concept("dog"), Concept("hot_dog"), Concept("cat")])
EMBED = 8


class StandInRam(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = torch.nn.Linear(EMBED, 1)
        self.label_embed = torch.nn.Parameter(torch.zeros(1, EMBED))
        self.num_class = 1
        self.class_threshold = torch.ones(1)

    def generate_tag_openset(self, image):
        assert self.label_embed.shape[0] == self.num_class == len(self.tag_list)
        pooled = image.mean(dim=(2, 3))[:, :1]  # [bs, 1]
        features = pooled[:, None, :] * self.label_embed[None]  # [bs, classes, EMBED]
        self.fc(features)  # RAM++ thresholds these logits itself; the adapter reads them via a hook
        return ["" for _ in range(image.shape[0])]


def _embedding(count):
    return torch.arange(count * EMBED, dtype=torch.float32).reshape(count, EMBED) / (count * EMBED)


@pytest.fixture
def stand_in_ram(monkeypatch):
    ram = types.ModuleType("ram")
    models = types.ModuleType("ram.models")
    models.ram_plus = lambda pretrained, image_size, vit: StandInRam()
    utils = types.ModuleType("ram.utils")
    openset = types.ModuleType("ram.utils.openset_utils")
    openset.build_openset_label_embedding = lambda names: (_embedding(len(names)), names)
    openset.build_openset_llm_label_embedding = lambda described: (_embedding(len(described)) * 2, described)
    utils.openset_utils = openset
    for name, module in {"ram": ram, "ram.models": models, "ram.utils": utils, "ram.utils.openset_utils": openset}.items():
        monkeypatch.setitem(sys.modules, name, module)
    return openset


def test_probabilities_are_the_sigmoid_of_the_tagging_head(stand_in_ram, tmp_path):
    checkpoint = tmp_path / "ram_plus_swin_large_14m.pth"
    checkpoint.write_bytes(b"stand-in")
    tagger = build_tagger("ram-plus", str(checkpoint))
    tagger.prepare(CONCEPTS)
    tagger = pickle.loads(pickle.dumps(tagger))  # as a worker receives it
    pictures = [Image.new("RGB", (50, 40), colour) for colour in ((255, 0, 0), (0, 0, 0))]
    batch = [tagger.preprocess(picture) for picture in pictures]
    assert batch[0].shape == (3, 384, 384) and tagger.decode_size == 384
    probabilities = tagger.probabilities(batch)
    assert probabilities.shape == (2, 3)

    model = StandInRam()
    pooled = torch.stack(batch).mean(dim=(2, 3))[:, :1]
    expected = torch.sigmoid(model.fc(pooled[:, None, :] * _embedding(3)[None]).squeeze(-1))
    np.testing.assert_allclose(probabilities, expected.detach().numpy(), rtol=1e-5)
    assert tagger.metadata()["tagger"] == "ram_plus"


def test_descriptions_go_to_the_llm_embedding_builder(stand_in_ram, tmp_path):
    checkpoint = tmp_path / "ram.pth"
    checkpoint.write_bytes(b"stand-in")
    prompts = PromptSet("descriptions.json", descriptions={"dog": ["a barking pet"]})
    tagger = RamPlusTagger(checkpoint, prompts)
    tagger.prepare(CONCEPTS)
    np.testing.assert_allclose(tagger._label_embedding, (_embedding(3) * 2).numpy())


def test_missing_checkpoint_is_a_clear_error(stand_in_ram, tmp_path):
    from letitwag.errors import UserInputError

    with pytest.raises(UserInputError, match="checkpoint not found"):
        build_tagger("ram-plus", str(tmp_path / "nope.pth"))
