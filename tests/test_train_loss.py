"""causal_lm_loss equals transformers' own loss (and gradients) on tiny Qwen2 models, on CPU."""

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers import Qwen2Config, Qwen2ForCausalLM  # noqa: E402

from japanese_ft.train.loss import IGNORE_INDEX, causal_lm_loss, linear_cross_entropy_sum  # noqa: E402


def tiny_qwen2(tie: bool, seed: int = 0) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)
    cfg = Qwen2Config(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        tie_word_embeddings=tie,
        attn_implementation="eager",
    )
    model = Qwen2ForCausalLM(cfg).float()
    if not tie:  # make sure the untied head really differs from the embedding
        with torch.no_grad():
            model.lm_head.weight.normal_(0, 0.05)
    return model


def batch(seed: int = 1, b: int = 3, t: int = 17, vocab: int = 512):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (b, t), generator=g)
    labels = ids.clone()
    labels[0, :5] = IGNORE_INDEX  # a masked prompt
    labels[-1, -4:] = IGNORE_INDEX  # masked tail
    return ids, labels


def hf_sum_loss(model, ids, labels, **kw):
    out = model(input_ids=ids, labels=labels, **kw)
    n = (labels[:, 1:] != IGNORE_INDEX).sum()
    return out.loss * n, n


def grads(model):
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("tie", [True, False])
@pytest.mark.parametrize("chunk", [4096, 7])
def test_loss_and_grads_match_hf(tie, chunk):
    ids, labels = batch()
    ref_model = tiny_qwen2(tie)
    ref, n_ref = hf_sum_loss(ref_model, ids, labels)
    ref.backward()
    ref_grads = grads(ref_model)

    model = tiny_qwen2(tie)
    loss, n = causal_lm_loss(model, ids, labels, chunk_size=chunk)
    assert loss.dtype == torch.float32
    assert int(n) == int(n_ref)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    loss.backward()
    got = grads(model)
    assert got.keys() == ref_grads.keys()
    for name in ref_grads:
        torch.testing.assert_close(got[name], ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_ignore_index_all_masked_and_none_masked():
    model = tiny_qwen2(True)
    ids, _ = batch()
    labels = torch.full_like(ids, IGNORE_INDEX)
    loss, n = causal_lm_loss(model, ids, labels)
    assert int(n) == 0 and float(loss) == 0.0
    loss.backward()  # still differentiable

    labels = ids.clone()
    loss, n = causal_lm_loss(model, ids, labels)
    assert int(n) == ids.numel() - ids.shape[0]  # the last position of each row has no target
    ref, _ = hf_sum_loss(model, ids, labels)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)


def test_only_label_changes_matter():
    """Positions whose label is -100 contribute nothing, whatever their token."""
    model = tiny_qwen2(True)
    ids, labels = batch()
    loss_a, _ = causal_lm_loss(model, ids, labels)
    labels2 = labels.clone()
    labels2[1, 3] = IGNORE_INDEX
    loss_b, n_b = causal_lm_loss(model, ids, labels2)
    ref, n_ref = hf_sum_loss(model, ids, labels2)
    assert int(n_b) == int(n_ref)
    torch.testing.assert_close(loss_b, ref.detach(), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(loss_a, loss_b)


def test_packed_position_ids_and_padding_mask_pass_through():
    model = tiny_qwen2(False)
    ids, labels = batch(b=2, t=12)
    pos = torch.tensor([[0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 6], list(range(12))])
    mask = torch.ones_like(ids)
    mask[1, -3:] = 0
    labels[1, -3:] = IGNORE_INDEX
    ref, _ = hf_sum_loss(model, ids, labels, position_ids=pos, attention_mask=mask)
    loss, _ = causal_lm_loss(model, ids, labels, position_ids=pos, attention_mask=mask)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)


def test_no_grad_mode():
    model = tiny_qwen2(True)
    ids, labels = batch()
    with torch.no_grad():
        loss, _ = causal_lm_loss(model, ids, labels, chunk_size=5)
        ref, _ = hf_sum_loss(model, ids, labels)
    assert not loss.requires_grad
    torch.testing.assert_close(loss, ref, rtol=1e-5, atol=1e-5)


def test_lora_wrapped_model():
    peft = pytest.importorskip("peft")
    ids, labels = batch()

    def make():
        torch.manual_seed(3)
        base = tiny_qwen2(False)
        cfg = peft.LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0, target_modules="all-linear")
        m = peft.get_peft_model(base, cfg)
        with torch.no_grad():  # non-zero B so that the adapters change the output
            for n, p in m.named_parameters():
                if "lora_B" in n:
                    p.normal_(0, 0.02)
        return m

    ref_model = make()
    ref, _ = hf_sum_loss(ref_model, ids, labels)
    ref.backward()
    ref_grads = grads(ref_model)
    model = make()
    loss, _ = causal_lm_loss(model, ids, labels, chunk_size=8)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)
    loss.backward()
    got = grads(model)
    assert got.keys() == ref_grads.keys() and len(got) > 0
    assert all("lora_" in n for n in got)
    for name in ref_grads:
        torch.testing.assert_close(got[name], ref_grads[name], rtol=1e-4, atol=1e-5, msg=name)


