"""Report documents as a list of blocks, rendered to Markdown and to one self-contained HTML page.

Both documents come from the same blocks, so they always say the same thing; the HTML embeds
its images (base64), so it can be mailed or opened anywhere.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass
from pathlib import Path

# ---- blocks ----------------------------------------------------------------------------------


@dataclass
class H:
    level: int
    text: str


@dataclass
class P:
    text: str  # may hold `code` and **bold** (rendered in HTML too)


@dataclass
class Table:
    header: list
    rows: list
    align: str = ""  # per column: "l" or "r"


@dataclass
class Image:
    path: str  # relative to the report
    alt: str


@dataclass
class Code:
    text: str
    lang: str = ""


@dataclass
class Bullets:
    items: list


def _md_cell(v) -> str:
    return str(v).replace("|", "\\|").replace("\n", " ⏎ ")


def to_markdown(blocks: list) -> str:
    out = []
    for b in blocks:
        if isinstance(b, H):
            out.append("#" * b.level + " " + b.text)
        elif isinstance(b, P):
            out.append(b.text)
        elif isinstance(b, Bullets):
            out.append("\n".join(f"- {i}" for i in b.items))
        elif isinstance(b, Table):
            align = b.align or "l" * len(b.header)
            lines = ["| " + " | ".join(_md_cell(h) for h in b.header) + " |",
                     "|" + "|".join("---:" if a == "r" else "---" for a in align) + "|"]
            lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in b.rows]
            out.append("\n".join(lines))
        elif isinstance(b, Image):
            out.append(f"![{b.alt}]({b.path})")
        elif isinstance(b, Code):
            out.append(f"```{b.lang}\n{b.text.rstrip()}\n```")
    return "\n\n".join(out) + "\n"


def _inline(text: str) -> str:
    """`code` and **bold** of the markdown paragraphs, as HTML (everything else escaped)."""
    import re

    parts = re.split(r"(`[^`]+`)", text)
    res = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            res.append(f"<code>{html.escape(part[1:-1])}</code>")
        else:
            esc = html.escape(part)
            esc = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", esc)
            esc = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', esc)
            res.append(esc)
    return "".join(res)


_CSS = """
body{font-family:-apple-system,"Segoe UI","Hiragino Sans","Noto Sans JP","Yu Gothic",sans-serif;max-width:980px;
margin:2em auto;padding:0 1em;line-height:1.6;color:#1f2328}
h1{border-bottom:2px solid #d0d7de;padding-bottom:.3em}h2{border-bottom:1px solid #d0d7de;padding-bottom:.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}th,td{border:1px solid #d0d7de;padding:4px 9px;vertical-align:top}
th{background:#f6f8fa}td.r{text-align:right;font-variant-numeric:tabular-nums}
code{background:#f6f8fa;padding:1px 4px;border-radius:4px;font-size:.9em}
pre{background:#f6f8fa;padding:12px;overflow-x:auto;border-radius:6px;font-size:.85em;line-height:1.45}
pre code{background:none;padding:0}img{max-width:100%;border:1px solid #d0d7de;border-radius:4px}
footer{margin-top:3em;color:#656d76;font-size:.85em}
"""

# The page names common Japanese fonts; a machine without any shows Japanese as empty boxes.
CJK_NOTE = ("If Japanese text shows as empty boxes, this machine has no Japanese font: install one (e.g. "
            "`apt install fonts-noto-cjk`, or Noto Sans JP from fonts.google.com) and reload; report.md has the same text.")


def to_html(blocks: list, base_dir: Path, title: str) -> str:
    body = []
    for b in blocks:
        if isinstance(b, H):
            body.append(f"<h{b.level}>{_inline(b.text)}</h{b.level}>")
        elif isinstance(b, P):
            body.append(f"<p>{_inline(b.text)}</p>")
        elif isinstance(b, Bullets):
            body.append("<ul>" + "".join(f"<li>{_inline(i)}</li>" for i in b.items) + "</ul>")
        elif isinstance(b, Table):
            align = b.align or "l" * len(b.header)
            head = "".join(f"<th>{html.escape(str(h))}</th>" for h in b.header)
            rows = []
            for row in b.rows:
                cells = "".join(
                    f'<td class="{"r" if a == "r" else "l"}">{html.escape(str(c)).replace(chr(10), "<br>")}</td>'
                    for c, a in zip(row, align))
                rows.append(f"<tr>{cells}</tr>")
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>")
        elif isinstance(b, Image):
            data = (base_dir / b.path).read_bytes()
            src = "data:image/png;base64," + base64.b64encode(data).decode("ascii")
            body.append(f'<p><img src="{src}" alt="{html.escape(b.alt)}"></p>')
        elif isinstance(b, Code):
            body.append(f"<pre><code>{html.escape(b.text.rstrip())}</code></pre>")
    body.append(f"<footer>{_inline(CJK_NOTE)}</footer>")
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
