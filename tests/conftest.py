import os

# No test may reach the network: models load from tmp dirs or installed packages only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # torch not installed: no GPU tests either
        has_cuda = False
    if not has_cuda:
        skip = pytest.mark.skip(reason="needs CUDA (gpu marker)")
        for item in items:
            if "gpu" in item.keywords:
                item.add_marker(skip)
