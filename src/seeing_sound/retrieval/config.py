"""Settings of the retrieve stage (Algorithm 1 with real encoders): one field each."""

from __future__ import annotations

from dataclasses import dataclass

from seeing_sound.builders import RETRIEVAL_ENCODERS as ENCODERS
from seeing_sound.config import Config, option
from seeing_sound.retrieval.search import ENGINES

# The paper does not give k. 100 keeps the candidate set inside one sound class of a
# 500K-chunk pool (AudioSet/FSD50K/BBC classes hold hundreds to thousands of chunks),
# while leaving room for SSR to spread usage over tens of near-equal matches; it costs
# no more search time than k = 10. See docs/retrieval.md, "Choosing topk".
DEFAULT_TOPK = 100
INDEX_KINDS = ("exact", "ivf", "hnsw")


@dataclass(frozen=True)
class RetrieveConfig(Config):
    """How each concept finds its chunk: encoder, Algorithm 1's k and SSR, the seed, the index."""

    encoder: str = option(
        "clap", "query encoder; the pool must be embedded with the same one (paper: 3.3, CLAP)", choices=ENCODERS
    )
    model: str | None = option(
        None,
        "hub id or local path of the encoder model (ours: the paper cites LAION-CLAP, no checkpoint)",
        default_text="laion/clap-htsat-unfused for clap, sentence-transformers/all-MiniLM-L6-v2 for text",
    )
    topk: int = option(
        DEFAULT_TOPK, "k of the threshold mean(topk(t)) (ours: the paper gives no k, see docs/retrieval.md)", min=1
    )
    ssr: bool = option(True, "signed square root of the cosine scores; off: the ablation (paper: Alg. 1)")
    seed: int = option(0, "global seed; each concept's choice is seeded from (seed, image_id, concept_index) (ours)")
    index_kind: str = option(
        "exact",
        "exact search, or an approximate faiss index for pools beyond ~10M chunks (paper: Alg. 1, exact)",
        choices=INDEX_KINDS,
    )
    engine: str = option(
        "auto",
        "exact search engine; changes speed only, never the result (auto: the bf16 screen where torch has fast "
        "bf16 matmuls (AMX/AVX512-BF16, CUDA) and the pool has >= 16,384 rows, else faiss if installed) (ours)",
        choices=ENGINES,
        fingerprint=False,
    )
    exclude_chunks: str | None = option(
        None,
        "file of pool chunk ids never to retrieve, one a line (leakage's exclude_chunks.txt); they are taken "
        "out of the pool before the top-k search. Its ids' sha256, not its path, is in the fingerprint "
        "(ours: leakage lists are opt-in)",
        fingerprint=False,
        default_text="none",
    )
    fp16: bool = option(
        False, "half-precision query encoder, GPU; its embeddings differ from fp32 ones (ours: off, exact fp32)"
    )
    device: str = option("auto", "auto (CUDA if available), cpu or cuda[:N] (ours)", fingerprint=False)
    search_device: str | None = option(
        None,
        "device of the bf16/torch search engines: auto, cpu or cuda[:N] (ours)",
        fingerprint=False,
        default_text="cpu",
    )
    batch_size: int | None = option(
        None, "encoder batch size (ours)", min=1, fingerprint=False, default_text="the encoder's"
    )
    shard_rows: int = option(50_000, "concept rows per shard (ours)", min=1, fingerprint=False)
    stats: bool = option(
        False, "report usage diversity: unique chunks, top-10 most used, entropy (ours)", fingerprint=False
    )
