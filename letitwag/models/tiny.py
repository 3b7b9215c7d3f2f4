"""Tiny RANDOM-WEIGHT models built offline, for tests and the demo (plumbing only).

Why: no weights can be downloaded here, yet every loading path must be exercised for real.
Each builder writes a model with ``save_pretrained`` / a state dict plus a
``letitwag_model_card.json`` saying it is a random-weight plumbing model, and returns the spec
string that loads it back through ``letitwag.models``. Their scores mean nothing.

The text side uses open_clip's bundled BPE vocabulary everywhere, so tokenisation is real
(transformers' ``CLIPTokenizer`` is built from the same files; ids match open_clip's).
"""

from __future__ import annotations

import gzip
import json
import logging
from pathlib import Path

from letitwag.io import atomic_write_json, atomic_write_text
from letitwag.models.provenance import PLUMBING_CARD

logger = logging.getLogger(__name__)

TINY_OPEN_CLIP_ARCH = "letitwag-tiny-random-clip"
TINY_IMAGE_SIZE = 32
VOCAB_SIZE = 49408
CONTEXT_LENGTH = 77
# open_clip's BPE file starts with a version line; the merges used are lines 1..48894.
_BPE_MERGES = 49152 - 256 - 2

TINY_OPEN_CLIP_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": TINY_IMAGE_SIZE, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": CONTEXT_LENGTH, "vocab_size": VOCAB_SIZE, "width": 64, "heads": 2, "layers": 2},
}


def _write_card(folder: Path, kind: str, seed: int) -> None:
    atomic_write_json(
        folder / PLUMBING_CARD,
        {"plumbing_model": True, "random_weights": True, "kind": kind, "seed": seed,
         "note": "tiny random-weight model built by letitwag.models.tiny for tests; its scores mean nothing"},
    )


def build_tiny_open_clip(folder: str | Path, seed: int = 0, embed_dim: int | None = None) -> str:
    """A tiny open_clip architecture (``ARCH.json`` registered via ``add_model_config``) + safetensors.

    The folder also holds ``open_clip_config.json``, so ``open_clip:local-dir:FOLDER`` works too.
    ``embed_dim`` gives the tiny towers a real model's output width (512 for ViT-B/32, 768 for
    ViT-L/14) where a test or benchmark needs that width; the architecture is then named
    ``letitwag-tiny-random-clip-DIM`` so both widths can be registered in one process.
    """
    import open_clip
    import torch
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    config, arch = TINY_OPEN_CLIP_CONFIG, TINY_OPEN_CLIP_ARCH
    if embed_dim is not None and embed_dim != config["embed_dim"]:
        config, arch = dict(config, embed_dim=embed_dim), f"{arch}-{embed_dim}"
    atomic_write_json(folder / f"{arch}.json", config)
    atomic_write_json(
        folder / "open_clip_config.json",
        {"model_cfg": config,
         "preprocess_cfg": {"mean": list(open_clip.OPENAI_DATASET_MEAN), "std": list(open_clip.OPENAI_DATASET_STD)}},
    )
    open_clip.add_model_config(str(folder))
    torch.manual_seed(seed)
    model = open_clip.create_model(arch, pretrained=None)
    checkpoint = folder / "open_clip_model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(checkpoint))
    _write_card(folder, "open_clip", seed)
    return f"open_clip:{arch}/{checkpoint}"


def write_clip_tokenizer_files(folder: str | Path) -> Path:
    """``vocab.json`` + ``merges.txt`` for transformers' CLIPTokenizer from open_clip's bundled BPE."""
    from open_clip.tokenizer import SimpleTokenizer, default_bpe

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # open_clip names its special tokens differently; renaming keeps their ids (49406, 49407).
    renamed = {"<start_of_text>": "<|startoftext|>", "<end_of_text>": "<|endoftext|>"}
    vocab = {renamed.get(token, token): index for token, index in SimpleTokenizer().encoder.items()}
    atomic_write_text(folder / "vocab.json", json.dumps(vocab))
    with gzip.open(default_bpe(), "rt", encoding="utf-8") as handle:
        lines = handle.read().split("\n")[1 : _BPE_MERGES + 1]
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n" + "\n".join(lines) + "\n")
    return folder


