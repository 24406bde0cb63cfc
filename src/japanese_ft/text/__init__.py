"""Japanese text in, Japanese text out: normalization, cleanup, sentences, quality rules, dedup.

Nothing in this package imports torch or transformers.
"""

from japanese_ft.text.normalize import clean, normalize
from japanese_ft.text.sentences import split_sentences

__all__ = ["normalize", "clean", "split_sentences"]
