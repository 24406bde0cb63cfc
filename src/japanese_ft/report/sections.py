"""The report's sections: one function per section, each `ReportData -> list of blocks`.

Sections that need the run's manifest (stage times, data statistics, commands) return nothing
when the report is written from explicit inputs only (`jft report` without `--manifest`).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from japanese_ft.report.blocks import Bullets, Code, H, Image, P, Table
from japanese_ft.report.inputs import QWEN25_05B_PARAMETERS, ReportData, environment


def _f(v, nd=3) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, float):
        return f"{v:,.{nd}f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def _secs(v) -> str:
    return "-" if v is None else f"{v:.1f} s"


def one_line(text: str, limit: int = 120) -> str:
    """A generation as one short table cell: whitespace runs (newlines included) become one
    space or one ⏎, so a mostly blank output never makes a tall cell."""
    t = re.sub(r"[ \t\u3000]+", " ", text)
    t = re.sub(r"\s*\n[\s\n]*", " ⏎ ", t).strip(" ⏎")
    if not t:
        return "(empty: the model stopped at once)" if not text else "(only whitespace)"
    return t if len(t) <= limit else t[:limit] + "…"


def _rel(path, d: ReportData) -> str:
    """A path relative to the run's work directory when it lies inside it."""
    if not path:
        return "-"
    root = (d.manifest or {}).get("workdir")
    p = os.path.realpath(str(path))
    if root and p.startswith(os.path.realpath(root) + os.sep):
        return os.path.relpath(p, os.path.realpath(root))
    return str(path)


def _machine(env: dict) -> str:
    threads = f", {env['torch_threads']} torch threads" if env.get("torch_threads") else ""
    gpus = f", GPUs: {', '.join(env['gpus'])}" if env.get("gpus") else ", no GPU"
    return f"{env.get('platform', '?')}, {env.get('cpu_cores', '?')} CPU cores{threads}{gpus}"


def section_header(d: ReportData) -> list:
    blocks = [H(1, d.title)]
    m = d.manifest
    if m is None:
        blocks.append(P(f"Written by `jft report` from {len(d.runs)} training run(s) and {len(d.results)} evaluation "
                        "result(s)."))
        return blocks
    recipe = m.get("recipe", {})
    if recipe.get("description"):
        blocks.append(P(recipe["description"].strip()))
    own = [s.get("seconds") or 0 for n, s in d.stages().items() if s.get("kind") != "report"]
    blocks.append(P(
        f"Recipe `{recipe.get('name')}` (`{recipe.get('file')}`), work directory `{m.get('workdir')}`, started "
        f"{m.get('created')}. The {len(own)} stages before this report took **{sum(own):.1f} s** of their own time "
        f"(each stage's wall time, summed; the report's own time is in `jft status`) on "
        f"{_machine(m.get('environment') or {})}."))
    return blocks


def _compare_table(d: ReportData):
    from japanese_ft.eval.compare import compare, fmt_value, metric_label

    scored = [r for r in d.results if any(s.get("task") != "generate" for s in r.results.values())]
    if not scored:
        return None, None
    res = compare([str(r.path) for r in scored], [r.label for r in scored])
    header = ["model"] + [" ".join(metric_label(m)) + ("" if res["higher"].get(m, True) else " ↓") for m in res["metrics"]]
    rows = [[lab] + [("-" if res["table"][m][i] is None else fmt_value(res["table"][m][i])) for m in res["metrics"]]
            for i, lab in enumerate(res["labels"])]
    return Table(header, rows, "l" + "r" * len(res["metrics"])), res


