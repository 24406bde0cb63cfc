"""The question phrasings of `build-qa`, and their per-article order.

Each kind has several phrasings; `Phraser.pick(table, slot)` takes slot `slot` of a list shuffled
with `random.Random(f"{seed}:{title}:{table}")`, so successive slots of one article differ and
the choice never depends on Python's hash randomization. `{t}` is the title, `{n}` a noun
(a heading, a topic), `{p}` a period (「1929年から1932年にかけて」).
"""

from __future__ import annotations

import random

PHRASINGS: dict[str, tuple[str, ...]] = {
    "definition": ("{t}とは何ですか？", "{t}とは何か教えてください。", "{t}とは何のことですか？", "{t}って何ですか？"),
    "definition_person": ("{t}とはどのような人物ですか？", "{t}とは誰ですか？", "{t}はどんな人物か教えてください。"),
    "summary": (
        "{t}について簡潔に説明してください。", "{t}の概要を簡単に教えてください。",
        "{t}について手短に説明してください。", "{t}について要点をまとめて教えてください。",
    ),
    "overview": (
        "{t}の概要を説明してください。", "{t}について詳しく教えてください。",
        "{t}について詳しく説明してください。", "{t}について、まず全体像を教えてください。",
    ),
    "detail": (
        "{t}について、さらに詳しく教えてください。", "{t}について、もう少し詳しく説明してください。",
        "{t}に関して、さらに詳しい情報を教えてください。", "{t}について、ほかにどのようなことが知られていますか？",
        "{t}について、ほかに知っていることを教えてください。", "{t}に関する話題をもう一つ紹介してください。",
    ),
    "detail_subject": ("{n}について教えてください。", "{n}について説明してください。", "{n}について詳しく教えてください。"),
    "detail_period": ("{t}について、{p}の出来事を教えてください。", "{t}の{p}の歩みを説明してください。", "{p}の{t}について教えてください。"),
    "detail_period_person": ("{t}の{p}の経歴を教えてください。", "{t}の{p}の活動について説明してください。", "{p}の{t}について教えてください。"),
    "history": (
        "{t}の{n}について教えてください。", "{t}にはどのような{n}がありますか？",
        "{t}の{n}を説明してください。", "{t}の{n}をたどって説明してください。",
    ),
    "history_person": ("{t}の経歴について教えてください。", "{t}の経歴を説明してください。", "{t}はどのような経歴の持ち主ですか？"),
    "features": (
        "{t}の{n}について教えてください。", "{t}にはどのような{n}がありますか？",
        "{t}の主な{n}は何ですか？", "{t}の{n}を説明してください。",
    ),
    "section": (
        "{t}の{n}について教えてください。", "{t}の{n}について知っていることを教えてください。",
        "{t}の{n}について説明してください。", "{t}の{n}に関して詳しく教えてください。",
    ),
    "whole": (
        "{t}について説明してください。", "{t}について知っていることを教えてください。",
        "{t}について、わかりやすく説明してください。", "{t}とは何か、説明してください。",
    ),
}


class Phraser:
    def __init__(self, seed: int, title: str):
        self.seed, self.title = seed, title
        self._shuffled: dict[str, list[str]] = {}

    def pick(self, table: str, slot: int = 0, noun: str = "", period: str = "") -> str:
        """Phrasing `slot` of a per-article shuffled list, so successive slots differ."""
        order = self._shuffled.get(table)
        if order is None:
            order = list(PHRASINGS[table])
            random.Random(f"{self.seed}:{self.title}:{table}").shuffle(order)
            self._shuffled[table] = order
        return order[slot % len(order)].format(t=self.title, n=noun, p=period)
