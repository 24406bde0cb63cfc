"""Data: corpus reading, Megatron token files, pre-training windows, Q&A and SFT examples."""
