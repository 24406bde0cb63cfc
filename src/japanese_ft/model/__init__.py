"""Loading and initialising HF causal LMs and tokenizers, presets, LoRA wrapping, merge/export."""