def test_compiled_wrapper_is_unwrapped():
    model = tiny_qwen2(True)
    ids, labels = batch()
    ref, _ = hf_sum_loss(model, ids, labels)

    class Wrapper(torch.nn.Module):  # stands in for torch.compile's OptimizedModule
        def __init__(self, m):
            super().__init__()
            self._orig_mod = m

    loss, _ = causal_lm_loss(Wrapper(model), ids, labels)
    torch.testing.assert_close(loss, ref.detach(), rtol=1e-5, atol=1e-5)


def test_unknown_structure_falls_back_to_logits():
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(50, 8)
            self.out = torch.nn.Linear(8, 50)

        def forward(self, input_ids, attention_mask=None, position_ids=None, use_cache=False):
            return (self.out(self.emb(input_ids)),)

    torch.manual_seed(0)
    toy = Toy()
    ids = torch.randint(0, 50, (2, 6))
    labels = ids.clone()
    labels[0, :2] = IGNORE_INDEX
    loss, n = causal_lm_loss(toy, ids, labels)
    logits = toy(ids)[0]
    ref = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, 50), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
    )
    assert int(n) == 9  # 2 rows x 5 shifted targets, one masked
    torch.testing.assert_close(loss, ref)


def test_linear_cross_entropy_bf16_autocast_close_to_fp32():
    torch.manual_seed(0)
    h = torch.randn(40, 32, requires_grad=True)
    w = torch.randn(300, 32, requires_grad=True)
    t = torch.randint(0, 300, (40,))
    ref = torch.nn.functional.cross_entropy(h @ w.t(), t, reduction="sum")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = linear_cross_entropy_sum(h, w, t, chunk_size=16)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, ref.detach(), rtol=2e-2, atol=1e-1)
    got.backward()
    assert h.grad.dtype == torch.float32 and w.grad.dtype == torch.float32


def test_attn_auto_resolution():
    from japanese_ft.train.gpu import resolve_attn_implementation

    assert resolve_attn_implementation("auto", "cuda", packed=True) == "flex_attention"
    assert resolve_attn_implementation("auto", "cuda", packed=False) == "sdpa"
    assert resolve_attn_implementation("auto", "cpu", packed=True) == "sdpa"  # no flex backward on CPU
    assert resolve_attn_implementation("eager", "cuda", packed=True) == "eager"


@pytest.mark.parametrize("chunk,block", [(5, 7), (64, 512), (1, 100)])
def test_per_token_ce_equals_full_logits(chunk, block):
    """Evaluation's per-token CE (CPU: tiles with an online logsumexp over threads) == F.cross_entropy
    over the full fp32 logits, for any chunk and vocabulary block, ragged ends included."""
    from japanese_ft.train.loss import _per_token_cpu_fp32, linear_cross_entropy_per_token

    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(23, 16, generator=g) * 2, torch.randn(301, 16, generator=g)
    targets = torch.randint(0, 301, (23,), generator=g)
    ref = torch.nn.functional.cross_entropy(hidden @ weight.t(), targets, reduction="none")
    assert torch.allclose(_per_token_cpu_fp32(hidden, weight, targets, chunk, block), ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(linear_cross_entropy_per_token(hidden, weight, targets, chunk), ref, rtol=1e-5, atol=1e-5)


def test_row_nll_matches_hf_logits():
    """causal_lm_row_nll: per-row sums of -log p over the (already shifted) targets == the model's
    own logits, rows of different lengths, nothing scored in a row -> 0."""
    from japanese_ft.train.loss import causal_lm_row_nll

    model = tiny_qwen2(tie=True)
    ids, labels = batch()
    targets = torch.cat([labels[:, 1:], torch.full_like(labels[:, :1], IGNORE_INDEX)], dim=1)
    targets[1] = IGNORE_INDEX
    sums, counts = causal_lm_row_nll(model, ids, targets, chunk_size=5)
    with torch.no_grad():
        logp = model(input_ids=ids).logits.double().log_softmax(-1)
    for r in range(ids.shape[0]):
        keep = targets[r] != IGNORE_INDEX
        ref = -logp[r][keep].gather(1, targets[r][keep][:, None]).sum()
        assert int(counts[r]) == int(keep.sum())
        assert float(sums[r]) == pytest.approx(float(ref), rel=1e-5, abs=1e-6)