def offline_clip_tokenizer(folder: str | Path):
    from transformers import CLIPTokenizer

    folder = write_clip_tokenizer_files(folder)
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=CONTEXT_LENGTH)


def _tiny_tower_configs(image_size: int = TINY_IMAGE_SIZE) -> tuple[dict, dict]:
    text = {"vocab_size": VOCAB_SIZE, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
            "num_attention_heads": 2, "max_position_embeddings": CONTEXT_LENGTH}
    vision = {"image_size": image_size, "patch_size": 8, "hidden_size": 32, "intermediate_size": 64,
              "num_hidden_layers": 2, "num_attention_heads": 2}
    return text, vision


def build_tiny_transformers_clip(folder: str | Path, seed: int = 0) -> str:
    """A tiny transformers ``CLIPModel`` + ``CLIPProcessor`` saved with ``save_pretrained``."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor

    folder = Path(folder)
    text, vision = _tiny_tower_configs()
    text.update(bos_token_id=49406, eos_token_id=49407, pad_token_id=49407)
    torch.manual_seed(seed)
    model = CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=32))
    image_processor = CLIPImageProcessor(
        size={"shortest_edge": TINY_IMAGE_SIZE}, crop_size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE}
    )
    processor = CLIPProcessor(image_processor=image_processor, tokenizer=offline_clip_tokenizer(folder / "_bpe"))
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    _write_card(folder, "transformers-clip", seed)
    return f"transformers:{folder}"


def build_tiny_siglip(folder: str | Path, seed: int = 0) -> str:
    """A tiny transformers ``SiglipModel`` (sigmoid loss family) with an offline CLIP BPE tokenizer.

    SigLIP's own SentencePiece vocabulary cannot be built offline; the processor therefore
    pairs a ``SiglipImageProcessor`` with the CLIP BPE tokenizer, which exercises the same
    loading code (``AutoModel`` / ``AutoProcessor``) and the SigLIP max-length padding.
    """
    import torch
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel, SiglipProcessor

    folder = Path(folder)
    text, vision = _tiny_tower_configs()
    text.update(pad_token_id=49407, bos_token_id=49406, eos_token_id=49407, max_position_embeddings=16)
    torch.manual_seed(seed)
    model = SiglipModel(SiglipConfig(text_config=text, vision_config=vision))
    image_processor = SiglipImageProcessor(size={"height": TINY_IMAGE_SIZE, "width": TINY_IMAGE_SIZE})
    tokenizer = offline_clip_tokenizer(folder / "_bpe")
    tokenizer.model_max_length = 16
    processor = SiglipProcessor(image_processor=image_processor, tokenizer=tokenizer)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    _write_card(folder, "transformers-siglip", seed)
    return f"transformers:{folder}"


def build_tiny_diffusers(folder: str | Path, seed: int = 0) -> str:
    """A tiny Stable Diffusion pipeline (UNet, VAE, CLIP text encoder, DDIM) making 64x64 images."""
    import torch
    from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    folder = Path(folder)
    text, _ = _tiny_tower_configs()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(CLIPTextConfig(**text, bos_token_id=49406, eos_token_id=49407, pad_token_id=49407))
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, norm_num_groups=8, layers_per_block=1,
        block_out_channels=(8, 16, 16, 16), down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, sample_size=64,
    )
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(16, 32),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=4, norm_num_groups=8,
    )
    pipeline = StableDiffusionPipeline(
        vae=vae, text_encoder=text_encoder, tokenizer=offline_clip_tokenizer(folder / "_bpe"), unet=unet,
        scheduler=DDIMScheduler(steps_offset=1, clip_sample=False), safety_checker=None, feature_extractor=None, requires_safety_checker=False,
    )
    pipeline.save_pretrained(folder)
    _write_card(folder, "diffusers-stable-diffusion", seed)
    return f"diffusers:{folder}"
