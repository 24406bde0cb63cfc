"""Evaluation and generation: metrics, llm-jp-eval prompts, batched generation, perplexity,
JSQuAD, JCommonsenseQA and result comparison.

Importing this package is cheap; torch and transformers are imported inside the functions that
need them, so `jft --help` stays instant.
"""

from japanese_ft.eval.metrics import char_f1, exact_match

__all__ = ["char_f1", "exact_match"]