def section_results(d: ReportData) -> list:
    from japanese_ft.eval.compare import fmt_value, metric_label

    table, res = _compare_table(d)
    if table is None:
        return []
    blocks = [H(2, "Results at a glance"), table]
    if "metrics" in d.plots:
        blocks.append(Image(d.plots["metrics"], "metrics per model"))
    if len(res["labels"]) > 1:
        items = []
        for m in res["metrics"]:
            v = res["table"][m]
            present = [i for i, x in enumerate(v) if x is not None]
            if len(present) < 2 or v[0] is None:
                continue
            pick = max if res["higher"].get(m, True) else min
            best = pick(present, key=lambda i: v[i])
            if v[best] == v[0]:
                items.append(f"{' '.join(metric_label(m))}: no model improves on {res['labels'][0]} ({fmt_value(v[0])})")
                continue
            change = "" if v[0] == 0 else f", {100 * (v[best] / v[0] - 1):+.1f} %"
            items.append(f"{' '.join(metric_label(m))}: best {res['labels'][best]} {fmt_value(v[best])} "
                         f"({res['labels'][0]} {fmt_value(v[0])}{change})")
        blocks.append(P(f"**Best model per metric, against {res['labels'][0]}:**"))
        blocks.append(Bullets(items))
    blocks.append(P("↓ = lower is better (perplexity, bits per character); higher is better for char-F1, exact match "
                    "and accuracy. Bits per character do not depend on the tokenizer, so they compare models with "
                    "different vocabularies."))
    return blocks


def section_stages(d: ReportData) -> list:
    if d.manifest is None:
        return []
    rows = []
    for i, (name, st) in enumerate(d.stages().items(), 1):
        when = "(this report)" if st.get("kind") == "report" and st.get("status") != "done" else _secs(st.get("seconds"))
        rows.append([i, name, st.get("kind"), st.get("title") or "", when, st.get("status", "-")])
    return [H(2, "Stages"), Table(["#", "stage", "kind", "what", "time", "status"], rows, "rlllrl"),
            P("Times are each stage's own wall time. A stage that was up to date in a later `jft run` keeps the "
              "time of the run that made it. Logs: `logs/STAGE.log`; the manifest: `jft-run.json`.")]


def _by_kind(d: ReportData, kind: str) -> list:
    return [(n, s) for n, s in d.stages().items() if s.get("kind") == kind and s.get("summary")]


def section_data(d: ReportData) -> list:
    blocks = []
    for name, st in _by_kind(d, "train-tokenizer"):
        s = st["summary"]
        blocks.append(P(f"`{name}`: a byte-level BPE tokenizer with **{_f(s.get('vocab_size'))} tokens** trained with the "
                        f"Hugging Face `tokenizers` library on {_f(s.get('characters'))} characters (special tokens "
                        f"{', '.join(f'`{t}`' for t in s.get('special_tokens', []))}; ChatML chat template)."))
    for name, st in _by_kind(d, "download-corpus"):
        s = st["summary"]
        blocks.append(P(f"`{name}`: {s.get('files')} file(s), {_f(s.get('bytes'))} bytes of `{s.get('corpus')}`."))
    rows = []
    for name, st in _by_kind(d, "prepare-corpus"):
        s = st["summary"]
        dropped = ", ".join(f"{k} {v}" for k, v in (s.get("dropped") or {}).items()) or "none"
        rows.append([name, s.get("inputs", ""), s.get("documents_in"), s.get("documents_written"), dropped,
                     _f(s.get("tokens")), _f(s.get("characters")), _f(s.get("chars_per_token"), 2)])
    if rows:
        blocks.append(Table(["token files", "input", "docs in", "docs written", "dropped", "tokens", "characters",
                             "chars/token"], rows, "llrrlrrr"))
    for name, st in _by_kind(d, "build-qa"):
        s = st["summary"]
        kinds = ", ".join(f"{k} {v}" for k, v in (s.get("pairs") or {}).items() if v)
        blocks.append(P(f"`{name}` (build-qa): {s.get('articles_used')} of {s.get('articles_in')} articles gave "
                        f"{s.get('training_pairs')} training and {s.get('validation_pairs')} validation question/answer "
                        f"pairs ({kinds})."))
    for name, st in _by_kind(d, "convert-squad"):
        s = st["summary"]
        blocks.append(P(f"`{name}` (convert-squad): {s.get('written')} records from {s.get('questions')} SQuAD-format "
                        f"questions ({s.get('unanswerable_skipped', 0)} unanswerable skipped)."))
    return [H(2, "Data")] + blocks if blocks else []


