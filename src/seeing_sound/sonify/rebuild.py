"""``seeing-sound rebuild``: re-render every mixture from metadata + pool and verify checksums."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import numpy as np

from seeing_sound.audio.mix import render_scaled
from seeing_sound.dataset import PairsDataset
from seeing_sound.dataset.audio_files import encode, pcm_sha256, quantize_pcm16, read_pcm16
from seeing_sound.dataset.paths import UnsafePathError, safe_join
from seeing_sound.engine import atomic_write, command_run
from seeing_sound.errors import SeeingSoundError

log = logging.getLogger(__name__)


@dataclass
class RebuildReport:
    pairs: int = 0
    matched: int = 0
    mismatched: list[str] = field(default_factory=list)  # pair ids whose audio differs
    errors: dict[str, list[str]] = field(default_factory=dict)  # reason -> pair ids
    written: int = 0  # files written under ``out`` (new, or replaced with force)
    kept: int = 0  # files already under ``out`` with exactly the rendered samples

    @property
    def ok(self) -> bool:
        return not self.mismatched and not self.errors

    def summary(self) -> str:
        lines = [f"pairs       {self.pairs}", f"identical   {self.matched}", f"mismatched  {len(self.mismatched)}"]
        lines += [f"  {p}" for p in self.mismatched[:20]]
        if self.written or self.kept:
            lines.append(f"written     {self.written} (kept {self.kept} stored files with the same samples)")
        for reason, ids in sorted(self.errors.items()):
            lines.append(f"error       {reason}: {len(ids)} ({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})")
        return "\n".join(lines)


def rebuild(
    dataset: str | Path,
    pool: str | Path,
    out: str | Path | None = None,
    *,
    force: bool = False,
    progress: bool = True,
) -> RebuildReport:
    """Render each pair's recipe from ``pool``; compare with the recorded ``mixture_sha256``.

    Writes the rebuilt audio under ``out`` (same relative paths) when given. A file already at
    a target path is never replaced by different samples unless ``force`` (reason
    ``stored_differs``; the stored file is kept); one with the same samples is left as it is.
    ``out`` may be the dataset's own folder only with ``force``. A recipe whose chunk no longer
    matches the pool (other source at that id), or whose audio path escapes the output root or
    names a folder, is reported as an error and never read or written; a pair that fails to
    write is recorded (``write_failed``) and the rest go on. Use :func:`verify_dataset` to
    check the stored files themselves.
    """
    from tqdm.auto import tqdm

    from seeing_sound.pool import AudioPool

    ds = PairsDataset.open(dataset)
    if out is not None and Path(out).resolve() == ds.root.resolve() and not force:
        raise SeeingSoundError(
            f"out {out} is the dataset's own folder: rebuilt audio would replace its stored files; "
            "write elsewhere, or pass force=True to replace files whose samples differ"
        )
    with command_run("rebuild", out if out is not None else dataset, inputs={"pool": pool}, lock=out is not None):
        audio_pool = AudioPool.open(pool)
        sources = audio_pool.manifest.column("source").to_pylist()
        fmt = ds.card.get("audio_format", "flac")
        report = RebuildReport(pairs=len(ds))
        out_root = Path(out).resolve() if out is not None else None
        rows = ds.metadata.to_pylist()
        # A path that is another pair's folder ("audio", ".") is no file to write: it would block the others.
        folders = {
            str(p) for r in rows if isinstance(r["audio_path"], str) for p in PurePosixPath(r["audio_path"]).parents
        }
        for row in tqdm(rows, desc="rebuild", unit="pair", disable=not progress):
            pid = row["pair_id"]
            try:
                target = safe_join(out, row["audio_path"]) if out is not None else None
            except UnsafePathError:
                report.errors.setdefault("unsafe_path", []).append(pid)
                continue
            if target is not None and (target == out_root or target.is_dir() or row["audio_path"] in folders):
                report.errors.setdefault("bad_audio_path", []).append(pid)  # "." or a folder: not a file to write
                continue
            comps = row["components"] or []
            ids = [c["chunk_id"] for c in comps]
            if not comps or any(i is None or not 0 <= i < len(audio_pool) for i in ids):
                report.errors.setdefault("chunk_not_in_pool", []).append(pid)
                continue
            if any(
                c["chunk_source"] is not None and sources[i] != c["chunk_source"]
                for c, i in zip(comps, ids, strict=True)
            ):
                report.errors.setdefault("pool_differs", []).append(pid)
                continue
            mix = render_scaled(
                *audio_pool.pcm_rows(ids), np.array([c["gain_db"] for c in comps]), row["mixture_gain_db"] or 0.0
            )
            pcm = quantize_pcm16(mix)
            digest = pcm_sha256(pcm)
            if digest == row["mixture_sha256"]:
                report.matched += 1
            else:
                report.mismatched.append(pid)
            if target is not None:
                reason = _write(target, pcm, digest, audio_pool.sample_rate, fmt, force, report)
                if reason is not None:
                    report.errors.setdefault(reason, []).append(pid)
        if report.mismatched or report.errors:
            log.warning(
                "rebuild: %d mismatched, %d errors", len(report.mismatched), sum(map(len, report.errors.values()))
            )
        return report


def _write(target: Path, pcm: np.ndarray, digest: str, rate: int, fmt: str, force: bool, report) -> str | None:
    """Write one rebuilt file unless a different one is stored there; the error reason or None."""
    if target.exists():
        try:
            stored = pcm_sha256(read_pcm16(target)[0])
        except Exception:  # unreadable stored file: differs from what we rendered
            stored = None
        if stored == digest:
            report.kept += 1
            return None
        if not force:
            return "stored_differs"
    try:
        with atomic_write(target) as fh:
            fh.write(encode(pcm, rate, fmt))
    except OSError as exc:
        log.warning("rebuild: cannot write %s: %s", target, exc.strerror or exc)
        return "write_failed"
    report.written += 1
    return None
