"""eval jsquad / jcommonsenseqa / perplexity / suite, compare, generate and chat glue.

Each evaluation loads the model (and adapter), runs the library function, writes
`--output FILE.json` (scores + model info) and `FILE.examples.jsonl`, and prints a summary.
"""

from __future__ import annotations

import time
from pathlib import Path

from japanese_ft.errors import UserError
from japanese_ft.ui import console, count_progress, out, quiet_libraries, summary_table


def _load(model, adapter, device, dtype, allow_base_mismatch=False):
    from japanese_ft.eval.loading import load_for_inference

    quiet_libraries()
    t0 = time.perf_counter()
    with console.status(f"loading {model}" + (f" + {adapter}" if adapter else "")):
        m, tok = load_for_inference(model, adapter, device=device, dtype=dtype, allow_base_mismatch=allow_base_mismatch)
    console.print(f"loaded {model}" + (f" + adapter {adapter}" if adapter else "") + f" in {time.perf_counter() - t0:.1f} s",
                  highlight=False)
    return m, tok


def _check_positive(**values):
    for name, v in values.items():
        if v is not None and v < 1:
            raise UserError(f"--{name.replace('_', '-')} must be >= 1, got {v}")


def _batch_size(value) -> int | str:
    """--batch-size: "auto" (sized from free GPU memory) or an integer >= 1."""
    if isinstance(value, int) or str(value).isdigit():
        _check_positive(batch_size=int(value))
        return int(value)
    if value != "auto":
        raise UserError(f"--batch-size must be auto or an integer >= 1, got {value!r}")
    return value


def _finish(task, summary, records, output, model, adapter, m, tok, label, settings):
    from japanese_ft.eval.common import examples_path, write_json_atomic, write_jsonl_atomic
    from japanese_ft.eval.loading import default_label, model_info

    label = label or default_label(model, adapter)
    result = {**summary, "label": label, "model_info": model_info(m, tok, model, adapter), "settings": settings}
    output = Path(output) if output else Path("results") / f"{label}-{task}.json"
    write_json_atomic(output, result)
    ex = examples_path(output)
    write_jsonl_atomic(ex, records)
    return result, output, ex


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v)


def _print_summary(title, result, keys, output, ex):
    rows = [(k, _fmt(result.get(k))) for k in keys if k in result and result.get(k) is not None]
    rows += [("model", result["model_info"]["model"] + (f" + {result['model_info']['adapter']}" if result["model_info"]["adapter"] else "")),
             ("results", str(output)), ("examples", str(ex))]
    summary_table(title, rows)


def _jsquad(m, tok, data, limit, shots, shots_file, batch_size, max_new_tokens, seed, strip_title):
    from japanese_ft.eval.jsquad import evaluate_jsquad, read_shots, read_squad

    items, skipped = read_squad(data, strip_title=strip_title)
    pool = read_shots(shots_file, strip_title) if shots_file else None
    todo = items[:limit] if limit else items
    with count_progress("jsquad", len(todo)) as update:
        summary, records = evaluate_jsquad(m, tok, todo, shots=shots, shot_pool=pool, pool_items=items,
                                           batch_size=batch_size, max_new_tokens=max_new_tokens, seed=seed,
                                           progress=update)
    summary["skipped_unanswerable"] = skipped
    summary["data"] = str(data)
    return summary, records


def _jcqa(m, tok, data, limit, shots, batch_size, max_new_tokens, seed, generation=True):
    from japanese_ft.eval.jcommonsenseqa import evaluate_jcommonsenseqa, read_jcommonsenseqa

    items = read_jcommonsenseqa(data)
    todo = items[:limit] if limit else items
    with count_progress("jcommonsenseqa", len(todo)) as update:
        summary, records = evaluate_jcommonsenseqa(m, tok, todo, shots=shots, pool_items=items, batch_size=batch_size,
                                                   max_new_tokens=max_new_tokens, seed=seed, generation=generation,
                                                   progress=update)
    summary["data"] = str(data)
    return summary, records


