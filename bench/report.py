"""Render bench/README.md (tables) and bench/results/*.png (plots) from bench/results/*.json.

    python bench/report.py
"""

from __future__ import annotations

import json

from _common import REPO, RESULTS, latency_columns, numpy_variant_note, rss_text, speed_rows, speed_rss_text

from lightweight_decoder.lineage import steps_in_all
from lightweight_decoder.quality import markdown_table

OUT = REPO / "bench" / "README.md"
_TAIL_IN_FIRST_ROUND = "2026-12-06 09"  # hybrid runs from then on judge the pool's tail with the first correction round


def _load(name: str) -> dict | None:
    path = RESULTS / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _machine(m: dict) -> str:
    return f"{m['cpu_count']} cores, torch {m['torch']}, bf16 instructions: {m['cpu_bf16']}, measured {m['date']}"


def encoder_section(res: dict) -> list[str]:
    rows = [{**r, "speedup": f"{r['speedup_vs_fp32']:.2f}x"} for r in res["results"]]
    return [
        f"## Encoder (Module 1), on a CPU {'with' if res['machine']['cpu_bf16'] else 'without'} bf16 instructions",
        "",
        f"`{res['command']}`: {res['model']} ({res['dimension']}-D) on {res['input']}; median of runs; "
        f"fp32 is the baseline. {_machine(res['machine'])}.",
        "",
        markdown_table(rows, ["precision", "batch_size", "sentences_per_s", "speedup"]),
        "",
        f"bf16 vs fp32 cosine on 64 sentences: min {res['bf16_vs_fp32_cosine']['min']}, mean {res['bf16_vs_fp32_cosine']['mean']}.",
        "",
    ]


def phrasebank_section(res: dict) -> list[str]:
    measured = res.get("measured", {})  # per part since --skip-* keeps a part's last results; before, one run made both

    def stamp(part: str) -> list[str]:
        run = measured.get(part)
        return [f"`{run['command']}`. {_machine(run['machine'])}.", ""] if run else []

    lines = ["## Phrase bank (Variant 1)", ""] + ([] if measured else [f"`{res['command']}`. {_machine(res['machine'])}.", ""])
    if "quality" in res:
        lines += [
            "### Quality of the shipped bank",
            "",
            *stamp("quality"),
            "Each dev sentence is encoded, decoded from its vector, and compared with the output (BLEU is "
            "sacrebleu corpus BLEU 0-100; cosine is between the input's embedding and the re-encoded output). "
            "The dev sets are held out of the corpus, so the bank cannot contain them: these numbers measure "
            "how close the nearest stored sentence is. The last row decodes sentences that are in the bank.",
            "",
            markdown_table(res["quality"], ["file", "method", "n", "bleu", "exact_match", "token_f1", "rouge_l", "cosine", "ms_per_sentence"]),
            "",
        ]
    if "scale" in res:
        lines += [
            "### Latency, recall and memory by bank size",
            "",
            *stamp("scale"),
            "Single-query `PhraseBankDecoder.generate` (greedy, top-10, no cache, no re-encoding); recall@1 is "
            "agreement of the top hit with exact search (Flat) on held-out dev queries; memory is index + texts. "
            "`real_vectors` says how many vectors are real corpus embeddings; the rest are perturbed copies.",
            "",
            markdown_table(res["scale"], ["size", "real_vectors", "index", "build_s", "p50_ms", "p95_ms", "recall_at_1", "memory_mb"]),
            "",
            "![p50 latency by bank size](results/phrasebank_latency.png)",
            "",
        ]
        _plot_scale(res["scale"])
    return lines


# no ms column: the round trips' times include re-encoding and ran beside other work, so they are no latency; the latency table is
QUALITY_COLUMNS = ["file", "decoding", "n", "bleu", "exact_match", "token_f1", "rouge_l", "cosine", "nll", "nll_mismatched",
                   "nll_output", "search_errors"]


def _quality_table(rows: list[dict]) -> str:
    """The quality columns the rows have: results written before a metric existed, or of a model it is not measured
    for (the likelihood of int8 weights), leave it out."""
    return markdown_table(rows, [c for c in QUALITY_COLUMNS if any(c in r for r in rows)])


