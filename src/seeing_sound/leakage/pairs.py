"""Which training items and benchmark items are near duplicates: the scoring behind ``leakage``.

Images by perceptual-hash Hamming distance and CLIP cosine; audio by landmark fingerprints
(:mod:`seeing_sound.leakage.fingerprint`). Pure functions of the features the stage computed.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from seeing_sound.leakage import fingerprint as fp
from seeing_sound.leakage.config import LeakageConfig


def hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Bit distances between packed 64-bit hashes: uint8 (n, 8) x (m, 8) -> int (n, m)."""
    ua = np.ascontiguousarray(a).view(np.uint64).reshape(-1)
    ub = np.ascontiguousarray(b).view(np.uint64).reshape(-1)
    return np.bitwise_count(ua[:, None] ^ ub[None, :]).astype(np.int64)


def image_pairs(
    bench: dict[str, np.ndarray], train: dict[str, np.ndarray], cfg: LeakageConfig, block: int = 4096
) -> list[dict[str, Any]]:
    """Flagged (bench frame, training image) pairs, plus each frame's closest training image (flagged or not).

    Closest = highest CLIP cosine when CLIP is computed, else smallest Hamming distance.
    """
    bi, ti = np.flatnonzero(bench["ok"]), np.flatnonzero(train["ok"])
    if not bi.size or not ti.size:
        return []
    use_clip = "clip" in bench and "clip" in train and cfg.use_clip
    clip_flags = use_clip and cfg.image_method in ("both", "clip")
    phash_flags = cfg.image_method in ("both", "phash")
    bh = bench["phash"][bi]
    bc = bench["clip"][bi].astype(np.float64) if use_clip else None
    best_j = np.zeros(bi.size, np.int64)
    best_v = np.full(bi.size, -np.inf)
    flagged: list[tuple[int, int]] = []
    for s in range(0, ti.size, block):
        tj = ti[s : s + block]
        dist = hamming(bh, train["phash"][tj])
        cos = bc @ train["clip"][tj].astype(np.float64).T if bc is not None else None
        rank = cos if cos is not None else -dist.astype(np.float64)
        j = np.argmax(rank, axis=1)
        v = rank[np.arange(bi.size), j]
        better = v > best_v
        best_j[better], best_v[better] = tj[j[better]], v[better]
        hit = np.zeros(dist.shape, bool)
        if phash_flags:
            hit |= dist <= cfg.phash_distance
        if clip_flags and cos is not None:
            hit |= cos >= cfg.clip_threshold
        hq, ht = np.nonzero(hit)
        flagged += [(int(bi[a]), int(tj[b])) for a, b in zip(hq, ht, strict=True)]
    pairs = set(flagged)
    pairs |= {(int(bi[k]), int(best_j[k])) for k in range(bi.size)}
    rows = []
    for b, t in sorted(pairs):
        d = int(hamming(bench["phash"][b : b + 1], train["phash"][t : t + 1])[0, 0])
        c = float(bench["clip"][b].astype(np.float64) @ train["clip"][t].astype(np.float64)) if use_clip else None
        by = [
            k
            for k, hit in (
                ("clip", clip_flags and c is not None and c >= cfg.clip_threshold),
                ("phash", phash_flags and d <= cfg.phash_distance),
            )
            if hit
        ]
        rows.append(
            {
                "bench_item": str(bench["keys"][b]),
                "train_image": str(train["keys"][t]),
                "clip_cosine": c,
                "phash_distance": d,
                "flagged": bool(by),
                "flagged_by": "+".join(by),
            }
        )
    return rows


def _fingerprints(feats: dict[str, np.ndarray]) -> list[fp.Fingerprint]:
    ends = np.cumsum(feats["counts"])
    starts = ends - feats["counts"]
    return [
        fp.Fingerprint(feats["hashes"][a:b], feats["times"][a:b], int(n))
        for a, b, n in zip(starts, ends, feats["frames"], strict=True)
    ]


def audio_pairs(bench: dict[str, np.ndarray], train: dict[str, np.ndarray], cfg: LeakageConfig) -> list[dict]:
    """Flagged (bench track, training clip) pairs, plus each track's best-voted training clip (flagged or not)."""
    refs = _fingerprints(train)
    index = fp.FingerprintIndex(
        [r if ok else fp.Fingerprint(r.hashes[:0], r.times[:0], 0) for r, ok in zip(refs, train["ok"], strict=True)]
    )
    rows = []
    for q, (query, ok) in enumerate(zip(_fingerprints(bench), bench["ok"], strict=True)):
        if not ok:
            continue
        matches = fp.match(query, index, query_id=q, min_votes=2)
        for rank, m in enumerate(matches):
            hit = m.votes >= cfg.min_votes and m.concentration >= cfg.min_concentration
            if not hit and rank > 0:
                continue
            rows.append(
                {
                    "bench_item": str(bench["keys"][q]),
                    "train_audio": str(train["keys"][m.ref]),
                    "votes": m.votes,
                    "concentration": round(m.concentration, 6),
                    "ratio": round(m.ratio, 6),
                    "bench_hashes": len(query),
                    "train_hashes": int(train["counts"][m.ref]),
                    "offset_s": round(m.offset_s, 4),
                    "flagged": hit,
                }
            )
    return rows


# --- entry point -------------------------------------------------------------------------------