def _ppl(m, tok, data, limit, batch_size, seq_length, stride, text_key):
    from japanese_ft.eval.perplexity import evaluate_perplexity

    return evaluate_perplexity(m, tok, data, seq_length=seq_length, stride=stride, batch_size=batch_size, limit=limit,
                               text_key=text_key, progress_factory=count_progress)


JSQUAD_KEYS = ["char_f1", "exact_match", "char_f1_best_gold", "n", "shots", "skipped_unanswerable", "questions_per_s", "seconds"]
JCQA_KEYS = ["accuracy", "accuracy_generation", "n", "shots", "seconds"]
PPL_KEYS = ["tokens", "characters", "documents", "nll", "perplexity", "bits_per_char", "seq_length", "stride", "windows", "tokens_per_s"]


def run_eval_jsquad(model, adapter, data, output, limit, shots, shots_file, batch_size, max_new_tokens, seed,
                    device, dtype, label, strip_title, allow_base_mismatch):
    from japanese_ft.eval.jsquad import read_squad

    batch_size = _batch_size(batch_size)
    _check_positive(limit=limit, max_new_tokens=max_new_tokens)
    if shots < 0:
        raise UserError(f"--shots must be >= 0, got {shots}")
    read_squad(data)  # fail on bad data before the (slow) model load
    if shots_file:
        from japanese_ft.eval.jsquad import read_shots

        read_shots(shots_file)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    summary, records = _jsquad(m, tok, data, limit, shots, shots_file, batch_size, max_new_tokens, seed, strip_title)
    settings = {"shots_file": str(shots_file) if shots_file else None, "seed": seed, "strip_title": strip_title}
    result, output, ex = _finish("jsquad", summary, records, output, model, adapter, m, tok, label, settings)
    _print_summary("jsquad (llm-jp-eval prompt, greedy)", result, JSQUAD_KEYS, output, ex)
    return result


def run_eval_jcqa(model, adapter, data, output, limit, shots, batch_size, max_new_tokens, seed, device, dtype, label,
                  no_generation, allow_base_mismatch):
    from japanese_ft.eval.jcommonsenseqa import read_jcommonsenseqa

    _check_positive(limit=limit, batch_size=batch_size, max_new_tokens=max_new_tokens)
    if shots < 0:
        raise UserError(f"--shots must be >= 0, got {shots}")
    read_jcommonsenseqa(data)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    summary, records = _jcqa(m, tok, data, limit, shots, batch_size, max_new_tokens, seed, not no_generation)
    result, output, ex = _finish("jcommonsenseqa", summary, records, output, model, adapter, m, tok, label, {"seed": seed})
    _print_summary("jcommonsenseqa (accuracy = length-normalized log-likelihood ranking)", result, JCQA_KEYS, output, ex)
    return result


def run_eval_perplexity(model, adapter, data, output, limit, batch_size, seq_length, stride, text_key, device, dtype,
                        label, allow_base_mismatch):
    _check_positive(limit=limit, batch_size=batch_size, seq_length=seq_length, stride=stride)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    summary, records = _ppl(m, tok, [str(d) for d in data], limit, batch_size, seq_length, stride, text_key)
    result, output, ex = _finish("perplexity", summary, records, output, model, adapter, m, tok, label, {})
    _print_summary("perplexity", result, PPL_KEYS, output, ex)
    return result