def generative_section(res: dict) -> list[str]:
    t = res.get("training") or {}
    lines = [
        "## Generative decoder (Variant 2)",
        "",
        f"`{res['command']}`: {res['parameters']:,} parameters; trained {steps_in_all(t) or '?'} steps "
        f"in all (the last run: {t.get('steps', '?')} steps, {t.get('train_seconds', '?')} s, on {t.get('train_texts', '?')} sentences). "
        f"{_machine(res['machine'])}.",
        "",
        _quality_table(res["quality"]),
        "",
        *(["nll: mean negative log-likelihood per token (nats) of the true sentence given its embedding, all tokens of a file "
           "weighing alike; nll_mismatched: the same, each sentence read under another one's embedding "
           "(`lightweight_decoder.quality.likelihood`)."
           + (" nll_output: the same for the decoder's own outputs; search_errors: the share of sentences the model finds "
              "more likely than what it wrote (failures of the search; the rest are the model's)." if "search_errors" in res["quality"][0] else ""),
           ""] if "nll" in res["quality"][0] else []),
        *[line for base in res.get("baselines", [])
          for line in (f"Baseline measured in the same run on the same sentences: `{base['model']}` ({base['parameters']:,} parameters).", "",
                       _quality_table(base["quality"]), "")],
        *(["The same model with int8 weights (`--quantize int8`), same sentences, same run:", "",
            _quality_table(res["quality_int8"]),
            ""] if res.get("quality_int8") else []),
        *(["How often the converted weights (and the numpy runtime, `--runtime numpy`) write exactly the fp32 torch model's text "
           "(the same sentences, decoded in batches of 64):", "",
            markdown_table(res["same_text_as_fp32"], list(res["same_text_as_fp32"][0])), ""] if res.get("same_text_as_fp32") else []),
    ]
    if res.get("plot"):
        lines += [f"![dev BLEU, training loss and dev nll against training steps](results/{res['plot']})", ""]
    if (speed := _load("generative_speed")) is not None:
        lines += generation_speed_section(speed)
    elif "latency" in res:  # results written before speed had a file of its own
        lines += ["Generation alone (no re-encoding), best of two rounds:", "",
                  markdown_table(res["latency"], latency_columns(res["latency"])), "",
                  f"Peak RSS (VmHWM) of a fresh process that loads only the decoder and generates a batch of 64: "
                  f"{rss_text(res['peak_rss_mb_decoder_only'])}.", ""]
    return lines


def generation_speed_section(speed: dict) -> list[str]:
    rows, columns = speed_rows(speed)
    versions = ", ".join(f"{c['label']} (`{c['path']}`)" for c in speed["code"])
    return [
        "### Generation speed",
        "",
        f"`{speed['command']}`: generation alone (no re-encoding) with the model's decoding defaults, {speed['n']} "
        f"wikipedia_dev sentences, best of {speed['rounds']} rounds that each try every setting twice (five times at batch 64); "
        f"each measurement in a fresh process importing the "
        f"code of {versions}. {_machine(speed['machine'])}." + (f" {note}" if (note := numpy_variant_note(speed)) else ""),
        "",
        markdown_table(rows, columns),
        "",
        f"Peak RSS (VmHWM) of a fresh process that loads only the decoder and generates a batch of 64: {speed_rss_text(speed)}.",
        "",
    ]


def _table_section(heading: str, intro: str, rows: list[dict], columns: list[str], after: tuple[str, ...] = ()) -> list[str]:
    """A heading, the line saying which command measured it, its table, and what follows the table."""
    return [heading, "", intro, "", markdown_table(rows, columns), "", *after]


def _lines(res: dict) -> str:
    """Which lines of each dev file a result used (its ``offset`` and ``limit``)."""
    return f"lines {res['offset']}-{res['offset'] + res['limit'] - 1}"


def decoding_section(res: dict) -> list[str]:
    return _table_section(
        "### Decoding settings",
        f"`{res['command']}`: {_lines(res)} of each dev file (not the ones "
        f"reported above); ms per sentence is generation alone at batch 64. {_machine(res['machine'])}.",
        res["results"], ["file", "setting", "n", "bleu", "exact_match", "token_f1", "cosine", "ms_per_sentence"])


