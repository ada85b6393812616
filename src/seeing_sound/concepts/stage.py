"""The concepts stage: one shard of images -> caption, silent-image filter, sounding concepts,
and (when ``grounding`` names a CLIP) the grounding and depiction checks on the same decoded images.

Per shard it writes ``concepts/shard-N.parquet`` (one row per kept concept) and
``images/shard-N.parquet`` (one row per image, including filtered and failed ones, with the
concepts the checks dropped, so nothing is silently lost). Images are decoded in small chunks so
memory stays flat however big a shard is.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from seeing_sound.concepts.backends import VLMRequest, get_backend
from seeing_sound.concepts.config import ConceptsConfig
from seeing_sound.concepts.filter import match_filter_word
from seeing_sound.concepts.images import ImageRef, LoadedImage, load_image
from seeing_sound.concepts.parse import concepts_from_items, parse_concepts
from seeing_sound.engine import ShardStats, ShardTask, Stage, shard_name
from seeing_sound.grounding import (
    Grounder,
    clip_weights_digest,
    fill_template,
    grounding_scores,
    image_depiction_scores,
    is_depiction,
    is_ungrounded,
    reference_mask,
    stored_score,
)

log = logging.getLogger(__name__)

DECODE_CHUNK = 64  # images decoded and sent to the VLMs at a time (bounds memory, not batching)

FAILURE_TYPE = pa.struct(
    [
        ("model", pa.string()),
        ("task", pa.string()),
        ("reason", pa.string()),
        ("detail", pa.string()),
        ("raw_text", pa.string()),
    ]
)
DROPPED_TYPE = pa.struct(
    [
        ("model", pa.string()),
        ("concept_index", pa.int32()),
        ("object", pa.string()),
        ("sound", pa.string()),
        ("concept", pa.string()),
        ("grounding", pa.float32()),
        ("reason", pa.string()),  # "ungrounded" or "depiction"
    ]
)
#: image-level filter reasons of the CLIP checks (recorded in ``filter_word`` like the silent-image filter's words)
UNGROUNDED, DEPICTION = "ungrounded", "depiction"
_CONCEPTS_FIELDS: list[tuple[str, pa.DataType]] = [
    ("image_id", pa.string()),
    ("model", pa.string()),
    ("concept_index", pa.int32()),  # 0.. per image across all models, in the order of vlms
    ("model_index", pa.int32()),  # position of the producing back end in vlms
    ("item_index", pa.int32()),  # position within that model's answer
    ("object", pa.string()),  # null when the item names no separate object
    ("sound", pa.string()),
    ("concept", pa.string()),  # the text to embed: "object: sound" or the sound alone
    ("raw_text", pa.string()),  # the model's whole answer, unparsed
    ("prompt", pa.string()),
    ("grounding", pa.float32()),  # CLIP grounding of the object, 0..1; null when off or no object
]
CONCEPTS_SCHEMA = pa.schema(_CONCEPTS_FIELDS)
_IMAGES_FIELDS: list[tuple[str, pa.DataType]] = [
    ("image_id", pa.string()),
    ("root_index", pa.int32()),
    ("root", pa.string()),  # absolute folder the path is relative to
    ("path", pa.string()),
    ("sha256", pa.string()),
    ("width", pa.int32()),  # after EXIF orientation
    ("height", pa.int32()),
    ("caption", pa.string()),
    ("caption_model", pa.string()),
    ("caption_prompt", pa.string()),
    ("filtered", pa.bool_()),
    ("filter_word", pa.string()),
    ("error", pa.string()),  # null, or why the image has no concepts ("truncated", "concepts:unparseable", ...)
    ("error_detail", pa.string()),
    ("n_concepts", pa.int32()),
    ("failures", pa.list_(FAILURE_TYPE)),  # every failed request/parse, also when another model succeeded
    ("depiction", pa.string()),  # the likeliest depiction prompt when the image was dropped as one
    ("depiction_score", pa.float32()),  # CLIP's probability on the depiction prompts; null when off
    ("dropped_concepts", pa.list_(DROPPED_TYPE)),  # concepts the grounding/depiction checks removed
]
IMAGES_SCHEMA = pa.schema(_IMAGES_FIELDS)


def plan_concepts(refs: Sequence[tuple[str, int, str]], shard_size: int) -> list[ShardTask]:
    """Shards of ``shard_size`` image refs ``(image_id, root_index, relative path)``, in order.

    Each task carries only its own refs, so dispatching a shard costs the same at 1K or 1M images.
    """
    starts = range(0, len(refs), shard_size)
    return [ShardTask(index=i, items=tuple(refs[s : s + shard_size])) for i, s in enumerate(starts)]


@dataclass
class ConceptsStage(Stage):
    """Settings of one concepts run (see :func:`seeing_sound.concepts.run_concepts`): config only.

    The images travel in the tasks (:func:`plan_concepts`); :meth:`setup` builds the back ends
    (a transformers VLM loads here, once per worker).
    """

    roots: tuple[str, ...]
    config: ConceptsConfig
    sidecar_sha256: tuple[str, ...] = field(default=())
    #: digest of the grounding CLIP's weights (:func:`~seeing_sound.grounding.clip_weights_digest`);
    #: worked out from ``config.grounding`` when the stage is built without it, None when grounding is off
    grounding_sha256: str | None = None

    name = "concepts"

    def __post_init__(self) -> None:
        if self.config.grounding is not None and self.grounding_sha256 is None:
            self.grounding_sha256 = clip_weights_digest(self.config.grounding)

    def setup(self) -> None:
        self.backends = [get_backend(spec) for spec in self.config.vlms]
        cfg = self.config
        self.grounder = (
            Grounder(cfg.grounding, device=grounding_device(cfg), batch_size=cfg.grounding_batch_size)
            if cfg.grounding is not None
            else None
        )

    def outputs(self, index: int) -> list[str]:
        return [f"concepts/{shard_name(index)}.parquet", f"images/{shard_name(index)}.parquet"]

    def fingerprint(self) -> dict:
        # Only what changes the output; batch size, concurrency, timeouts and URLs may change on resume.
        fp = {"roots": list(self.roots), **self.config.fingerprint(), "sidecar_sha256": list(self.sidecar_sha256)}
        if "grounding" in fp:
            # the CLIP is its weights, not where they lie: new weights in the same folder are another
            # run, the same weights moved are not (the card keeps the name or path for people)
            settings = {k: v for k, v in fp["grounding"].items() if k != "model"}
            fp["grounding"] = {"model_sha256": self.grounding_sha256, **settings}
        return fp

    def process(self, task: ShardTask, scratch: Path) -> ShardStats:
        self.ensure_setup()
        images, concepts = [], []
        for start in range(0, len(task.items), DECODE_CHUNK):
            chunk_images, chunk_concepts = self._process_chunk(task.items[start : start + DECODE_CHUNK])
            images.extend(chunk_images)
            concepts.extend(chunk_concepts)
        for rel, rows, schema in zip(
            self.outputs(task.index), (concepts, images), (CONCEPTS_SCHEMA, IMAGES_SCHEMA), strict=True
        ):
            (scratch / rel).parent.mkdir(parents=True, exist_ok=True)
            pq.write_table(pa.Table.from_pylist(rows, schema=schema), scratch / rel, compression="zstd")
        return _shard_stats(task.index, images, concepts)

    def _process_chunk(self, items) -> tuple[list[dict], list[dict]]:
        cfg = self.config
        loaded = [
            load_image(Path(self.roots[ri]), ImageRef(iid, ri, rel), max_side=cfg.max_side, max_pixels=cfg.max_pixels)
            for iid, ri, rel in items
        ]
        records = [self._image_record(img) for img in loaded]
        todo = [(img, rec) for img, rec in zip(loaded, records, strict=True) if rec["error"] is None]
        if self.config.captions and todo:
            todo = self._caption_and_filter(todo)
        concept_rows: list[dict] = []
        for model_index in range(len(self.config.vlms)):
            backend = self.backends[model_index]
            if not backend.provides_concepts or not todo:
                continue
            requests = [VLMRequest(img.ref.image_id, img.ref.path, img.image, cfg.concept_prompt) for img, _ in todo]
            for (_img, rec), gens in zip(todo, backend.generate(requests, "concepts"), strict=True):
                for gen in gens:
                    concept_rows.extend(self._concept_rows(rec, model_index, gen))
        if self.grounder is not None and concept_rows:
            concept_rows = self._ground(todo, concept_rows)
        for img, rec in todo:
            img.image = None  # free pixels as soon as the chunk is done
            if rec["n_concepts"] == 0 and not rec["filtered"]:
                first = next((f for f in rec["failures"] if f["task"] == "concepts"), None)
                rec["error"] = f"concepts:{first['reason']}" if first else "concepts:none"
                rec["error_detail"] = first["detail"] if first else "no back end returned concepts"
        return records, concept_rows

    def _image_record(self, img: LoadedImage) -> dict:
        ref, prompt = img.ref, self.config.caption_prompt if self.config.captions else None
        return {
            "image_id": ref.image_id, "root_index": ref.root_index, "root": self.roots[ref.root_index],
            "path": ref.path, "sha256": img.sha256, "width": img.width, "height": img.height,
            "caption": None, "caption_model": None, "caption_prompt": prompt,
            "filtered": False, "filter_word": None, "error": img.error, "error_detail": img.detail,
            "n_concepts": 0, "failures": [], "depiction": None, "depiction_score": None, "dropped_concepts": [],
        }  # fmt: skip

    def _caption_and_filter(self, todo):
        cfg = self.config
        requests = [VLMRequest(img.ref.image_id, img.ref.path, img.image, cfg.caption_prompt) for img, _ in todo]
        keep = []
        captioner = self.backends[cfg.caption_vlm]
        for (img, rec), gens in zip(todo, captioner.generate(requests, "caption"), strict=True):
            gen = gens[0]
            if gen.error is not None or not (gen.text or "").strip():
                reason = gen.error or "empty-output"
                rec["failures"].append(_failure(gen.model, "caption", reason, gen.detail, gen.text))
                if self.config.words is not None:  # cannot tell whether the image is silent: skip it
                    rec["error"], rec["error_detail"] = f"caption:{reason}", gen.detail
                    continue
            else:
                rec["caption"], rec["caption_model"] = (gen.text or "").strip(), gen.model
                word = match_filter_word(rec["caption"], self.config.words) if self.config.words is not None else None
                if word is not None:
                    rec["filtered"], rec["filter_word"] = True, word
                    img.image = None
                    continue
            keep.append((img, rec))
        return keep

    def _concept_rows(self, rec: dict, model_index: int, gen) -> list[dict]:
        if gen.error is not None:
            rec["failures"].append(_failure(gen.model, "concepts", gen.error, gen.detail, gen.text))
            return []
        parsed = (
            concepts_from_items(list(gen.items), self.config.max_concepts)
            if gen.items is not None
            else parse_concepts(gen.text, self.config.max_concepts)
        )
        if not parsed.ok:
            rec["failures"].append(
                _failure(gen.model, "concepts", parsed.error, "could not find concepts in the answer", gen.text)
            )
            return []
        rows = []
        for item_index, c in enumerate(parsed.concepts):
            rows.append({
                "image_id": rec["image_id"], "model": gen.model, "concept_index": rec["n_concepts"],
                "model_index": model_index, "item_index": item_index, "object": c.object, "sound": c.sound,
                "concept": c.text, "raw_text": gen.text, "prompt": self.config.concept_prompt, "grounding": None,
            })  # fmt: skip
            rec["n_concepts"] += 1
        return rows

    def _ground(self, todo, rows: list[dict]) -> list[dict]:
        """Score every concept's object on its (still decoded) image; drop depictions and the ungrounded.

        One CLIP pass per image and per distinct prompt; returns the kept rows (their ``grounding``
        set) and records the dropped ones in their image's ``dropped_concepts``.
        """
        cfg, grounder = self.config, self.grounder
        assert grounder is not None  # setup built it: grounding is on
        by_id = {rec["image_id"]: (img, rec) for img, rec in todo}
        ids = list(dict.fromkeys(r["image_id"] for r in rows))
        pos = {iid: i for i, iid in enumerate(ids)}
        image_emb = grounder.embed_images([by_id[iid][0].image for iid in ids])  # (I, D)
        scale = grounder.logit_scale
        refs = [fill_template(cfg.photo_prompt, r) for r in cfg.grounding_references]
        ref_emb = grounder.embed_texts(refs)  # (R, D)
        with_obj = [i for i, r in enumerate(rows) if r["object"]]
        if with_obj:
            objs = [rows[i]["object"] for i in with_obj]
            img_of = np.array([pos[rows[i]["image_id"]] for i in with_obj])
            obj_emb = grounder.embed_texts([fill_template(cfg.photo_prompt, o) for o in objs])  # (N, D)
            obj_logits = scale * np.einsum("nd,nd->n", image_emb[img_of], obj_emb)
            ref_logits = scale * image_emb[img_of] @ ref_emb.T  # (N, R)
            scores = grounding_scores(obj_logits, ref_logits, reference_mask(objs, cfg.grounding_references))
            for i, g in zip(with_obj, scores, strict=True):
                # as stored (float32), so the threshold sees what readers see; NaN (no reference left) -> None
                rows[i]["grounding"] = stored_score(float(g))
        recs = {iid: by_id[iid][1] for iid in ids}
        depicted = self._depictions(ids, image_emb, rows, recs) if cfg.filter_depictions else set()
        kept = []
        for row in rows:
            rec = by_id[row["image_id"]][1]
            g = row["grounding"]
            reason = DEPICTION if row["image_id"] in depicted else None
            if reason is None and is_ungrounded(g, cfg.grounding_threshold):
                reason = UNGROUNDED
            if reason is None:
                kept.append(row)
                continue
            rec["dropped_concepts"].append({
                "model": row["model"], "concept_index": row["concept_index"], "object": row["object"],
                "sound": row["sound"], "concept": row["concept"], "grounding": g, "reason": reason,
            })  # fmt: skip
        for iid in ids:
            rec = by_id[iid][1]
            rec["n_concepts"] -= len(rec["dropped_concepts"])
            if iid in depicted:
                rec["filtered"], rec["filter_word"] = True, DEPICTION
            elif rec["n_concepts"] == 0:
                rec["filtered"], rec["filter_word"] = True, UNGROUNDED
        return kept

    def _depictions(self, ids: list[str], image_emb: np.ndarray, rows: list[dict], recs: dict) -> set[str]:
        """Ids of the images CLIP sees as depictions of their objects; sets every image's depiction score.

        ``image_emb``: (I, D) embeddings of the images ``ids``; an image whose concepts name no
        object is asked about "something".
        """
        cfg, grounder = self.config, self.grounder
        assert grounder is not None
        objects: dict[str, dict[str, None]] = {iid: {} for iid in ids}
        for r in rows:
            objects[r["image_id"]][r["object"] or "something"] = None
        pairs = [(i, o) for i, iid in enumerate(ids) for o in objects[iid]]
        img_of = np.array([i for i, _ in pairs])
        photo = grounder.embed_texts([fill_template(cfg.photo_prompt, o) for _, o in pairs])  # (P, D)
        dep = grounder.embed_texts([fill_template(t, o) for _, o in pairs for t in cfg.depiction_prompts])
        dep = dep.reshape(len(pairs), len(cfg.depiction_prompts), -1)  # (P, K, D)
        emb = image_emb[img_of]  # (P, D)
        photo_logits = grounder.logit_scale * np.einsum("pd,pd->p", emb, photo)
        dep_logits = grounder.logit_scale * np.einsum("pd,pkd->pk", emb, dep)
        per_image = image_depiction_scores(photo_logits, dep_logits, img_of, len(ids))  # (I,)
        out = set()
        for i, iid in enumerate(ids):
            rec = recs[iid]
            rec["depiction_score"] = stored_score(float(per_image[i]))
            if is_depiction(rec["depiction_score"], cfg.depiction_threshold):
                kind = int(np.unravel_index(np.argmax(dep_logits[img_of == i]), dep_logits[img_of == i].shape)[1])
                rec["depiction"] = cfg.depiction_prompts[kind]
                out.add(iid)
        return out


def grounding_device(cfg: ConceptsConfig) -> str:
    """The device the CLIP checks run on: that of the first transformers VLM, else ``auto``."""
    return next((s.device for s in cfg.vlms if s.kind == "transformers"), "auto")


def _failure(model, task, reason, detail, raw_text) -> dict:
    return {"model": model, "task": task, "reason": reason, "detail": detail, "raw_text": raw_text}


def _shard_stats(index: int, images: list[dict], concepts: list[dict]) -> ShardStats:
    errors: dict[str, int] = {}
    filtered: dict[str, int] = {}
    per_image: dict[str, int] = {}
    model_failures: dict[str, int] = {}
    per_model: dict[str, int] = {}
    concepts_filtered: dict[str, int] = {}  # reason -> concepts the CLIP checks dropped
    for rec in images:
        for d in rec["dropped_concepts"]:
            concepts_filtered[d["reason"]] = concepts_filtered.get(d["reason"], 0) + 1
        if rec["error"] is not None:
            errors[rec["error"]] = errors.get(rec["error"], 0) + 1
        elif rec["filtered"]:
            filtered[rec["filter_word"]] = filtered.get(rec["filter_word"], 0) + 1
        else:
            per_image[str(rec["n_concepts"])] = per_image.get(str(rec["n_concepts"]), 0) + 1
        for f in rec["failures"]:
            key = f"{f['model']}|{f['task']}:{f['reason']}"
            model_failures[key] = model_failures.get(key, 0) + 1
    for row in concepts:
        per_model[row["model"]] = per_model.get(row["model"], 0) + 1
    extra = {
        "filtered": filtered, "concepts": len(concepts), "concepts_per_image": per_image,
        "model_failures": model_failures, "concepts_per_model": per_model,
        "concepts_in": len(concepts) + sum(concepts_filtered.values()), "concepts_filtered": concepts_filtered,
    }  # fmt: skip
    return ShardStats(
        shard=index, items_in=len(images), items_out=sum(1 for r in images if r["n_concepts"] > 0),
        errors=errors, extra=extra,
    )  # fmt: skip
