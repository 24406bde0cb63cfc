"""The stage kinds a recipe can use, by name (`KINDS`). A new kind is one class with `@register`."""

from japanese_ft.pipeline.kinds import data, evaluate, model  # noqa: F401  (importing registers the kinds)
from japanese_ft.pipeline.kinds.base import KINDS, Kind, Stage

__all__ = ["KINDS", "Kind", "Stage"]
