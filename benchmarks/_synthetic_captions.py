"""Seeded synthetic LAION-like captions for the frequency benchmark and the agreement tests.

Real LAION captions cannot be downloaded here, so the generator imitates what makes them hard
for a matcher: ~60 characters on average, stock-photo filler vocabulary, bundled concept names
(Zipf-distributed, so a few are frequent and most are rare) written in varied case, as plurals
and possessives, with hyphen/space/underscore variants, punctuation glued to words, numbers,
and a few percent of captions with Unicode (accents, curly quotes, dashes, emoji, CJK, Greek).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from letitwag.concepts import ConceptList
from letitwag.frequency.text.forms import english_lemmas

FILLER = (
    "a an the of in on with and for at by to from photo image picture stock vector illustration "
    "background white black red blue green yellow pink gray brown orange purple gold silver "
    "isolated closeup close up view beautiful vintage old new modern small large big little "
    "cute happy young man woman girl boy people family kids baby portrait outdoor indoor "
    "summer winter spring autumn sunset sunrise night day beach city street house home room "
    "wall art print poster design pattern seamless texture abstract watercolor drawing sketch "
    "logo icon set collection sale free shipping size men women t shirt dress shoes bag "
    "hd wallpaper 4k 2019 2020 2021 1 2 3 10 100 x cm mm inch pcs lot best top quality "
    "premium cheap online shop buy royalty hand made natural wood metal glass plastic paper "
    "is are was it this that his her my our your their who what when where how very"
).split()
PUNCTUATION = [",", ".", "!", "?", " -", " |", ":", ";", " &", " /", "...", " (", ")"]
UNICODE_BITS = ["café", "Zürich", "—", "’s", "“quoted”", "🐶", "猫", "ΣΟΦΙΑ", "İstanbul", "naïve", "½", "élan"]


def _render_concept(rng: random.Random, words: list[str], forms_of) -> str:
    """One mention of a concept: inflected last word, varied case, joiner and possessive."""
    words = list(words)
    roll = rng.random()
    if roll < 0.35:
        forms = forms_of(words[-1])
        if forms:
            words[-1] = rng.choice(forms)
    elif roll < 0.42:
        words[-1] += "s"
    case = rng.random()
    if case < 0.3:
        words = [w.capitalize() for w in words]
    elif case < 0.36:
        words = [w.upper() for w in words]
    joiner = rng.choices([" ", "-", "_", "  "], weights=[85, 9, 3, 3])[0]
    text = joiner.join(words)
    ending = rng.random()
    if ending < 0.08:
        text += "'s"
    elif ending < 0.1:
        text += "s'"
    return text


def _part_pool(concepts: ConceptList, rng: random.Random, n_mentions: int) -> tuple[list[str], np.ndarray]:
    """All caption parts (filler, punctuation, Unicode, concept mentions) and each part's kind."""
    lemmas = english_lemmas()
    forms_cache: dict[str, list[str]] = {}

    def forms_of(word: str) -> list[str]:
        if word not in forms_cache:
            forms_cache[word] = [f for f in lemmas.forms_of(lemmas.lemma(word)) if f.isascii()]
        return forms_cache[word]

    names = [concept.match_form.split(" ") for concept in concepts if concept.match_form]
    weights = 1.0 / np.arange(1, len(names) + 1) ** 0.9
    weights = weights[np.argsort(np.random.default_rng(rng.randrange(2**32)).permutation(len(names)))]
    chosen = rng.choices(names, weights=weights.tolist(), k=n_mentions)
    mentions = [_render_concept(rng, words, forms_of) for words in chosen]
    filler = FILLER + [word.capitalize() for word in FILLER]
    pool = filler + PUNCTUATION + UNICODE_BITS + mentions
    kinds = np.repeat([0, 1, 2, 3], [len(filler), len(PUNCTUATION), len(UNICODE_BITS), len(mentions)])
    return pool, kinds


def generate_captions(
    concepts: ConceptList, n: int, seed: int = 0, unicode_share: float = 0.03, n_mentions: int = 100_000
) -> list[str | None]:
    """``n`` captions; about 0.2% are null or empty, as in real dumps; ``unicode_share`` of
    them (roughly) contain a non-ASCII part.

    Parts are drawn with numpy from a pool of pre-rendered concept mentions and filler words,
    so millions of captions take seconds, not minutes.
    """
    rng = random.Random(seed)
    pool, kinds = _part_pool(concepts, rng, min(n_mentions, max(1000, n)))
    generator = np.random.default_rng(seed)
    by_kind = [np.flatnonzero(kinds == kind) for kind in range(4)]
    mean_parts = 10
    per_part = unicode_share / mean_parts
    kind_share = np.array([0.775, 0.05, per_part, 0.175 - per_part])
    parts_per_caption = generator.integers(4, mean_parts * 2 - 3, size=n)
    total = int(parts_per_caption.sum())
    part_kinds = generator.choice(4, size=total, p=kind_share / kind_share.sum())
    part_index = np.empty(total, dtype=np.int64)
    for kind, members in enumerate(by_kind):
        where = np.flatnonzero(part_kinds == kind)
        part_index[where] = members[generator.integers(0, len(members), size=len(where))]
    bounds = np.concatenate([[0], np.cumsum(parts_per_caption)]).tolist()
    flat = [pool[i] for i in part_index.tolist()]
    special = generator.random(n)
    captions: list[str | None] = []
    for row in range(n):
        if special[row] < 0.001:
            captions.append(None)
        elif special[row] < 0.002:
            captions.append("")
        else:
            text = " ".join(flat[bounds[row] : bounds[row + 1]])
            captions.append(text.replace(" ,", ",").replace(" .", ".").replace(" !", "!"))
    return captions


def write_corpus(
    concepts: ConceptList,
    directory: Path,
    n: int,
    seed: int = 0,
    rows_per_file: int = 1_000_000,
    row_group_size: int = 131_072,
) -> list[Path]:
    """Write (or reuse, when complete) ``n`` captions as parquet files under ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    done = directory / "COMPLETE"
    files = [directory / f"part-{i:05d}.parquet" for i in range(-(-n // rows_per_file))]
    if done.exists() and all(path.exists() for path in files):
        return files
    for index, path in enumerate(files):
        count = min(rows_per_file, n - index * rows_per_file)
        captions = generate_captions(concepts, count, seed=seed * 1_000_003 + index)
        table = pa.table(
            {
                "key": pa.array([f"{index:05d}{row:07d}" for row in range(count)]),
                "caption": pa.array(captions, type=pa.string()),
            }
        )
        temporary = path.with_suffix(".tmp")
        pq.write_table(table, temporary, row_group_size=row_group_size)
        temporary.replace(path)
    done.write_text(f"{n} captions, seed {seed}\n")
    return files
