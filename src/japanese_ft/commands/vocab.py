"""extend-vocab glue: options in, library call, one-screen summary out."""

from __future__ import annotations

from japanese_ft.ui import console, quiet_libraries, summary_table


def run_extend_vocab(model, corpus, add, output, seed, min_frequency, init, heldout, max_chars, report, text_key) -> dict:
    import time

    quiet_libraries()
    from japanese_ft.model.vocab import extend_vocab

    start = time.time()

    def say(msg: str) -> None:
        console.print(f"[dim]{time.time() - start:6.1f}s[/] {msg}", highlight=False)

    info = extend_vocab(model, corpus, add, output, seed=seed, min_frequency=min_frequency, init=init, heldout=heldout,
                        max_chars=max_chars or None, report=report, text_key=text_key, say=say)
    for example in info["corpus"]["malformed_examples"]:
        console.print(f"[yellow]malformed line[/] {example}", highlight=False)
    cpt, corpus_info, merges = info["chars_per_token"], info["corpus"], info["merges"]
    ja, en = cpt["japanese"], cpt["english"]
    top = ", ".join(f"{t['token']}({t['count']})" for t in cpt["top_new_tokens"]) or "-"
    sampled = f", sampled from {corpus_info['documents']:,}" if corpus_info["sampled"] else ""
    rows = [
        ("tokens added", f"{info['added_tokens']:,} of {info['requested_tokens']:,} requested "
                         f"(ids {info['first_new_id']:,}-{info['tokenizer_size'] - 1:,})"),
        ("tokenizer", f"{info['base_tokenizer_size']:,} -> {info['tokenizer_size']:,} tokens"),
        ("embedding rows", f"{info['embedding_rows']['before']:,} -> {info['embedding_rows']['after']:,} "
                           f"({'tied' if info['tied_embeddings'] else 'untied'}, new rows = mean of their base tokens)"),
        ("Japanese chars/token", f"{ja['before']:.3f} -> {ja['after']:.3f} ({ja['after'] / ja['before']:.2f}x) "
                                 f"on {ja['characters']:,} held-out characters"),
        ("English chars/token", f"{en['before']:.3f} -> {en['after']:.3f}"),
        ("corpus", f"{corpus_info['used_documents']:,} documents{sampled}, {corpus_info['characters']:,} characters, "
                   f"{corpus_info['malformed_lines']:,} malformed lines"),
        ("merges", f"{merges['appended']:,} appended ({merges['learned']:,} learned; dropped: {merges['not_japanese']:,} "
                   f"not Japanese, {merges['unreachable']:,} unreachable, {merges['already_merged']:,} already merged)"),
        ("top new tokens", top),
        ("time", f"{info['seconds']:.1f} s"),
        ("report", f"{output}/vocab_extension.json" + (f", {report}" if report else "")),
    ]
    summary_table(f"extend-vocab -> {output}", rows)
    if info["added_tokens"] < info["requested_tokens"]:
        console.print("[yellow]warning:[/] fewer tokens than requested: the corpus has no more pairs at "
                      f"--min-frequency {min_frequency}", highlight=False)
    console.print("Next: continual pre-training (jft train cpt) so the new rows learn; see docs/training.md.", highlight=False)
    return info
