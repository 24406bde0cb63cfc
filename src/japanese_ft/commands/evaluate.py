"""eval jsquad / jcommonsenseqa / perplexity / suite, compare, generate and chat glue.

Each evaluation loads the model (and adapter), runs the library function, writes
`--output FILE.json` (scores + model info) and `FILE.examples.jsonl`, and prints a summary.
"""

from __future__ import annotations

import sys
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
    from japanese_ft.eval.common import examples_path
    from japanese_ft.eval.loading import default_label, model_info
    from japanese_ft.files import write_json, write_jsonl

    label = label or default_label(model, adapter)
    result = {**summary, "label": label, "model_info": model_info(m, tok, model, adapter), "settings": settings}
    output = Path(output) if output else Path("results") / f"{label}-{task}.json"
    write_json(output, result)
    ex = examples_path(output)
    write_jsonl(ex, records)
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


def _jsquad(m, tok, data, limit, shots, shots_file, batch_size, max_new_tokens, seed, strip_title, chat=False,
            protocol="jft"):
    from japanese_ft.eval.suite import JsquadEntry

    entry = JsquadEntry(data=str(data), name="jsquad", shots=shots, shots_file=shots_file, limit=limit,
                        batch_size=batch_size, max_new_tokens=max_new_tokens, seed=seed, strip_title=strip_title,
                        chat=chat, protocol=protocol)  # settings already resolved (eval/protocol.py) by the caller
    return entry.run(m, tok, count_progress)


def _jcqa(m, tok, data, limit, shots, batch_size, max_new_tokens, seed, generation=True, chat=False, protocol="jft",
          shots_file=None):
    from japanese_ft.eval.suite import JcommonsenseqaEntry

    entry = JcommonsenseqaEntry(data=str(data), name="jcommonsenseqa", shots=shots, shots_file=shots_file, limit=limit,
                                batch_size=batch_size, max_new_tokens=max_new_tokens, seed=seed, generation=generation,
                                chat=chat, protocol=protocol)
    return entry.run(m, tok, count_progress)


def _ppl(m, tok, data, limit, batch_size, seq_length, stride, text_key):
    from japanese_ft.eval.perplexity import evaluate_perplexity

    return evaluate_perplexity(m, tok, data, seq_length=seq_length, stride=stride, batch_size=batch_size, limit=limit,
                               text_key=text_key, progress_factory=count_progress)


JSQUAD_KEYS = ["char_f1", "exact_match", "char_f1_best_gold", "n", "format", "protocol", "shots", "skipped_unanswerable",
               "questions_per_s", "seconds"]
JCQA_KEYS = ["accuracy", "accuracy_generation", "n", "format", "protocol", "shots", "seconds"]
PPL_KEYS = ["tokens", "characters", "documents", "nll", "perplexity", "bits_per_char", "seq_length", "stride", "windows", "tokens_per_s"]


def run_eval_jsquad(model, adapter, data, output, limit, shots, shots_file, batch_size, max_new_tokens, seed,
                    device, dtype, label, strip_title, allow_base_mismatch, chat=False, protocol="jft"):
    from japanese_ft.eval.jsquad import read_shots, read_squad
    from japanese_ft.eval.protocol import resolve

    batch_size = _batch_size(batch_size)
    _check_positive(limit=limit)
    p = resolve("jsquad", protocol, shots, shots_file, seed, max_new_tokens, chat, data=data, strip_title=strip_title)
    read_squad(data)  # fail on bad data before the (slow) model load
    if shots_file:
        read_squad(shots_file) if protocol == "llm-jp-eval" else read_shots(shots_file)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    summary, records = _jsquad(m, tok, data, limit, p["shots"], shots_file, batch_size, p["max_new_tokens"], p["seed"],
                               strip_title, p["chat"], protocol)
    settings = {"shots_file": str(shots_file) if shots_file else None, "seed": p["seed"], "strip_title": strip_title,
                "format": p["format"], "protocol": protocol}
    result, output, ex = _finish("jsquad", summary, records, output, model, adapter, m, tok, label, settings)
    _print_summary(f"jsquad ({p['format']} llm-jp-eval prompt, {protocol} protocol, greedy)", result, JSQUAD_KEYS, output, ex)
    return result