def compressed_section(res: dict) -> list[str]:
    return _table_section(
        "### Decoding compressed vectors",
        f"`{res['command']}`: the generator (greedy) reads the first {res['limit']} sentences of each dev file after their "
        f"embeddings went through a codec; vector_cosine is the decoded vector's cosine to the exact one, cosine that of "
        f"the re-encoded output. {_machine(res['machine'])}.",
        res["results"], ["file", "codec", "vector_cosine", "n", "bleu", "exact_match", "token_f1", "cosine"])


def hybrid_section(res: dict, title: str = "## Hybrid decoder (Variant 3)") -> list[str]:
    seconds = res.get("max_seconds", "")  # older results give it in the command only
    limit = "" if seconds == "" else f"; time limit per sentence: {'none' if seconds is None else f'{seconds} s'}"
    weight = res.get("fluency_weight", 0)  # results before the fluency term judged by cosine alone
    judged = f"cosine + {weight} x the generator's mean token log-probability" if weight else "cosine"
    own = any("own_ms_max" in r for r in res["results"])  # results before 2026-12-01 did not time the call alone
    tail = ("; with correction rounds, the bank's lower candidates are judged in the first round's batch if the screen "
            "ranks them above that round's edits" if res["machine"]["date"] >= _TAIL_IN_FIRST_ROUND else "")
    return _table_section(
        title,
        f"`{res['command']}`: first {res['limit']} sentences of each dev file; generator attached: {res['generator']}{limit}. "
        f"num_steps is the correction rounds allowed, steps_taken the mean number that improved the best by the judge's "
        f"measure ({judged}), "
        f"pool_cut_share the share of sentences whose pool the time budget cut (beams, samples or the bank's "
        f"lower candidates left out{tail}); ms_per_sentence is the mean time of a decode call"
        f"{', own_ms_p50 and own_ms_max the hybrid call as it times itself, median and slowest sentence' if own else ''}. "
        f"{_machine(res['machine'])}.",
        res["results"], ["file", "decoder", "num_steps", "steps_taken", "encoder_calls", "pool_cut_share", "bleu", "exact_match", "token_f1", "cosine",
         "ms_per_sentence", *(["own_ms_p50", "own_ms_max"] if own else [])],
        after=(f"![quality against correction budget](results/{res['plot']})", ""))


def hybrid_ablation_section(res: dict) -> list[str]:
    return _table_section(
        "### What the screen, its word suggestions and the fluency term each add to correction",
        f"`{res['command']}`: {_lines(res)} of each dev file (not the ones reported "
        f"above), no time limit, the pool then {res['steps']} correction rounds that each re-encode {res['edits_per_step']} edits: "
        f"drawn at random, or the screen's best of 256 proposals; the best kept by cosine alone, or by cosine plus the "
        f"weighted mean token log-probability of the text under the generator given the target; the edits' words drawn "
        f"from the pool, or also from the words the screen suggests for the current best. {_machine(res['machine'])}.",
        res["results"], ["file", "edits", "judged_by", "n", "bleu", "exact_match", "token_f1", "cosine", "ms_per_sentence"])


def hybrid_pool_section(res: dict) -> list[str]:
    picks = res["picks"]
    return _table_section(
        "### Which candidates the judge picks",
        f"`{res['command']}`: {_lines(res)} of each dev file (not the ones reported above), no time limit. Every "
        f"candidate the hybrid draws on is made and judged (exact cosine + {res['fluency_weight']} x the generator's mean "
        f"token log-probability); each row is the judge's pick when the pool holds only those candidates, but the last, "
        f"which is no judge: it takes the candidate closest to the true sentence (sentence BLEU), so it shows how far any "
        f"choice among these candidates could go. `bank top 3 + "
        f"greedy` is what the hybrid judged first until 2026-12-01 with the shipped compressed bank (and, within a second "
        f"on a CPU without bf16, about all it judged); it now judges `greedy + 4 beams` first, and a compressed bank's "
        f"hits when time is left or when the bank's best could take the fast path. {_machine(res['machine'])}.",
        res["results"], ["file", "pool", "n", "bleu", "exact_match", "token_f1", "cosine"],
        after=("Where the judge's pick over all candidates came from (a text two sources wrote counts for the first of "
               "greedy, beam, sample, bank):", "",
               markdown_table(picks, list(picks[0])), ""))


