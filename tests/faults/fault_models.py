"""``python:fault_models:throttled``: the tiny RANDOM-WEIGHT open_clip, slowed per image batch.

Why: the tiny model encodes a chunk in milliseconds, so a kill could not land reliably between
chunks. The wrapper only sleeps (``LETITWAG_FAULT_DELAY`` seconds per image batch); features are
the tiny open_clip's own (``LETITWAG_FAULT_SPEC``), so a run with delay 0 is the same model.
``LETITWAG_FAULT_TEXT_DELAY`` slows each text batch the same way (retrieval encodes captions in chunks too).
"""

import os
import time


class Throttled:
    def __init__(self) -> None:
        from letitwag.models import load_encoder

        self.inner_spec = os.environ["LETITWAG_FAULT_SPEC"]
        inner = load_encoder(self.inner_spec)
        self.model = inner.model
        self.preprocess = inner.preprocess
        self.tokenizer = inner.tokenizer
        self.logit_scale = inner.logit_scale
        self.delay = float(os.environ.get("LETITWAG_FAULT_DELAY", "0"))
        self.text_delay = float(os.environ.get("LETITWAG_FAULT_TEXT_DELAY", "0"))

    def encode_image(self, pixels):
        time.sleep(self.delay)
        return self.model.encode_image(pixels)

    def encode_text(self, tokens):
        time.sleep(self.text_delay)
        return self.model.encode_text(tokens)

    def metadata(self) -> dict:
        return {"random_weights": True, "plumbing_model": True, "wraps": self.inner_spec}


def throttled() -> Throttled:
    return Throttled()