def section_models(d: ReportData) -> list:
    rows, seen = [], set()
    for r in d.results:
        mi = r.model_info
        key = (mi.get("model"), mi.get("adapter"))
        if key in seen or not mi:
            continue
        seen.add(key)
        rows.append([r.label, _rel(mi.get("model"), d), _rel(mi.get("adapter"), d) if mi.get("adapter") else "-",
                     _f(mi.get("parameters")), mi.get("dtype", "-")])
    if not rows:
        return []
    blocks = [H(2, "Models"), Table(["label", "model", "adapter", "parameters", "dtype"], rows, "lllrl")]
    largest = max((r.model_info.get("parameters") or 0 for r in d.results), default=0)
    if largest:
        ratio = QWEN25_05B_PARAMETERS / largest
        size = (f"{ratio:,.0f} times fewer than" if ratio >= 1.5 else
                f"{1 / ratio:,.1f} times as many as" if ratio < 1 / 1.5 else "about as many as")
        blocks.append(P(f"The largest model here has {largest:,} parameters: {size} Qwen2.5-0.5B "
                        f"({QWEN25_05B_PARAMETERS:,}), the model of the GPU recipe."))
    return blocks


def section_training(d: ReportData) -> list:
    if not d.runs:
        return []
    rows = []
    for r in d.runs:
        params = f"{_f(r.trainable)} / {_f(r.total)}" if r.trainable else "-"
        rows.append([r.name, r.mode or "?", f"{r.steps} / {r.max_steps or '?'}", _f(r.tokens), _f(r.loss, 3),
                     _f(r.val_loss, 3), params, _f(r.tokens_per_s, 0), _secs(r.seconds)])
    blocks = [H(2, "Training"),
              Table(["run", "mode", "steps", "tokens", "final train loss", "final val loss", "trainable / total params",
                     "tokens/s", "time"], rows, "llrrrrrrr")]
    if "loss" in d.plots:
        blocks.append(Image(d.plots["loss"], "loss curves per training run"))
    blocks.append(P("Each run's directory holds `metrics.jsonl` (one line per step, plus validation lines), TensorBoard "
                    "events, `training_curve.png` and `final/`; `jft status RUN_DIR` summarises it."))
    return blocks


def _jsquad_examples(d: ReportData) -> list:
    for r in reversed(d.results):
        for name, s in r.results.items():
            path = r.examples.get(name)
            if s.get("task") != "jsquad" or not path or not Path(path).exists():
                continue
            recs = [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()[:4]]
            rows = [[x["prompt"].rsplit("質問：", 1)[-1].split("\n")[0][:80], x["gold"], one_line(x["prediction"], 60),
                     _f(x["char_f1"], 2)] for x in recs]
            return [P(f"First questions of `{name}` answered by `{r.label}`:"),
                    Table(["question", "gold", "prediction", "char-F1"], rows, "lllr")]
    return []


def section_evaluation(d: ReportData) -> list:
    if not d.results:
        return []
    rows = []
    for r in d.results:
        tasks = ", ".join(f"{n} ({s.get('task')}, n={s.get('n', s.get('tokens'))})" for n, s in r.results.items())
        rows.append([r.label, tasks, _secs(r.seconds)])
    return [H(2, "Evaluation"), Table(["model", "evaluations", "time"], rows, "llr"),
            P("Perplexity and bits per character are computed in windows as in training (`jft eval perplexity`); JSQuAD "
              "uses llm-jp-eval's prompt, greedy decoding, character-level F1 and exact match (`jft eval jsquad`). "
              "Per-example files (`*.examples.jsonl`) lie beside each result.")] + _jsquad_examples(d)


