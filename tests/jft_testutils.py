"""Small helpers shared by the foundation tests: a tiny Japanese corpus and a tiny BPE tokenizer."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"

ARTICLES = [
    ("1", "富士山", "富士山（ふじさん）は、静岡県と山梨県にまたがる活火山である。標高は3776メートルで、日本で最も高い山として知られている。\n古くから信仰の対象とされ、多くの人々が山頂を目指して登ってきた。2013年には世界文化遺産に登録された。"),
    ("2", "琵琶湖", "琵琶湖（びわこ）は、滋賀県にある日本最大の湖である。面積はおよそ670平方キロメートルで、県の面積の約6分の1を占める。\n湖の水は京都や大阪の人々の生活を支えており、「近畿の水がめ」と呼ばれることもある。"),
    ("3", "味噌", "味噌（みそ）は、大豆に麹と塩を加えて発酵させた日本の伝統的な調味料である。地域によって米味噌、麦味噌、豆味噌などの種類がある。\n味噌汁は毎日の食卓に欠かせない料理で、具材には豆腐やわかめ、ねぎなどがよく使われる。"),
    ("4", "桜", "桜（さくら）は、バラ科サクラ属の落葉樹の総称である。春になると白や薄い紅色の花を咲かせ、日本では花見の習慣が広く親しまれている。\n代表的な品種であるソメイヨシノは、江戸時代の末期に作られたと考えられている。"),
    ("5", "新幹線", "新幹線（しんかんせん）は、日本の主要都市を結ぶ高速鉄道である。1964年に東海道新幹線が開業し、東京と新大阪の間を結んだ。\n現在では北海道から九州まで路線が延び、最高速度は時速300キロメートルを超える区間もある。"),
]


def write_jsonl(path: Path, records: list[dict], gz: bool = False) -> Path:
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")
    path.parent.mkdir(parents=True, exist_ok=True)
    if gz:
        path.write_bytes(gzip.compress(data, mtime=0))
    else:
        path.write_bytes(data)
    return path


def article_records(n_copies: int = 1) -> list[dict]:
    out = []
    for k in range(n_copies):
        for aid, title, text in ARTICLES:
            suffix = "" if k == 0 else f"\n第{k}版の追記である。"
            out.append({"text": text + suffix, "meta": {"id": f"{aid}-{k}", "title": title, "url": f"https://example.org/{aid}"}})
    return out


def make_tokenizer_dir(path: Path, vocab_size: int = 600, texts: list[str] | None = None,
                       chat_template: str | None = None, pad_token: str | None = None) -> Path:
    """A tiny byte-level BPE (<|endoftext|>, <|im_start|>, <|im_end|> = ids 0-2) trained on the test
    articles, saved as a Hugging Face tokenizer directory. No chat template unless given."""
    from japanese_ft.model.tokenizer import train_bpe_tokenizer

    texts = texts if texts is not None else [t for _, _, t in ARTICLES]
    train_bpe_tokenizer(texts * 3, path, vocab_size=vocab_size, min_frequency=0, chat_template=chat_template,
                        pad_token=pad_token)
    return path
