"""GPU tests: collected everywhere, skipped without CUDA (so the CPU suite stays green).

Run them on a GPU machine from the repository root: `python -m pytest -q tests/gpu`.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: jft_train_utils, eval_testutils


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    here = Path(__file__).resolve().parent
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if here in Path(str(item.fspath)).resolve().parents:
            item.add_marker(skip)
