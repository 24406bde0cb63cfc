"""jft: adapt open LLMs to Japanese (corpus -> CPT -> SFT/LoRA -> eval)."""

__version__ = "0.1.0"