def run_eval_jcqa(model, adapter, data, output, limit, shots, batch_size, max_new_tokens, seed, device, dtype, label,
                  no_generation, allow_base_mismatch, chat=False, protocol="jft", shots_file=None):
    from japanese_ft.eval.jcommonsenseqa import read_jcommonsenseqa
    from japanese_ft.eval.protocol import resolve

    _check_positive(limit=limit, batch_size=batch_size)
    p = resolve("jcommonsenseqa", protocol, shots, shots_file, seed, max_new_tokens, chat, data=data,
                generation=not no_generation)
    read_jcommonsenseqa(data)
    if shots_file:
        read_jcommonsenseqa(shots_file)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    summary, records = _jcqa(m, tok, data, limit, p["shots"], batch_size, p["max_new_tokens"], p["seed"],
                             not no_generation, p["chat"], protocol, shots_file)
    settings = {"seed": p["seed"], "format": p["format"], "protocol": protocol,
                "shots_file": str(shots_file) if shots_file else None}
    result, output, ex = _finish("jcommonsenseqa", summary, records, output, model, adapter, m, tok, label, settings)
    _print_summary(f"jcommonsenseqa (accuracy = raw log-likelihood ranking; accuracy_generation = {p['format']} prompt, "
                   f"{protocol} protocol)", result, JCQA_KEYS, output, ex)
    return result


def run_eval_perplexity(model, adapter, data, output, limit, batch_size, seq_length, stride, text_key, device, dtype,
                        label, allow_base_mismatch):
    _check_positive(limit=limit, batch_size=batch_size, seq_length=seq_length, stride=stride)
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    summary, records = _ppl(m, tok, [str(d) for d in data], limit, batch_size, seq_length, stride, text_key)
    result, output, ex = _finish("perplexity", summary, records, output, model, adapter, m, tok, label, {})
    _print_summary("perplexity", result, PPL_KEYS, output, ex)
    return result


def run_eval_suite(model, adapter, config, output, limit, device, dtype, label, allow_base_mismatch, batch_size=None):
    from japanese_ft.eval.loading import default_label
    from japanese_ft.eval.suite import headline_rows, load_suite_config, run_suite

    _check_positive(limit=limit, batch_size=batch_size)
    entries = load_suite_config(config)  # protocol/option conflicts fail here, before the model load
    m, tok = _load(model, adapter, device, dtype, allow_base_mismatch)
    label = label or default_label(model, adapter)
    output = Path(output) if output else Path("results") / f"{label}-suite.json"
    result = run_suite(m, tok, entries, output, model_dir=model, adapter_dir=adapter, label=label, config=config,
                       limit=limit, batch_size=batch_size, progress_factory=count_progress,
                       log=lambda msg: console.print(msg, style="bold", markup=False, highlight=False))
    rows = [(k, _fmt(v)) for k, v in headline_rows(result)] + [("results", str(output))]
    summary_table(f"suite {config} - {label}", rows)
    return result


def run_compare(results, labels, chart, output=None):
    from rich.markup import escape
    from rich.table import Table

    from japanese_ft.eval.compare import bar_chart, compare, format_table
    from japanese_ft.files import write_json

    res = compare([str(r) for r in results], labels or None)
    if output:
        write_json(output, {**res, "results": [str(r) for r in results]})
    table = Table(title="compare", title_justify="left")
    table.add_column("metric", style="bold cyan")
    table.add_column("format")
    for lab in res["labels"]:
        table.add_column(escape(lab), justify="right")
    if len(res["labels"]) > 1:
        table.add_column(escape(f"{res['labels'][-1]} vs {res['labels'][0]}"))
    for row in format_table(res):
        table.add_row(*(escape(c) for c in (row if len(res["labels"]) > 1 else row[:-1])))
    out.print(table)
    chart = Path(chart) if chart else Path(str(results[-1])).with_name("compare.png")
    bar_chart(res, chart)
    out.print(f"chart: {chart}" + (f"\ntable: {output}" if output else ""), highlight=False)
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
                        seed=seed, system=system, on_text=_stream_out)
    _stream_out("\n")
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

    interactive = sys.stdin.isatty()
    return run_repl(session, read=input if interactive else _read_line, write=write, stream=_stream_out,
                    interactive=interactive)


def _stream_out(piece: str) -> None:
    """Generated text to stdout as it arrives (unbuffered, no console markup or wrapping)."""
    out.file.write(piece)
    out.file.flush()


def _read_line(_prompt: str) -> str:
    """input() without a prompt, for piped stdin."""
    line = sys.stdin.readline()
    if not line:
        raise EOFError
    return line