def run_eval_suite(model, adapter, config, output, limit, device, dtype, label, allow_base_mismatch):
    from japanese_ft.eval.common import examples_path, write_json_atomic, write_jsonl_atomic
    from japanese_ft.eval.loading import default_label, model_info
    from japanese_ft.eval.suite import load_suite_config

    _check_positive(limit=limit)
    entries = load_suite_config(config)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    label = label or default_label(model, adapter)
    output = Path(output) if output else Path("results") / f"{label}-suite.json"
    stem = output.name[:-5] if output.name.endswith(".json") else output.name
    results, files = {}, {}
    for e in entries:
        lim = limit or e.get("limit")
        bs = e.get("batch_size", 8)
        seed = e.get("seed", 0)
        console.print(f"[bold]{e['name']}[/] ({e['task']}, {e['data']})", highlight=False)
        if e["task"] == "jsquad":
            s, recs = _jsquad(m, tok, e["data"], lim, e.get("shots", 0), e.get("shots_file"), bs,
                              e.get("max_new_tokens", 25), seed, bool(e.get("strip_title", False)))
        elif e["task"] == "jcommonsenseqa":
            s, recs = _jcqa(m, tok, e["data"], lim, e.get("shots", 0), bs, e.get("max_new_tokens", 1), seed,
                            bool(e.get("generation", True)))
        else:
            s, recs = _ppl(m, tok, [e["data"]], lim, bs, e.get("seq_length", 2048), e.get("stride"), e.get("text_key", "text"))
        ex = output.with_name(f"{stem}.{e['name']}.examples.jsonl")
        write_jsonl_atomic(ex, recs)
        results[e["name"]] = s
        files[e["name"]] = str(ex)
    result = {"task": "suite", "label": label, "config": str(config), "results": results, "examples": files,
              "model_info": model_info(m, tok, model, adapter)}
    write_json_atomic(output, result)
    rows = []
    from japanese_ft.eval.compare import HEADLINE

    for name, s in results.items():
        for metric, _ in HEADLINE[s["task"]]:
            if s.get(metric) is not None:
                rows.append((f"{name}.{metric}", _fmt(s[metric])))
        rows.append((f"{name}.n", str(s.get("n", s.get("tokens")))))
    rows.append(("results", str(output)))
    summary_table(f"suite {config} - {label}", rows)
    return result


def run_compare(results, labels, chart):
    from rich.table import Table

    from japanese_ft.eval.compare import bar_chart, compare, format_table

    res = compare([str(r) for r in results], labels or None)
    table = Table(title="compare", title_justify="left")
    table.add_column("metric", style="bold cyan")
    for lab in res["labels"]:
        table.add_column(lab, justify="right")
    if len(res["labels"]) > 1:
        table.add_column(f"{res['labels'][-1]} vs {res['labels'][0]}")
    for row in format_table(res):
        table.add_row(*(row if len(res["labels"]) > 1 else row[:-1]))
    out.print(table)
    chart = Path(chart) if chart else Path(str(results[-1])).with_name("compare.png")
    bar_chart(res, chart)
    out.print(f"chart: {chart}", highlight=False)
    return res


def run_generate(model, adapter, prompt, chat, max_new_tokens, temperature, top_p, seed, system, device, dtype,
                 allow_base_mismatch):
    from japanese_ft.eval.generation import generate_text

    _check_positive(max_new_tokens=max_new_tokens)
    if temperature < 0:
        raise UserError(f"--temperature must be >= 0, got {temperature}")
    if not 0 < top_p <= 1:
        raise UserError(f"--top-p must be in (0, 1], got {top_p}")
    if prompt == "-":
        import sys

        prompt = sys.stdin.read()
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    res = generate_text(m, tok, prompt, chat=chat, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                        seed=seed, system=system)
    out.print(res.text, highlight=False, markup=False, soft_wrap=True)
    console.print(f"({res.tokens} tokens, {'stopped' if res.stopped else 'hit --max-new-tokens'})", highlight=False)
    return res


def run_chat(model, adapter, system, max_new_tokens, temperature, top_p, seed, device, dtype, allow_base_mismatch):
    from japanese_ft.eval.generation import ChatSession, run_repl

    _check_positive(max_new_tokens=max_new_tokens)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    session = ChatSession(m, tok, system=system, max_new_tokens=max_new_tokens, temperature=temperature, top_p=top_p,
                          seed=seed)

    def write(text):
        out.print(text, highlight=False, markup=False, soft_wrap=True)

    return run_repl(session, read=input, write=write)
