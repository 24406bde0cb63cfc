"""The demo report: DIR/report.md, a self-contained DIR/report.html and the plots in DIR/plots/.

Both documents are rendered from one list of blocks, so they always say the same thing. Plots use
matplotlib's Agg backend (no display needed); the metric bar chart is `jft compare`'s.
"""

from __future__ import annotations

import base64
import html
import json
import os
import platform
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
"""


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
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"><title>{html.escape(title)}</title>"
            f"<style>{_CSS}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")


# ---- plots -----------------------------------------------------------------------------------

RUN_TITLES = {"base": "base pre-training (cpt mode)", "cpt": "continual pre-training", "sft": "full SFT", "lora": "LoRA SFT"}


def plot_loss_curves(root: Path, out_png: Path) -> Path:
    """One panel per training stage: train loss per step and validation loss."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from japanese_ft.train.metrics import read_metrics

    fig, axes = plt.subplots(2, 2, figsize=(10, 6.4), dpi=100)
    for ax, (run, title) in zip(axes.flat, RUN_TITLES.items()):
        recs = read_metrics(root / "runs" / run / "metrics.jsonl")
        train = [(r["step"], r["loss"]) for r in recs if "loss" in r]
        val = [(r["step"], r["val_loss"]) for r in recs if "val_loss" in r]
        if train:
            ax.plot(*zip(*train), label="train loss", linewidth=1.2)
        if val:
            ax.plot(*zip(*val), "o-", label="validation loss", markersize=4)
        ax.set_title(f"{run}: {title}", fontsize=10)
        ax.set_xlabel("step", fontsize=9)
        ax.set_ylabel("loss (nats/token)", fontsize=9)
        ax.grid(alpha=0.3)
        if train or val:
            ax.legend(fontsize=8)
    fig.suptitle("Loss curves (validation: held-out articles for base/CPT, build-qa validation split for SFT/LoRA)",
                 fontsize=10)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(out_png.name + ".tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out_png)
    return out_png


def plot_metrics(root: Path, labels: list[str], out_png: Path) -> dict:
    from japanese_ft.eval.compare import bar_chart, compare

    files = [root / "eval" / f"{label.replace('+', '_')}.json" for label in labels]
    res = compare([str(f) for f in files], labels)
    bar_chart(res, out_png)
    return res


# ---- the report ------------------------------------------------------------------------------


def _f(v, nd=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _secs(v) -> str:
    return "-" if v is None else f"{v:.1f} s"


def _gen_text(text: str, limit: int = 120) -> str:
    t = text.strip()
    if not t:
        return "(empty: the model stopped at once)"
    return t if len(t) <= limit else t[:limit] + "…"


def _machine() -> str:
    try:
        import torch

        tv = torch.__version__
        threads = torch.get_num_threads()
    except Exception:  # pragma: no cover
        tv, threads = "?", "?"
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPU cores (torch {tv}, {threads} threads), Python {platform.python_version()}"


def build_blocks(root: Path, manifest: dict) -> list:
    from japanese_ft.demo.pipeline import CORPUS_PARTS, MODELS, PROMPTS, stages

    st = manifest["stages"]
    recipe = manifest["settings"]["recipe"]
    info = lambda name: st.get(name, {}).get("info", {})  # noqa: E731
    labels = [l for l in MODELS if f"eval-{l}" in st]
    ev = {l: info(f"eval-{l}") for l in labels}
    total = sum(s.get("seconds", 0) for name, s in st.items() if name != "report")
    tok, init = info("tokenizer"), info("init")
    B: list = []
    B.append(H(1, "jft demo report"))
    B.append(P(
        f"Run `{manifest['run_id']}` ({'`--quick`' if recipe['quick'] else 'full demo'}), started {manifest['created']}; "
        f"the stages took **{total:.0f} s** in all on {_machine()}."))
    B.append(P(
        "This is the whole jft pipeline on the built-in Japanese sample (48 training articles and 6 held-out articles "
        "written for jft, plus SQuAD-format reading-comprehension questions), offline and on a CPU: corpus preparation, "
        f"a tiny Qwen2-architecture model ({_f(init.get('parameters'))} parameters) pre-trained from scratch, continual "
        "pre-training (CPT), full SFT and LoRA, evaluation, and export. The model is about 1,500 times smaller than "
        "Qwen2.5-0.5B and trains for a minute, so the scores show that every stage works and how to read them, not what "
        "the recipe reaches on a GPU - the last section gives the commands for that."))

    # summary
    B.append(H(2, "Results at a glance"))
    rows = []
    for l in labels:
        e = ev[l]
        rows.append([l, _f(e.get("cpt_corpus_perplexity"), 2), _f(e.get("perplexity"), 2), _f(e.get("bits_per_char"), 3),
                     _f(e.get("char_f1"), 3), _f(e.get("exact_match"), 3)])
    n_q = ev[labels[0]].get("jsquad_n") if labels else "-"
    B.append(Table(["model", "perplexity on the CPT text", "held-out perplexity", "held-out bits/char",
                    f"char-F1 ({n_q} held-out questions)", "exact match"], rows, "lrrrrr"))
    if (root / "plots" / "metrics.png").exists():
        B.append(Image("plots/metrics.png", "metrics per model"))
    if "base" in ev and "cpt" in ev and ev["base"].get("perplexity") and ev["cpt"].get("perplexity"):
        b, c = ev["base"], ev["cpt"]
        change = 100 * (c["perplexity"] / b["perplexity"] - 1)
        B.append(P(
            f"**Before and after CPT.** On the text the CPT stage trained on, perplexity goes "
            f"{_f(b.get('cpt_corpus_perplexity'), 1)} -> {_f(c.get('cpt_corpus_perplexity'), 1)} and bits per character "
            f"{_f(b.get('cpt_corpus_bits_per_char'), 3)} -> {_f(c.get('cpt_corpus_bits_per_char'), 3)}: CPT taught the model "
            "that text. On the held-out articles (topics it never saw) perplexity goes "
            f"{b['perplexity']:.1f} -> {c['perplexity']:.1f} ({change:+.1f} %), bits per character "
            f"{b['bits_per_char']:.3f} -> {c['bits_per_char']:.3f}. Lower is better for both. 30,000 characters are "
            "far too little text to generalise from: the training loss falls well below the validation loss (see the loss "
            "curves), the model memorises its articles, and held-out perplexity stays high - which is why the real recipe "
            "continues a pre-trained model on billions of tokens. Bits per "
            "character do not depend on the tokenizer, so they compare across models with different vocabularies. A model "
            f"that guessed uniformly among the {_f(tok.get('vocab_size'))} tokens would have perplexity "
            f"{_f(tok.get('vocab_size'))}."))

    # what ran
    B.append(H(2, "What ran"))
    rows = []
    for i, s in enumerate(stages(), 1):
        rec = st.get(s.name)
        when = _secs(rec.get("seconds")) if rec else ("(this report)" if s.name == "report" else "(pending)")
        rows.append([i, s.name, s.title, s.command, when])
    B.append(Table(["#", "stage", "what", "jft command", "time"], rows, "rlllr"))

    # corpus
    B.append(H(2, "1. Corpus: tokenizer and prepare-corpus"))
    B.append(P(
        f"A byte-level BPE tokenizer with **{_f(tok.get('vocab_size'))} tokens** was trained on the training articles "
        f"with the Hugging Face `tokenizers` library (special tokens {', '.join(f'`{t}`' for t in tok.get('special_tokens', []))}; "
        "ChatML chat template) and saved as a Hugging Face tokenizer directory, so that the model's output layer stays "
        "small and CPU training is quick. Real runs use the model's own tokenizer (Qwen2.5: 151,643 tokens + specials), "
        "which packs more characters into each token."))
    rows = []
    for name, part in info("prepare").get("parts", {}).items():
        dropped = ", ".join(f"{k} {v}" for k, v in part["dropped"].items()) or "none"
        rows.append([name, part["what"], f"{part['input']}" + (f" (--shard {part['shard']})" if part["shard"] else ""),
                     part["documents_in"], part["documents_written"], dropped, _f(part["tokens"]), _f(part["characters"]),
                     _f(part["chars_per_token"], 2)])
    B.append(Table(["part", "what", "input", "docs in", "docs written", "dropped", "tokens", "characters", "chars/token"],
                   rows, "llllrrlrr"))
    B.append(P(
        "`prepare-corpus` normalizes (NFC), cleans, applies the quality rules (`--filter`), drops exact duplicates and "
        "writes Megatron `.bin/.idx` token files with an end-of-document token after each article. The sample holds two "
        "verbatim duplicate articles and three very short ones on purpose; duplicates are found within each file "
        "processed (`jft merge-corpus` drops those across files)."))

    # model and pre-training
    B.append(H(2, "2. Model, base pre-training and CPT"))
    arch = init.get("architecture", {})
    B.append(P(
        f"`init-model --preset tiny`: Qwen2 architecture, {arch.get('num_hidden_layers')} layers, hidden size "
        f"{arch.get('hidden_size')}, MLP {arch.get('intermediate_size')}, {arch.get('num_attention_heads')} attention heads "
        f"({arch.get('num_key_value_heads')} key/value heads), vocabulary {_f(init.get('vocab_size'))}, tied embeddings: "
        f"**{_f(init.get('parameters'))} parameters**, random initialisation. \"Base\" pre-training runs `train cpt` on the "
        "first half of the articles from that random model; CPT continues from the base model on the second half, the "
        "same way Qwen2.5-0.5B is continued on Japanese Wikipedia."))
    rows = []
    for run in ("base", "cpt", "sft", "lora"):
        r = info(run)
        if not r:
            continue
        rows.append([run, r["mode"], r["steps"], _f(r["tokens"]), _f(r["loss"], 3), _f(r["val_loss"], 3),
                     f"{_f(r['trainable_params'])} / {_f(r['total_params'])}", _f(r["tokens_per_s"], 0),
                     _secs(st[run].get("seconds"))])
    B.append(Table(["stage", "mode", "steps", "tokens", "final train loss", "final val loss", "trainable / total params",
                    "tokens/s", "time"], rows, "llrrrrrrr"))
    if (root / "plots" / "loss_curves.png").exists():
        B.append(Image("plots/loss_curves.png", "loss curves per stage"))
    B.append(P(f"Batches of {recipe['micro_batch_size']} sequences of {recipe['seq_length']} tokens for pre-training "
               f"and up to {recipe['sft_seq_length']} tokens for SFT/LoRA (answers truncated when longer). Metrics of each "
               "run are in `runs/STAGE/metrics.jsonl` (also TensorBoard events in `runs/STAGE/tensorboard/`); "
               "`jft status runs/STAGE` summarises a run."))

    # QA + SFT
    B.append(H(2, "3. Q&A data, SFT and LoRA"))
    qa = info("qa")
    if qa:
        kinds = ", ".join(f"{k} {v}" for k, v in qa.get("pairs", {}).items() if v)
        B.append(P(
            f"`build-qa` turned {qa['articles_used']} of {qa['articles_in']} articles into {qa['training_pairs']} training "
            f"and {qa['validation_pairs']} validation question/answer pairs ({kinds}); `convert-squad` turned "
            f"{qa['squad_records']} SQuAD-format questions about training paragraphs into `文章:…\\n質問:…` -> answer records. "
            "Both train SFT (all weights) and LoRA (adapters only, r 8) from the CPT model, with the ChatML template and the "
            "loss on answer tokens only."))
    for run in ("sft", "lora"):
        d = info(run).get("data", {}).get("train") if info(run) else None
        if d:
            B.append(P(f"`{run}` data: {d.get('examples')} examples from {d.get('records')} records "
                       f"(truncated {d.get('truncated')}, dropped too long {d.get('dropped_too_long')})."))

    # evaluation
    B.append(H(2, "4. Evaluation"))
    B.append(P(
        "Perplexity and bits per character are computed on token files (the CPT half of the articles, and the 6 held-out "
        "articles), in windows of "
        f"{recipe['seq_length']} tokens as in training (`jft eval perplexity`). The reading-comprehension score uses "
        "`jft eval jsquad` on the held-out questions: llm-jp-eval's JSQuAD prompt, greedy decoding, character-level F1 and "
        "exact match against the gold answer. A model this small rarely extracts the right span; char-F1 still gives "
        "partial credit for shared characters."))
    rows = []
    for l in labels:
        e = ev[l]
        rows.append([l, e.get("model", "").replace(str(root) + "/", "") + (
            " + " + e["adapter"].replace(str(root) + "/", "") if e.get("adapter") else ""),
            _f(e.get("cpt_corpus_perplexity"), 2), _f(e.get("perplexity"), 2), _f(e.get("bits_per_char"), 3),
            _f(e.get("char_f1"), 3), _f(e.get("exact_match"), 3), _secs(st.get(f"eval-{l}", {}).get("seconds"))])
    B.append(Table(["model", "checkpoint", "CPT-text perplexity", "held-out perplexity", "held-out bits/char", "char-F1", "EM",
                    "eval time"], rows, "llrrrrrr"))
    ex_label = "cpt+sft" if "cpt+sft" in labels else (labels[-1] if labels else None)
    if ex_label:
        path = root / "eval" / f"{ex_label.replace('+', '_')}.jsquad_heldout.examples.jsonl"
        if path.exists():
            recs = [json.loads(l) for l in path.read_text(encoding="utf-8").splitlines()[:4]]
            rows = [[r["prompt"].rsplit("質問：", 1)[-1].split("\n")[0], r["gold"], _gen_text(r["prediction"], 60),
                     _f(r["char_f1"], 2)] for r in recs]
            B.append(P(f"First held-out questions answered by `{ex_label}`:"))
            B.append(Table(["question", "gold", "prediction", "char-F1"], rows, "lllr"))

    # generations
    B.append(H(2, "5. Sample generations"))
    B.append(P(
        f"Greedy decoding, at most {recipe['generation_tokens']} new tokens. Completion prompts are continued as plain "
        "text; question prompts are wrapped as one user turn in the ChatML template (what SFT and LoRA were trained on), "
        "for every model, so you can see what fine-tuning changes."))
    for k, (kind, text) in enumerate(PROMPTS[: recipe["prompts"]]):
        B.append(P(f"**Prompt {k + 1}** ({'plain completion' if kind == 'completion' else 'chat turn'}): `{text.replace(chr(10), ' ⏎ ')}`"))
        rows = []
        for l in labels:
            g = ev[l].get("generations", [])
            if k < len(g):
                rows.append([l, _gen_text(g[k]["output"])])
        B.append(Table(["model", "output"], rows, "ll"))

    # export
    B.append(H(2, "6. Export"))
    ex = info("export")
    if ex:
        diff = ex.get("max_relative_difference")
        B.append(P(
            f"`jft export` merged the LoRA adapter into the CPT model: `{ex['output'].replace(str(root) + '/', '')}` is a plain "
            f"Hugging Face checkpoint ({_f(ex.get('parameters'))} parameters, {ex.get('dtype')}) that loads without PEFT. "
            f"Its held-out perplexity is {_f(ex.get('merged_perplexity'), 4)}, against {_f(ex.get('adapter_perplexity'), 4)} "
            f"for the CPT model + adapter" + (f" (relative difference {diff:.1e})." if diff is not None else ".")))

    # reproduce
    B.append(H(2, "Reproduce each stage with the jft CLI"))
    B.append(P("The demo calls the same library functions as these commands, with the config files it wrote to "
               "`configs/`. Run them into a fresh copy of the directory, or delete a stage's output first: `init-model` "
               "and `export` refuse a non-empty output, and `train` resumes (or reports complete) a run that exists."))
    B.append(Code(reproduce_commands(root, recipe), "bash"))
    B.append(H(2, "The same pipeline on Qwen2.5-0.5B and LLM-jp ja_wiki (GPU)"))
    B.append(P("With a CUDA GPU and internet access, the recipes in the repository's `configs/` run the full-size "
               "pipeline. Measured speeds are in `docs/benchmarks.md`; `docs/scaling.md` covers several GPUs."))
    B.append(Code(gpu_commands(), "bash"))

    B.append(H(2, "Files in this directory"))
    B.append(Bullets([
        "`demo.json` - run id, settings, per-stage timings and results (the demo resumes from it)",
        "`data/` - the built-in sample; `tokenizer/` - the BPE tokenizer; `corpus/` - token files + `.stats.json`",
        "`configs/` - the run configs of every training stage and the evaluation suite",
        "`models/init/` - the random model; `runs/{base,cpt,sft,lora}/` - training runs (`final/`, `checkpoints/`, "
        "`metrics.jsonl`, `training_curve.png`)",
        "`qa/` - build-qa and convert-squad output; `eval/` - result JSON per model, per-example JSONL, generations",
        "`models/lora-merged/` - the exported LoRA model; `plots/` - the figures of this report",
    ]))
    return B


def reproduce_commands(root: Path, recipe: dict) -> str:
    lines = [f"DEMO={root}", "", "# 1. corpus (the tokenizer itself is trained by the demo with the tokenizers library)"]
    for name, (src, shard, _) in __import__("japanese_ft.demo.pipeline", fromlist=["CORPUS_PARTS"]).CORPUS_PARTS.items():
        lines.append(f"jft prepare-corpus $DEMO/data/{src} --tokenizer $DEMO/tokenizer --output-prefix $DEMO/corpus/{name} "
                     f"--filter" + (f" --shard {shard}" if shard else ""))
    lines += [
        "jft inspect-corpus $DEMO/corpus/cpt --show 0 --tokenizer $DEMO/tokenizer",
        "",
        "# 2. model, base pre-training, CPT",
        "jft init-model --preset tiny --tokenizer $DEMO/tokenizer --output $DEMO/models/init --seed "
        f"{recipe['seed']} --dtype float32",
        "jft train cpt --config $DEMO/configs/base.yaml",
        "jft train cpt --config $DEMO/configs/cpt.yaml",
        "",
        "# 3. Q&A data, SFT and LoRA",
        "jft build-qa $DEMO/data/articles.jsonl --output-dir $DEMO/qa --seed 42 --validation-ratio 0.1",
        "jft convert-squad $DEMO/data/questions_train.json --output $DEMO/qa/squad_train.jsonl",
        "jft train sft --config $DEMO/configs/sft.yaml",
        "jft train lora --config $DEMO/configs/lora.yaml",
        "jft status $DEMO/runs",
        "",
        "# 4. evaluation (perplexity + JSQuAD-style questions), comparison, generation",
    ]
    from japanese_ft.demo.pipeline import MODELS

    for label, (model, adapter) in MODELS.items():
        lines.append(f"jft eval suite --model $DEMO/{model}" + (f" --adapter $DEMO/{adapter}" if adapter else "")
                     + f" --config $DEMO/configs/evals-demo.yaml --label {label} --output $DEMO/eval/{label.replace('+', '_')}.json")
    lines += [
        "jft compare " + " ".join(f"$DEMO/eval/{l.replace('+', '_')}.json" for l in MODELS) + " --chart $DEMO/plots/metrics.png",
        f"jft generate --model $DEMO/runs/cpt/final --prompt '富士山は、' --max-new-tokens {recipe['generation_tokens']}",
        f"jft generate --model $DEMO/runs/sft/final --chat --prompt '寿司について教えてください。' --max-new-tokens {recipe['generation_tokens']}",
        "jft chat --model $DEMO/runs/sft/final",
        "",
        "# 5. export the LoRA model",
        "jft export --base $DEMO/runs/cpt/final --adapter $DEMO/runs/lora/final --output $DEMO/models/lora-merged",
        "",
        "# all of it again, into a new directory",
        "jft demo --output-dir jft-demo-2" + (" --quick" if recipe.get("quick") else ""),
    ]
    return "\n".join(lines)


def gpu_commands() -> str:
    return "\n".join([
        "# run from a checkout of the repository (the recipes are in configs/)",
        "jft doctor --model Qwen/Qwen2.5-0.5B",
        "hf download Qwen/Qwen2.5-0.5B --local-dir models/Qwen2.5-0.5B   # or: huggingface-cli download ...",
        "",
        "# corpus: LLM-jp Corpus v3 ja_wiki (14 train files + validation), tokenized with Qwen's tokenizer",
        "jft download-corpus ja_wiki --output-dir data/ja_wiki_raw",
        "jft prepare-corpus data/ja_wiki_raw/train_*.jsonl.gz --tokenizer models/Qwen2.5-0.5B --output-prefix data/ja_wiki "
        "--filter --workers 16",
        "jft prepare-corpus data/ja_wiki_raw/validation_0.jsonl.gz --tokenizer models/Qwen2.5-0.5B "
        "--output-prefix data/ja_wiki_val --filter",
        "",
        "# continual pre-training (1000 steps x 64 x 2048 tokens, bf16)",
        "jft train cpt --config configs/qwen2.5-0.5b-cpt.yaml model.name_or_path=models/Qwen2.5-0.5B",
        "jft status runs/qwen2.5-0.5b-cpt --watch      # from another terminal",
        "",
        "# Q&A pairs from the same articles, then full SFT or LoRA from the CPT model",
        "# (--exclude-squad keeps the JSQuAD evaluation articles out of training)",
        "jft build-qa data/ja_wiki_raw/train_*.jsonl.gz --output-dir data/qa --exclude-squad data/jglue/jsquad-valid-v1.3.json",
        "jft train sft --config configs/qwen2.5-0.5b-sft.yaml model.name_or_path=runs/qwen2.5-0.5b-cpt/final "
        "data.train=data/qa/training.jsonl data.validation=data/qa/validation.jsonl",
        "jft train lora --config configs/qwen2.5-0.5b-lora.yaml model.name_or_path=runs/qwen2.5-0.5b-cpt/final "
        "data.train=data/qa/training.jsonl data.validation=data/qa/validation.jsonl",
        "",
        "# evaluation: JSQuAD, JCommonsenseQA, ja_wiki perplexity (paths in configs/evals-jglue.yaml)",
        "jft eval suite --model models/Qwen2.5-0.5B --config configs/evals-jglue.yaml --label base --output results/base.json",
        "jft eval suite --model runs/qwen2.5-0.5b-cpt/final --config configs/evals-jglue.yaml --label cpt --output results/cpt.json",
        "jft eval suite --model runs/qwen2.5-0.5b-sft/final --config configs/evals-jglue.yaml --label cpt+sft --output results/sft.json",
        "jft eval suite --model runs/qwen2.5-0.5b-cpt/final --adapter runs/qwen2.5-0.5b-lora/final "
        "--config configs/evals-jglue.yaml --label cpt+lora --output results/lora.json",
        "jft compare results/base.json results/cpt.json results/sft.json results/lora.json --chart results/compare.png",
        "",
        "# export the LoRA model and try it",
        "jft export --base runs/qwen2.5-0.5b-cpt/final --adapter runs/qwen2.5-0.5b-lora/final --output runs/qwen2.5-0.5b-lora-merged",
        "jft generate --model runs/qwen2.5-0.5b-lora-merged --chat --prompt '日本で一番長い川は何ですか？'",
    ])


def write_report(root: Path, manifest: dict) -> dict:
    from japanese_ft.demo.pipeline import MODELS

    root = Path(root)
    plots = root / "plots"
    plots.mkdir(parents=True, exist_ok=True)
    plot_loss_curves(root, plots / "loss_curves.png")
    labels = [l for l in MODELS if f"eval-{l}" in manifest["stages"]]
    if labels:
        plot_metrics(root, labels, plots / "metrics.png")
    blocks = build_blocks(root, manifest)
    md = to_markdown(blocks)
    page = to_html(blocks, root, f"jft demo report ({manifest['run_id']})")
    for name, text in (("report.md", md), ("report.html", page)):
        tmp = root / f"{name}.tmp"
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, root / name)
    return {"report_md": str(root / "report.md"), "report_html": str(root / "report.html"),
            "plots": sorted(str(p) for p in plots.glob("*.png"))}
