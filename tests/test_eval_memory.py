"""Scoring never materializes [batch, tokens, vocab] logits: a dispatch mode sees every tensor that
perplexity and JCommonsenseQA scoring create, and no vocabulary-wide tensor may hold more rows
than one chunk -- while the full-logits reference, watched the same way, holds batch x tokens rows
(so the check can fail)."""

import numpy as np
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from eval_testutils import TEXTS, tiny_model_dir


class VocabRows(TorchDispatchMode):
    """The most rows of any tensor an op returns whose last dimension is the vocabulary (logits,
    log-probabilities, gradients of logits); views of the model's weights left out."""

    def __init__(self, model):
        super().__init__()
        self.vocab = model.config.vocab_size
        self.rows = 0
        self.weights = {p.untyped_storage().data_ptr() for p in model.parameters()}

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if (isinstance(t, torch.Tensor) and t.dim() and t.shape[-1] == self.vocab
                    and t.untyped_storage().data_ptr() not in self.weights):
                self.rows = max(self.rows, t.numel() // self.vocab)
        return out


@pytest.fixture(autouse=True)
def one_thread():
    """Dispatch modes are per thread: score inline (one torch thread) so that the mode sees it."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    from japanese_ft.eval.loading import load_for_inference

    return load_for_inference(tiny_model_dir(tmp_path_factory), device="cpu", dtype="float32")


def test_perplexity_holds_one_chunk_of_logits(loaded):
    from japanese_ft.eval.perplexity import stream_nll

    model, tok = loaded
    ids = np.array(tok("".join(TEXTS) * 3)["input_ids"], dtype=np.int64)
    seq, batch = 64, 3
    with VocabRows(model) as watch:
        total, count, _ = stream_nll(model, ids, seq, batch_size=batch, chunk_size=16)
    assert count > 2 * batch * seq and 0 < watch.rows <= 16
    with VocabRows(model) as reference:  # the old way: full logits per batch of windows
        with torch.no_grad():
            model(input_ids=torch.as_tensor(ids[: batch * seq]).view(batch, seq)).logits.float()
    assert reference.rows == batch * seq


def test_multiple_choice_scoring_holds_one_chunk_of_logits(loaded):
    from japanese_ft.eval.loglik import continuation_logprobs

    model, tok = loaded
    pairs = [(TEXTS[i], TEXTS[i + 1][:20]) for i in range(4)]
    with VocabRows(model) as watch:
        got = continuation_logprobs(model, tok, pairs, batch_size=4, chunk_size=8)
    assert 0 < watch.rows <= 8
    assert sum(n for _, n in got) > 8 and all(np.isfinite(lp) and n > 0 for lp, n in got)
