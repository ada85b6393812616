"""An offline Hugging Face hub cache holding tiny twins under real hub ids.

:func:`write_offline_hub` copies model folders into ``cache_dir`` in the hub's own cache layout
(``models--ORG--NAME/snapshots/<revision>/...`` with ``refs/main`` naming the revision), so that
with ``HF_HUB_CACHE=cache_dir`` and ``HF_HUB_OFFLINE=1`` a call such as
``from_pretrained("laion/clap-htsat-unfused")`` loads the twin, as documentation examples are
written, without touching the network.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Mapping
from pathlib import Path


def write_offline_hub(cache_dir: str | Path, models: Mapping[str, str | Path]) -> Path:
    """Place each ``{repo_id: folder}`` in ``cache_dir`` as the hub's cache would; returns ``cache_dir``.

    The revision is a fixed 40-hex digest of the repo id (the hub's layout needs one; its value
    is never checked offline). A repo already there is replaced.
    """
    cache = Path(cache_dir)
    for repo_id, folder in models.items():
        repo = cache / ("models--" + repo_id.replace("/", "--"))
        revision = hashlib.sha1(repo_id.encode()).hexdigest()
        snapshot = repo / "snapshots" / revision
        if repo.exists():
            shutil.rmtree(repo)
        shutil.copytree(folder, snapshot)
        (repo / "refs").mkdir(parents=True, exist_ok=True)
        (repo / "refs" / "main").write_text(revision)
    return cache