def corrector_probe_section(res: dict) -> list[str]:
    nll = res["nll"]
    return _table_section(
        "### A trained corrector, probed (vec2text's idea; not shipped)",
        f"`{res['command']}`: a corrector made from the generator shipped when it ran (its hypothesis's tokens in 48 memory slots, "
        f"the difference between the target and the hypothesis's embedding mapped into the prefix), trained "
        f"{res['minutes']:g} minutes ({res['steps']:,} steps) on {res['texts']:,} cached sentences and the generator's "
        f"hypotheses for them; the first {res['dev_lines']:,} lines of wikipedia_dev. better_of_two: per sentence, the "
        "text or the one before it (the generator's, or the round before's), whichever has the higher cosine. nll of "
        f"the true sentence: generator {nll['generator']:.4f}, corrector given the hypothesis "
        f"{nll['corrector_with_hypothesis']:.4f}, given none {nll['corrector_without_hypothesis']:.4f}. "
        f"{_machine(res['machine'])}.",
        res["rows"], ["text", "bleu", "cosine", "bleu_better_of_two", "cosine_better_of_two"])


def approximate_scores_section(res: dict) -> list[str]:
    margins = res["margins"]
    h = res["hybrid_in_bank"]
    return _table_section(
        "### A compressed bank's approximate scores and the hybrid's fast path",
        f"`{res['command']}`: the bank's top {res['k']} hits of each query re-encoded; gap is the exact cosine minus the "
        f"bank's approximate score. The hybrid judges a compressed bank's best hits first only when the best approximate "
        f"score is within a margin ({res['margin']:g} in this run) of tau ({res['tau']:g}); outside_<m> counts the queries "
        f"whose best hit reaches tau but scores below tau - m (they miss that early judging), judged_first_<m> the share of "
        f"queries judged first at margin m. {_machine(res['machine'])}.",
        res["results"], ["queries", "n", "gap_mean", "gap_sd", "gap_p99", "gap_max", "best_hits_reaching_tau",
                         "lowest_approx_of_those", *(f"outside_{m:g}" for m in margins), *(f"judged_first_{m:g}" for m in margins)],
        after=(f"The hybrid with its defaults (margin {res['margin']:g}, 1 s budget) on the first {h['n']} in-bank queries: "
               f"exact match {h['exact_match']:.0%}, fast path {h['fast_path']:.0%}, {h['ms_per_sentence']:.0f} ms a sentence.", ""))


def leakage_section(res: dict) -> list[str]:
    return _table_section(
        "## What an embedding leaks: names and numbers",
        f"`{res['command']}`: first {res['limit']} sentences of each dev file; names and numbers are those of the input "
        f"sentences (a name is a capitalised word that does not start a sentence; counted once per sentence), "
        f"names_recovered and numbers_recovered the share of them that the output spells exactly. The hybrid has "
        f"{res['max_seconds']} s a sentence; `chance` scores each sentence against the phrase decoder's output for the "
        f"next one, a text that knows nothing of it. {_machine(res['machine'])}.",
        res["results"], ["file", "decoder", "n", "names", "numbers", "names_recovered", "numbers_recovered", "token_f1",
                         "bleu", "cosine", "ms_per_sentence"])


def threads_section(res: dict) -> list[str]:
    return _table_section(
        "## Sharing the CPU: threads",
        f"`{res['command']}`: generation alone (the shipped generator's default decoding, no re-encoding) one sentence at a "
        f"time ({res['sentences']} sentences; ms per sentence) and 64 at once"
        + (" with the torch runtime (generate_*) and the numpy runtime (numpy_*)" if "numpy_batch1_ms" in res["columns"] else "")
        + f", and the encoder on the same 64 wikipedia_dev "
        f"sentences (precision auto), with 1 thread and with the default ({res['default_threads']}), beside nothing and "
        f"beside a busy process (a child multiplying matrices with torch's default threads); best of {res['rounds']}. "
        f"{_machine(res['machine'])}.",
        res["results"], res["columns"])


