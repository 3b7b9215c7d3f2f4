"""RAM++ (Recognize Anything Plus) as a tagger: the paper's image-side model, when installed.

Used only when the ``ram`` package (github.com/xinyu1205/recognize-anything) is importable
and the user has a checkpoint (``ram_plus_swin_large_14m.pth``); neither can be fetched here,
so nothing in letitwag depends on it. Following the paper's setup: open-set tagging with one
label embedding per concept (built by ``ram``'s own open-set utilities from LLM descriptions
when ``--prompts`` is a description file, else from its template ensemble), 384 px inputs,
and the per-concept probability = sigmoid of the tagging head's logit; the runner applies the
threshold (> 0.7 in the paper). The probabilities are read with a forward hook on the tagging
head's final ``fc`` layer, so ``ram``'s own forward code runs unchanged.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from letitwag.concepts import ConceptList
from letitwag.errors import UserInputError
from letitwag.frequency.images.prompts import PromptSet

logger = logging.getLogger(__name__)

RAM_INSTALL_HINT = (
    "the RAM++ tagger needs the `ram` package (pip install git+https://github.com/xinyu1205/recognize-anything) "
    "and a checkpoint such as ram_plus_swin_large_14m.pth; or use the default --tagger zero-shot"
)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def import_ram():
    """The ``ram`` package, or a one-line ``UserInputError`` saying how to get it."""
    try:
        import ram  # noqa: F401
        from ram.models import ram_plus
        from ram.utils import openset_utils
    except ImportError:
        raise UserInputError(RAM_INSTALL_HINT) from None
    return ram_plus, openset_utils


class RamPlusTagger:
    def __init__(
        self,
        checkpoint: str | Path,
        prompts: PromptSet | None = None,
        image_size: int = 384,
        vit: str = "swin_l",
        device: str = "cpu",
    ) -> None:
        import_ram()
        self.checkpoint = Path(checkpoint).expanduser()
        if not self.checkpoint.is_file():
            raise UserInputError(f"{self.checkpoint}: RAM++ checkpoint not found; pass --model PATH_TO_ram_plus.pth")
        self.prompts = prompts
        self.image_size = image_size
        self.vit = vit
        self.device = device
        self.decode_size = image_size
        self._label_embedding: np.ndarray | None = None
        self._concept_ids: list[str] = []
        self._model = None
        self._transform = None
        self._captured: list = []

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.update(_model=None, _transform=None, _captured=[])
        return state

    def prepare(self, concepts: ConceptList) -> None:
        _, openset_utils = import_ram()
        self._concept_ids = concepts.ids
        if self.prompts is not None and self.prompts.descriptions:
            described = [{c.id: self.prompts.texts_for(c)} for c in concepts]
            embedding, _ = openset_utils.build_openset_llm_label_embedding(described)
        else:
            embedding, _ = openset_utils.build_openset_label_embedding([c.name for c in concepts])
        self._label_embedding = embedding.float().cpu().numpy()

    def _load(self):
        import torch
        from torchvision import transforms

        ram_plus, _ = import_ram()
        model = ram_plus(pretrained=str(self.checkpoint), image_size=self.image_size, vit=self.vit)
        count = len(self._concept_ids)
        model.tag_list = np.array(self._concept_ids)
        model.label_embed = torch.nn.Parameter(torch.from_numpy(self._label_embedding))
        model.num_class = count
        # RAM++ thresholds inside its forward; we read raw probabilities and threshold in the runner.
        model.class_threshold = torch.ones(count)
        model.fc.register_forward_hook(lambda _module, _inputs, output: self._captured.append(output))
        self._model = model.eval().to(self.device)
        self._transform = transforms.Compose([
            transforms.Resize((self.image_size, self.image_size)),
            transforms.ToTensor(),
            transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD),
        ])

    def preprocess(self, image: Any) -> Any:
        if self._transform is None:
            self._load()
        return self._transform(image)

    def probabilities(self, batch: Sequence[Any]) -> np.ndarray:
        import torch

        if self._model is None:
            self._load()
        self._captured.clear()
        with torch.inference_mode():
            self._model.generate_tag_openset(torch.stack(list(batch)).to(self.device))
            if not self._captured:
                raise RuntimeError("RAM++ forward did not reach its fc layer; unsupported `ram` version")
            logits = self._captured[-1].squeeze(-1)
            return torch.sigmoid(logits.float()).cpu().numpy()

    def metadata(self) -> dict:
        return {
            "tagger": "ram_plus",
            "model": {"checkpoint": str(self.checkpoint), "vit": self.vit, "image_size": self.image_size},
            "prompts": {"source": self.prompts.source if self.prompts else "ram template ensemble",
                        "sha256": self.prompts.digest() if self.prompts else None},
            "calibration": "sigmoid of RAM++'s tagging-head logit (as the paper)",
        }
