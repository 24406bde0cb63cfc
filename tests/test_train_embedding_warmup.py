"""train.embedding_warmup_steps: the first N steps update only the input/output embeddings."""

from __future__ import annotations

import pytest
import torch

from japanese_ft.errors import UserError
from jft_train_utils import make_assets, run_config


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    return make_assets(tmp_path_factory.mktemp("warmup_assets"))


def _weights(path) -> dict:
    from japanese_ft.model.load import load_model

    return {k: v.detach().clone() for k, v in load_model(str(path)).state_dict().items()}


def test_warmup_step_equals_adamw_on_the_embedding_alone(assets, tmp_path):
    """Reference: one AdamW step (same lr, betas, decay, clipping) on the embedding only, same batch."""
    from japanese_ft.data.pretrain import PackedWindows
    from japanese_ft.model.load import load_model
    from japanese_ft.train.loop import train

    cfg = run_config(assets, "cpt", tmp_path / "run", "train.max_steps=1", "train.eval_every=0",
                     "train.embedding_warmup_steps=1", "train.warmup_steps=1")
    train(cfg)
    after = _weights(tmp_path / "run" / "final")

    model = load_model(str(assets["model"]))
    emb = model.get_input_embeddings().weight
    assert model.get_output_embeddings().weight is emb  # the tiny preset ties them
    batch = PackedWindows([str(assets["corpus"])], 32, seed=cfg.train.seed).next_batch(4)
    model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.backward()
    torch.nn.utils.clip_grad_norm_([emb], cfg.train.grad_clip)
    t = cfg.train
    torch.optim.AdamW([emb], lr=t.lr, betas=tuple(t.betas), eps=1e-8, weight_decay=t.weight_decay).step()

    initial = _weights(assets["model"])
    name = "model.embed_tokens.weight"
    torch.testing.assert_close(after[name], emb.detach(), rtol=1e-5, atol=1e-6)
    assert not torch.equal(after[name], initial[name])
    for key, value in initial.items():
        if key not in (name, "lm_head.weight"):
            assert torch.equal(after[key], value), key


def test_everything_trains_after_the_warmup(assets, tmp_path):
    from japanese_ft.train.loop import train

    cfg = run_config(assets, "cpt", tmp_path / "run", "train.max_steps=2", "train.eval_every=0", "train.save_every=1",
                     "train.embedding_warmup_steps=1")
    train(cfg)
    initial = _weights(assets["model"])
    step1 = _weights(tmp_path / "run" / "checkpoints" / "step_000001")
    final = _weights(tmp_path / "run" / "final")
    layer = "model.layers.0.mlp.up_proj.weight"
    assert torch.equal(step1[layer], initial[layer]) and not torch.equal(final[layer], initial[layer])


def test_config_checks(assets, tmp_path):
    with pytest.raises(UserError, match="lora keeps the embeddings frozen"):
        run_config(assets, "lora", tmp_path / "x", "train.embedding_warmup_steps=5")
    with pytest.raises(UserError, match="train.embedding_warmup_steps must be >= 0"):
        run_config(assets, "cpt", tmp_path / "x", "train.embedding_warmup_steps=-1")