def screen_section(res: dict) -> list[str]:
    s = res["screen"]
    return _table_section(
        "### Embedding screen",
        f"`{res['command']}`: {_lines(res)} of each dev file; {res['proposals']} edits "
        f"of the generator's output per sentence, every one re-encoded as ground truth. gain_* is the mean gain in cosine to "
        f"the target of the best of the k edits judged per round: the k the screen ranks highest, k drawn at random, or the "
        f"best of all (oracle); spearman is the rank correlation of screen and encoder over each sentence's edits. The screen "
        f"(held-out cosine to the encoder {s['dev_cosine']}, {s['train_texts']:,} training sentences) costs "
        f"{res['screen_ms_per_text']} ms a text. {_machine(res['machine'])}.",
        res["results"], ["file", "n", "judged_per_round", "gain_screened", "gain_random", "gain_oracle", "screened_share_of_oracle", "spearman"],
        after=_word_suggestions(res))


def _word_suggestions(res: dict) -> tuple[str, ...]:
    """The screen bench's second table: the reference words the generator missed that the screen suggests."""
    if "word_suggestions" not in res:  # results written before the screen suggested words
        return ()
    return (f"Word suggestions, same sentences: missing_words counts the reference's words (case counts) that the "
            f"generator's output lacks; found_* is the share of them among the screen's top {res['words']} suggestions "
            f"for that output, among the words of the pool correction drew every word from before (its 4 beams and the "
            f"bank's top 10), and among either.", "",
            markdown_table(res["word_suggestions"], ["file", "n", "missing_words", "words_suggested", "words_in_pool",
                                                     "found_suggested", "found_pool", "found_either"]), "")


def working_set_section(res: dict) -> list[str]:
    return [
        *_table_section(
            "### The numpy runtime's step against the CPU's cache",
            f"`{res['command']}`: one row times k distinct 1 MiB fp32 matrices, the best of several timings. "
            f"{_machine(res['machine'])}.",
            res["products"], ["working_set_mib", "us", "gb_per_s"]),
        "The shipped generator's numpy step (one token at batch 1) with its weights, and the same code on smaller "
        "working sets (the smaller variants compute nothing useful): read_per_step_mib is what a step reads, "
        "distinct_mib how much of it is distinct memory.",
        "",
        markdown_table(res["steps"], ["weights", "read_per_step_mib", "distinct_mib", "us_per_step"]),
        "",
        "Half-precision weights in NumPy, the output layer (8,192 x 256):",
        "",
        markdown_table(res["half_precision"], ["operation", "us"]),
        "",
    ]


def weight_storage_section(res: dict) -> list[str]:
    sizes = res["file_bytes"]
    return _table_section(
        "### Storing the weights in fp16",
        f"`{res['command']}`: `{res['model']}` saved again with `weights=\"fp16\"` (`train --weights fp16`): "
        f"model.safetensors {sizes['fp32'] / 1e6:.1f} MB -> {sizes['fp16'] / 1e6:.1f} MB. Both loaded (fp16 as fp32 again) "
        f"and decoded greedily; same_text is the share of sentences with identical output. {_machine(res['machine'])}.",
        res["results"], ["file", "n", "same_text", "bleu_fp32", "bleu_fp16"])


def averaging_section(res: dict) -> list[str]:
    return _table_section(
        "### Averaging decoders' weights",
        f"`{res['command']}`: each decoder's nll (nats per token of the true sentence given its embedding) on the first "
        f"{res['n']} lines of {res['file']}; averaged_from: the folders `lightweight-decoder average` took the mean of, "
        f"with their weights. {_machine(res['machine'])}.",
        res["rows"], ["decoder", "averaged_from", "steps_in_all", "nll"])


def service_section(res: dict) -> list[str]:
    return _table_section(
        "## HTTP service",
        f"`{res['command']}`: {res['note']}. requests_per_decoder_call: how many requests each decoder call served "
        f"(requests queued while a model is busy are decoded together). {_machine(res['machine'])}.",
        res["results"], ["decoder", "clients", "seconds", "requests", "errors", "requests_per_s", "p50_ms", "p95_ms",
                         "requests_per_decoder_call"])


def nprobe_section(res: dict) -> list[str]:
    rows = res["rows"]
    return _table_section(
        "### Recall against nprobe at scale",
        f"`{res['command']}`. {_machine(res['machine'])}.\n\n"
        f"{rows[0]['size']:,} entries ({rows[0]['real_vectors']:,} real embeddings, the rest perturbed copies), each index "
        "built once and searched with more and more IVF lists (`PhraseBank.set_search(nprobe=...)`, `--nprobe` on the "
        "CLI). Latency and recall@1 are measured as in the table above.",
        rows, ["index", "nprobe", "p50_ms", "p95_ms", "recall_at_1"],
        (f"![recall against latency by nprobe](results/{res['plot']})", ""))


