"""Seeded synthetic CLIP-like embeddings in LAION's released layout, for the kNN scale benchmark.

Why not uniform random unit vectors: in 512 dimensions they have no neighbourhood structure
(every vector is about equally far from every other, cosine ~ 0 +- 0.04), so any approximate
index must scan nearly everything to find the true top 40. Real CLIP embeddings are clustered
(near-duplicates, one concept photographed many times), lie in a narrow cone (any two images
have a cosine around 0.4-0.5) and have a low intrinsic dimension. This generator imitates that:

    latent  = centre[c] + spread[c] * N(0, I_r)          cluster c ~ Zipf-like weights
    x       = cone * mean + basis @ latent + noise * N(0, I_d)
    vector  = x / |x|                                     stored as float16

with ``r`` = ``LATENT_DIM`` (the intrinsic dimension), ``basis`` a random orthonormal d x r
matrix, ``mean`` a random unit vector shared by all (the cone), cluster weights ~ 1/rank^0.5
over ``CLUSTERS`` clusters and per-cluster spreads drawn log-uniformly. Held-out queries come
from the same distribution with another seed. ``describe()`` returns every parameter and the
measured cosine statistics, which the scale benchmark prints beside its results.

Layout (LAION's ``img_emb/img_emb_N.npy`` + ``metadata/metadata_N.parquet``, clip-retrieval's
inference writes the same): shard N's rows are generated from ``(seed, N)`` alone, so shards are
written independently, each atomically, and a rerun skips the finished ones.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

LATENT_DIM = 32
CLUSTERS = 20_000
CONE = 5.5          # length of the shared mean direction against |latent| ~ sqrt(r): two images have cosine ~0.45
NOISE = 0.35        # isotropic noise per dimension, times sqrt(r / d) (keeps the top-40 from being trivial)
SPREAD = (0.15, 0.6)  # log-uniform range of the clusters' spreads in latent space
ZIPF = 0.5


class SyntheticEmbeddings:
    """A fixed CLIP-like distribution (see the module docstring) that samples any shard on demand."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        rng = np.random.default_rng([seed, 0])
        self.dim, self.seed = dim, seed
        self.mean = _unit(rng.standard_normal(dim))
        basis, _ = np.linalg.qr(rng.standard_normal((dim, LATENT_DIM)))
        self.basis = basis.astype(np.float32)
        self.centres = rng.standard_normal((CLUSTERS, LATENT_DIM)).astype(np.float32)
        self.spreads = np.exp(rng.uniform(*np.log(SPREAD), CLUSTERS)).astype(np.float32)
        weights = 1.0 / np.arange(1, CLUSTERS + 1) ** ZIPF
        self.weights = rng.permutation(weights / weights.sum())
        self.noise = NOISE * np.sqrt(LATENT_DIM / dim)

    def sample(self, count: int, stream: int, dtype=np.float32) -> np.ndarray:
        """``count`` unit vectors from random stream ``stream`` (shard number, or -1 for queries)."""
        rng = np.random.default_rng([self.seed, 1, stream + 2])
        out = np.empty((count, self.dim), dtype=dtype)
        for start in range(0, count, 65_536):  # bounded temporaries for million-row shards
            rows = min(65_536, count - start)
            clusters = rng.choice(CLUSTERS, size=rows, p=self.weights)
            latent = self.centres[clusters] + self.spreads[clusters, None] * rng.standard_normal(
                (rows, LATENT_DIM), dtype=np.float32)
            vectors = latent @ self.basis.T
            vectors += (CONE * self.mean).astype(np.float32)
            vectors += self.noise * rng.standard_normal((rows, self.dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            out[start:start + rows] = vectors
        return out

    def describe(self, sample: int = 20_000) -> dict:
        """Parameters and measured cosines: random pairs, and each vector's nearest neighbour in a sample."""
        vectors = self.sample(sample, stream=-2)
        similarity = vectors[:2000] @ vectors.T
        similarity[np.arange(2000), np.arange(2000)] = -1
        pairs = similarity[:, 2000:].ravel()
        return {
            "generator": "benchmarks/_synthetic_embeddings.py", "seed": self.seed, "dim": self.dim,
            "latent_dim": LATENT_DIM, "clusters": CLUSTERS, "cluster_weights": f"1/rank^{ZIPF}",
            "spread_range": list(SPREAD), "cone": CONE, "noise": NOISE,
            "cosine_random_pairs_mean": round(float(pairs.mean()), 3),
            "cosine_nearest_in_20k_mean": round(float(similarity.max(axis=1).mean()), 3),
        }


def uniform_unit_vectors(count: int, dim: int, seed: int) -> np.ndarray:
    """The structureless contrast case: uniform random directions."""
    return _unit(np.random.default_rng([seed, 2]).standard_normal((count, dim), dtype=np.float32))


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def _atomic(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    write(tmp)
    os.replace(tmp, path)


def write_laion_layout(out: Path, count: int, dim: int, shard_size: int, seed: int = 0, progress=None) -> Path:
    """``out/img_emb/img_emb_N.npy`` (float16) + ``out/metadata/metadata_N.parquet``; finished shards are kept."""
    distribution = SyntheticEmbeddings(dim, seed)
    (out / "img_emb").mkdir(parents=True, exist_ok=True)
    (out / "metadata").mkdir(parents=True, exist_ok=True)
    shards = (count + shard_size - 1) // shard_size
    for number in range(shards):
        npy, meta = out / "img_emb" / f"img_emb_{number}.npy", out / "metadata" / f"metadata_{number}.parquet"
        if npy.exists() and meta.exists():
            continue
        start = number * shard_size
        rows = min(shard_size, count - start)
        vectors = distribution.sample(rows, stream=number, dtype=np.float16)
        keys = np.arange(start, start + rows)
        table = pa.table({
            "image_path": pa.array([f"{k:09d}.jpg" for k in keys]),
            "caption": pa.array([f"synthetic caption {k}" for k in keys]),
            "url": pa.array([f"http://images.invalid/{k:09d}.jpg" for k in keys]),
            "LICENSE": pa.array(["?"] * rows),
        })
        _atomic(meta, lambda tmp: pq.write_table(table, tmp))
        _atomic(npy, lambda tmp: np.save(open(tmp, "wb"), vectors))
        if progress:
            progress(number + 1, shards)
    return out