def section_generations(d: ReportData) -> list:
    gens = [(r.label, s) for r in d.results for s in r.results.values() if s.get("task") == "generate"]
    if not gens:
        return []
    blocks = [H(2, "Sample generations"),
              P(f"Greedy decoding, at most {gens[0][1].get('max_new_tokens')} new tokens. Plain prompts are continued as "
                "text; chat prompts are one user turn in the model's chat template.")]
    prompts = []
    for _, s in gens:
        for o in s.get("outputs", []):
            if (o["prompt"], o["chat"]) not in prompts:
                prompts.append((o["prompt"], o["chat"]))
    for k, (text, chat) in enumerate(prompts, 1):
        blocks.append(P(f"**Prompt {k}** ({'chat turn' if chat else 'plain completion'}): `{one_line(text, 200)}`"))
        rows = [[label, one_line(o["output"])] for label, s in gens for o in s.get("outputs", [])
                if (o["prompt"], o["chat"]) == (text, chat)]
        blocks.append(Table(["model", "output"], rows, "ll"))
    return blocks


def _scores_of(d: ReportData, model, adapter) -> dict:
    real = lambda p: os.path.realpath(p) if p else None  # noqa: E731
    for r in d.results:
        mi = r.model_info
        if real(mi.get("model")) == real(model) and real(mi.get("adapter")) == real(adapter):
            return {f"{n}.{k}": v for n, s in r.results.items() for k, v in s.items() if k in ("perplexity", "char_f1")}
    return {}


def section_export(d: ReportData) -> list:
    blocks = []
    for name, st in _by_kind(d, "export"):
        s = st["summary"]
        text = (f"`{name}` merged adapter `{_rel(s.get('adapter'), d)}` into `{_rel(s.get('base'), d)}`: "
                f"`{_rel(s.get('output'), d)}` is a plain Hugging Face checkpoint ({_f(s.get('parameters'))} parameters, "
                f"{s.get('dtype')}) that loads without PEFT.")
        merged, adapted = _scores_of(d, s.get("output"), None), _scores_of(d, s.get("base"), s.get("adapter"))
        both = [k for k in merged if k in adapted and adapted[k]]
        if both:
            diff = max(abs(merged[k] - adapted[k]) / abs(adapted[k]) for k in both)
            text += (f" It scores what base + adapter scored ({', '.join(f'{k} {merged[k]:.4f} vs {adapted[k]:.4f}' for k in both)}"
                     f"; largest relative difference {diff:.1e}).")
        blocks.append(P(text))
    return [H(2, "Export")] + blocks if blocks else []


def section_environment(d: ReportData) -> list:
    env = (d.manifest or {}).get("environment") or environment()
    pkgs = ", ".join(f"{k} {v}" for k, v in env.get("packages", {}).items())
    return [H(2, "Environment"),
            Bullets([f"machine: {_machine(env)}", f"Python {env.get('python')}", f"packages: {pkgs or '-'}"])]


def section_reproduce(d: ReportData, command: str | None = None) -> list:
    m = d.manifest
    if m is None:
        return [H(2, "Reproduce"), P("This report was written by:"), Code(command or "jft report ...", "bash")]
    lines = ["# the whole run (stages that are up to date are skipped):", m.get("invocation", "jft run ..."), "",
             "# the same, stage by stage, as `jft run ... --dry-run` prints it:"]
    for name, st in m.get("stages", {}).items():
        if st.get("command"):
            lines += [f"# {name} ({st.get('kind')})", st["command"]]
    return [H(2, "Reproduce"), P("Every stage is one `jft` command; these are the commands of this run."),
            Code("\n".join(lines), "bash")]


SECTIONS = (section_header, section_results, section_stages, section_data, section_models, section_training,
            section_evaluation, section_generations, section_export, section_environment)
