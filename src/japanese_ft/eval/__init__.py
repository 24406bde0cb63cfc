"""Evaluation and generation: metrics, llm-jp-eval prompts, batched generation, perplexity,
JSQuAD, JCommonsenseQA and result comparison.

Importing this package is cheap; torch and transformers are imported inside the functions that
need them, so `jft --help` stays instant.
"""

__all__ = ["char_f1", "exact_match"]


def __getattr__(name: str):
    """`char_f1` and `exact_match` on first use: the metrics need rapidfuzz, generation and
    perplexity do not (a GPU machine may lack it)."""
    if name in __all__:
        from japanese_ft.eval import metrics

        return getattr(metrics, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