def bank_size_section(res: dict) -> list[str]:
    cache = res["cache"]
    return _table_section(
        "### Quality by bank size",
        f"`{res['command']}`. {_machine(res['machine'])}.\n\n"
        f"The first n of {cache['entries']:,} corpus sentences embedded in a random order ({res['encoder']}, {cache['precision']}); "
        "each dev sentence is decoded as its nearest one by exact cosine, so the numbers measure what a bank of that size "
        "holds, not how an index searches it. Cosine is between the dev sentence's embedding and that sentence's.",
        res["rows"], ["file", "n", "size", "bleu", "exact_match", "token_f1", "cosine"],
        ("What each doubling of the bank added (least-squares slope against log2 of the size):", "",
         markdown_table(res["per_doubling"], ["file", "bleu_per_doubling", "token_f1_per_doubling", "cosine_per_doubling"]), "",
         f"![quality by bank size](results/{res['plot']})", ""))


def _plot_scale(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for index in dict.fromkeys(r["index"].split(",", 1)[-1] if r["index"].startswith("IVF") else r["index"] for r in rows):
        points = [r for r in rows if (r["index"].split(",", 1)[-1] if r["index"].startswith("IVF") else r["index"]) == index]
        label = f"IVF,{index}" if index not in ("Flat", "HNSW32") else index
        ax.plot([r["size"] for r in points], [r["p50_ms"] for r in points], marker="o", label=label)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("bank entries")
    ax.set_ylabel("p50 decode latency (ms)")
    ax.set_title("PhraseBankDecoder latency, 2 CPU cores")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "phrasebank_latency.png", dpi=100)


def main() -> None:
    lines = [
        "# Benchmarks",
        "",
        "Every number here comes from a script in this folder; each writes `results/<name>.json`, and",
        "`python bench/report.py` renders this page from those files. Re-run them with `make bench`.",
        "",
    ]
    for path in sorted(RESULTS.glob("encoder*.json")):  # encoder.json, and encoder_<tag>.json from other CPUs
        lines += encoder_section(json.loads(path.read_text()))
    if (bank := _load("phrasebank")) is not None:
        lines += phrasebank_section(bank)
    if (probes := _load("nprobe")) is not None:
        lines += nprobe_section(probes)
    if (sizes := _load("bank_size")) is not None:
        lines += bank_size_section(sizes)
    if (gen := _load("generative")) is not None:
        lines += generative_section(gen)
    if (working := _load("working_set")) is not None:
        lines += working_set_section(working)
    if (stored := _load("weight_storage")) is not None:
        lines += weight_storage_section(stored)
    if (avg := _load("averaging")) is not None:
        lines += averaging_section(avg)
    if (dec := _load("decoding")) is not None:
        lines += decoding_section(dec)
    if (comp := _load("compressed_vectors")) is not None:
        lines += compressed_section(comp)
    if (hyb := _load("hybrid")) is not None:
        lines += hybrid_section(hyb)
    if (hyb := _load("hybrid_bf16")) is not None:  # the same command on a CPU with bf16 instructions (a faster judge)
        lines += hybrid_section(hyb, "### Hybrid decoder on a CPU with bf16 instructions")
    if (hyb := _load("hybrid_unlimited")) is not None:
        lines += hybrid_section(hyb, "### Hybrid decoder with no time limit")
    if (abl := _load("hybrid_ablation")) is not None:
        lines += hybrid_ablation_section(abl)
    if (pool := _load("hybrid_pool")) is not None:
        lines += hybrid_pool_section(pool)
    if (probe := _load("corrector_probe")) is not None:
        lines += corrector_probe_section(probe)
    if (approx := _load("approximate_scores")) is not None:
        lines += approximate_scores_section(approx)
    if (leak := _load("leakage")) is not None:
        lines += leakage_section(leak)
    if (thr := _load("threads")) is not None:
        lines += threads_section(thr)
    if (scr := _load("screen")) is not None:
        lines += screen_section(scr)
    if (svc := _load("service")) is not None:
        lines += service_section(svc)
    OUT.write_text("\n".join(lines))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
