"""Proof, offline, that `--grounding` removes hallucinated objects and `--filter-depictions` drawings.

A tiny CLIP is trained for a few seconds on a synthetic world (seeing_sound.testing.clip_proof):
photos of four object classes and line drawings of the same classes. On held-out images (another
seed) the test plants, through the real `concepts` command with a sidecar "VLM", every photo's true
object plus a concept for every absent class (the A.4 "seagulls on every beach"), and a true
object on every drawing (A.4's drawings and statues). `--grounding` must drop >= 90 % of the
absent-object concepts and keep >= 90 % of the true ones; `--filter-depictions` must drop >= 90 %
of the drawings and keep >= 90 % of the photos.
"""

import json

import pytest
import torch

from seeing_sound.cli import main
from seeing_sound.concepts import read_concepts
from seeing_sound.testing.clip_proof import PROOF_CLASSES, train_proof_clip, write_proof_images

pytestmark = pytest.mark.slow
MIN_RATE = 0.9


@pytest.fixture(scope="module")
def proof(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only stall on a shared machine
    try:
        root = tmp_path_factory.mktemp("proof")
        clip = train_proof_clip(root / "clip", seed=0)
    finally:
        torch.set_num_threads(before)
    rows = write_proof_images(root / "images", per_class=10, seed=1)
    side, planted = root / "side.jsonl", {}
    with side.open("w") as fh:
        for r in rows:
            objects = [r["class"]] + ([c for c in PROOF_CLASSES if c != r["class"]] if r["kind"] == "photo" else [])
            for o in objects:
                fh.write(json.dumps({"path": r["path"], "object": o, "sound": "a sound"}) + "\n")
                planted[(r["path"], o)] = "true" if o == r["class"] else "absent"
    return root, clip, side, rows, planted


def test_grounding_drops_absent_objects_and_keeps_present_ones(proof, tmp_path):
    root, clip, side, rows, planted = proof
    code = main([
        "concepts", str(root / "images"), "--out", str(tmp_path / "out"), "--vlm", f"sidecar:{side}",
        "--no-captions", "--no-filter", "--max-concepts", str(len(PROOF_CLASSES)), "--quiet",
        "--grounding", str(clip), "--grounding-references", ",".join(PROOF_CLASSES),
        "--filter-depictions", "--depiction-prompts", "a drawing of {}",
    ])  # fmt: skip
    assert code == 0
    card = json.loads((tmp_path / "out" / "concepts.json").read_text())
    concepts, images = read_concepts(tmp_path / "out")
    kind = {r["path"]: r["kind"] for r in rows}
    kept = {(r["image_id"], r["object"]) for r in concepts.to_pylist()}
    photo_true = [k for k, v in planted.items() if v == "true" and kind[k[0]] == "photo"]
    absent = [k for k, v in planted.items() if v == "absent"]
    kept_true = sum(k in kept for k in photo_true) / len(photo_true)
    dropped_absent = sum(k not in kept for k in absent) / len(absent)
    filt = {r["image_id"]: r["filter_word"] for r in images.to_pylist()}
    drawings = [p for p, k in kind.items() if k == "drawing"]
    photos = [p for p, k in kind.items() if k == "photo"]
    drawings_dropped = sum(filt[p] == "depiction" for p in drawings) / len(drawings)
    photos_kept = sum(filt[p] != "depiction" for p in photos) / len(photos)
    print(f"true kept {kept_true:.2f}, absent dropped {dropped_absent:.2f}, "
          f"drawings dropped {drawings_dropped:.2f}, photos kept {photos_kept:.2f}")  # fmt: skip
    assert kept_true >= MIN_RATE and dropped_absent >= MIN_RATE
    assert drawings_dropped >= MIN_RATE and photos_kept >= MIN_RATE
    # every concept and image is accounted for
    assert card["concepts_in"] == len(planted) == card["concepts"] + sum(card["concepts_filtered"].values())
    assert card["images_in"] == card["images_with_concepts"] + card["images_filtered"] + card["images_failed"]
    assert card["images_filtered_by"] == {"depiction": len(drawings)}
    assert card["settings"]["grounding"]["depictions"]["prompts"] == ["a drawing of {}"]
    g_true = [r["grounding"] for r in concepts.to_pylist() if planted[(r["image_id"], r["object"])] == "true"]
    assert min(g_true) >= 0.5
