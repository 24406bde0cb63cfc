"""The one training loop and its parts: loss, schedule, checkpoints, distributed setup, metrics."""
