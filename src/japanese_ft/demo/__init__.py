"""`jft demo`: the whole pipeline, offline, on the built-in Japanese sample (see pipeline.py)."""
