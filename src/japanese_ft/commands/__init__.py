"""Glue between the CLI and the library: option handling and summaries, one module per area."""
