"""Counting-modes benchmark: ``--mode paper`` against the paper's computation, the fast modes
against ``--mode paper``, the noun forms against spaCy's lemmatiser, and ``--mode paper``'s speed.

Claims (issue 13), on a real caption corpus (Flickr8k's 40,460 captions by default):
* ``--mode paper`` equals the paper's computation run directly (the same spaCy pipeline over
  every caption, NOUN/PROPN lemma sets, the concept match; ``reference_counters.PaperInvertedIndex``)
  for >= 99.9% of the concepts that occur, with and without the paper's dropping of unknown words;
* the fast modes (``phrase``, ``bag``) against ``--mode paper``: the share of occurring concepts
  with equal counts and within 10%, overall, for the Let it Wag! and ImageNet lists, split by the
  ``pos_ambiguous`` flag (goal: concepts not flagged >= 95% within 10%), with the old lookup forms
  (``--forms lookup``) beside the noun forms;
* word forms (no corpus needed): for every bundled concept, each candidate caption form of its
  words is counted by both fast modes exactly when spaCy's rule lemmatiser, reading it as a
  plural noun, maps it to the word's noun reading (the word itself, or the lemma spaCy's
  lemmatiser gives the word read as a plural noun where its tables know that lemma: "men" ->
  "man", as the paper read concept words; >= 99.5% of (concept, form) pairs; the failures are
  listed);
* speed: ``--mode paper`` end to end with 2 local workers, each run in a fresh process, for the
  Let it Wag! list and for all 4,127 concepts, against tagging every caption (the paper's way:
  ``--tag-every-caption``, same engine and workers); goal >= 20x for the Let it Wag! list. Both
  sides pay the same fixed start-up (spaCy imported, the pipeline loaded: seconds), which a
  40,000-caption corpus does not amortise, so the Let it Wag! pair also runs, both sides end to
  end, on the corpus repeated ``--speed-repeat`` times (default 5: 202,300 captions).

Usage:
    python benchmarks/bench_frequency_modes.py --captions Flickr8k.token.txt
    python benchmarks/bench_frequency_modes.py --forms-only          # the word-form pairs alone
    python benchmarks/bench_frequency_modes.py --captions Flickr8k.token.txt --limit 5000   # smoke run

The caption file: one caption per line, or ``ID<TAB>caption`` lines (Flickr8k's
``Flickr8k.token.txt``, in public repositories such as github.com/prakhar-dhakar/Image-Captioning).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from bench_frequency import ProcessTreeSampler
from reference_counters import spacy_noun_readings

TARGET_PAPER_AGREEMENT = 0.999
TARGET_FORM_PAIRS = 0.995
GOAL_UNFLAGGED_WITHIN = 0.95
GOAL_SPEEDUP = 20.0
CORPUS_HINT = ("get Flickr8k's captions (40,460, public): git clone https://github.com/prakhar-dhakar/Image-Captioning "
               "and pass --captions Image-Captioning/Flickr8k.token.txt")


# --- the corpus --------------------------------------------------------------------------------

def read_caption_lines(path: Path, limit: int | None) -> tuple[list[str], list[str]]:
    """(sample ids, captions) of a caption file: ``ID<TAB>caption`` lines, or one caption a line."""
    ids, captions = [], []
    with open(path, encoding="utf-8") as handle:
        for number, line in enumerate(handle):
            line = line.rstrip("\n")
            if not line.strip():
                continue
            sample_id, _, caption = line.partition("\t") if "\t" in line else (f"{path.name}:{number}", "", line)
            ids.append(sample_id)
            captions.append(caption)
            if limit is not None and len(captions) >= limit:
                break
    return ids, captions


# --- word forms against spaCy's rule lemmatiser (no corpus) ------------------------------------

class SpacyNounLemmas:
    """spaCy's own rule lemmatiser reading tokens as plural nouns (``spacy.blank("en")``, the
    tables of ``spacy-lookups-data``): the judge of which forms belong to a word."""

    def __init__(self) -> None:
        import spacy

        self.nlp = spacy.blank("en")
        self.nlp.add_pipe("lemmatizer", config={"mode": "rule"})
        self.nlp.initialize()
        lookups = self.nlp.get_pipe("lemmatizer").lookups
        self.rules = lookups.get_table("lemma_rules")["noun"]
        exceptions = lookups.get_table("lemma_exc")["noun"]
        self.irregular: dict[str, set[str]] = {}
        for form, lemmas in exceptions.items():
            for lemma in lemmas:
                self.irregular.setdefault(lemma, set()).add(form)
        self.cache: dict[str, str] = {}
        self.readings: dict[str, str] = {}

    def candidates(self, word: str) -> set[str]:
        """Every token spaCy's noun rules or exceptions could lemmatise to ``word``."""
        found = {word[: len(word) - len(new)] + old for old, new in self.rules if word.endswith(new)}
        return found | self.irregular.get(word, set())

    def lemmas(self, tokens: set[str]) -> None:
        from spacy.tokens import Doc

        todo = sorted(token for token in tokens if token not in self.cache and token)
        for start in range(0, len(todo), 5000):
            words = todo[start:start + 5000]
            doc = Doc(self.nlp.vocab, words=words, pos=["NOUN"] * len(words), morphs=["Number=Plur"] * len(words))
            for token in self.nlp(doc):
                self.cache[token.text] = token.lemma_

    def stands_for(self, token: str, word: str) -> bool:
        return token == word or self.cache.get(token) == word

    def reading(self, word: str) -> str:
        """The concept word as the fast modes should read it (``spacy_noun_readings``)."""
        if word not in self.readings:
            self.readings.update(spacy_noun_readings(self.nlp, [word]))
        return self.readings[word]


def form_pairs(concepts, forms_source: str, judge: SpacyNounLemmas) -> dict:
    """Both fast modes on one caption per (concept, candidate form), judged by spaCy."""
    from letitwag.frequency.text.forms import english_lemmas, word_forms
    from letitwag.frequency.text.matcher import TextMatcher

    lookup = english_lemmas()
    cases: dict[str, list[tuple[int, str, str, bool]]] = {"phrase": [], "bag": []}
    for index, concept in enumerate(concepts):
        words = concept.match_form.split(" ") if concept.match_form else []
        readings = [judge.reading(word) for word in words]
        for position, (word, reading) in enumerate(zip(words, readings)):
            candidates = (judge.candidates(word) | judge.candidates(reading) | set(lookup.forms_of(lookup.lemma(word)))
                          | {word, word + "s", word + "es"})
            judge.lemmas(candidates)
            for form in sorted(candidates):
                caption_words = words[:position] + [form] + words[position + 1:]
                if position == len(words) - 1:
                    cases["phrase"].append((index, form, " ".join(caption_words), judge.stands_for(form, reading)))
                expected = all(any(judge.stands_for(token, wanted) for token in caption_words) for wanted in readings)
                cases["bag"].append((index, form, " ".join(caption_words), expected))
    report = {}
    for mode, rows in cases.items():
        matcher = TextMatcher(concepts, mode=mode, use_aliases=False, forms=word_forms(forms_source))
        counted = matcher.count([caption for _, _, caption, _ in rows])
        hits = set(zip(counted.hit_rows.tolist(), counted.hit_concepts.tolist()))
        failures = [{"concept": concepts[index].id, "form": form, "caption": caption, "spacy_lemma": judge.cache.get(form),
                     "expected": expected} for row, (index, form, caption, expected) in enumerate(rows)
                    if ((row, index) in hits) != expected]
        report[mode] = {"pairs": len(rows), "agree": len(rows) - len(failures),
                        "expected": sum(expected for *_, expected in rows), "failures": failures}
    return report


# --- runs of ``letitwag frequency count`` in fresh processes -----------------------------------

def run_count_child(arguments: dict) -> dict:
    """One ``count_text`` run in this (fresh) process: wall and CPU seconds, peak RSS of the tree."""
    from letitwag.concepts import bundled_concepts
    from letitwag.frequency.count import count_text

    out = Path(arguments.pop("out"))
    shutil.rmtree(out, ignore_errors=True)
    concepts = bundled_concepts(arguments.pop("concepts"))
    with ProcessTreeSampler() as tree:
        start = time.perf_counter()
        table = count_text(arguments.pop("captions"), concepts, out, executor="local", **arguments)
        seconds = time.perf_counter() - start
    return {"seconds": seconds, "cpu_seconds": tree.cpu_seconds, "peak_rss": tree.peak_rss,
            "captions_tagged": table.provenance.get("paper", {}).get("captions_tagged")}


def run_count(**arguments) -> dict:
    command = [sys.executable, __file__, "--count-child", json.dumps(arguments)]
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def counts_of(path: Path) -> dict[str, int]:
    table = pq.read_table(path)
    return dict(zip(table.column("concept_id").to_pylist(), table.column("documents").to_pylist()))


# --- agreement summaries -----------------------------------------------------------------------

def agreement(first: dict[str, int], second: dict[str, int], ids) -> dict:
    """Over the concepts of ``ids`` that occur in either: equal counts, and within 10% of the larger."""
    occurring = [i for i in ids if first.get(i, 0) or second.get(i, 0)]
    equal = sum(first.get(i, 0) == second.get(i, 0) for i in occurring)
    within = sum(abs(first.get(i, 0) - second.get(i, 0)) <= 0.1 * max(first.get(i, 0), second.get(i, 0))
                 for i in occurring)
    n = max(len(occurring), 1)
    return {"occurring": len(occurring), "equal": equal / n, "within_10pct": within / n}


def within_10pct(first: int, second: int) -> bool:
    return abs(first - second) <= 0.1 * max(first, second)


CAUSES = {
    "aliases": "the fast count through the concept's aliases (the paper searched its name only)",
    "punctuated word": "a word joined by a hyphen or other punctuation: the paper kept its last token "
                       "(football-helmet -> helmet)",
    "paper's term": "the paper's pipeline read a concept word alone otherwise than as a noun of the tables "
                    "(terrier -> terri, as an adjective; lens -> len)",
    "capitals": "capitalised caption words tagged PROPN keep their capitals in the paper's index, and never "
                "match its lower-cased terms (Frisbee, China): within 10% once the index is lower-cased",
    "small counts": "counts under 10 on both sides: single tagging decisions",
    "tagger": "the rest: the tagger reads the word as another part of speech (plaid, closeup)",
}


def unflagged_causes(concepts, fast: dict[str, int], fast_name_only: dict[str, int], paper: dict[str, int],
                     paper_lower_cased: dict[str, int], flagged: dict[str, bool], terms, forms) -> dict:
    """Each concept not flagged ``pos_ambiguous`` that occurs and whose fast count is more than
    10% off ``--mode paper``'s, given one cause (the first of ``CAUSES`` that explains it)."""
    import re

    found: dict[str, list] = {cause: [] for cause in CAUSES}
    for concept, indices in zip(concepts, terms.concept_terms):
        i = concept.id
        if flagged[i] or not (fast[i] or paper[i]) or within_10pct(fast[i], paper[i]):
            continue
        words = [word for word in re.split(r"[_\s]+", concept.name.lower()) if word]
        reading = list(dict.fromkeys(forms.concept_lemma(word) for word in words))
        if within_10pct(fast_name_only[i], paper[i]):
            cause = "aliases"
        elif not all(word.isalpha() for word in words):
            cause = "punctuated word"
        elif [terms.terms[t] for t in indices] != reading:
            cause = "paper's term"
        elif within_10pct(fast[i], paper_lower_cased[i]):
            cause = "capitals"
        elif max(fast[i], paper[i]) < 10:
            cause = "small counts"
        else:
            cause = "tagger"
        found[cause].append((i, fast[i], paper[i]))
    return found


def share(value: dict) -> str:
    return f"{value['occurring']:5d} occur: {value['equal']:6.1%} equal, {value['within_10pct']:6.1%} within 10%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="example: python benchmarks/bench_frequency_modes.py --captions Flickr8k.token.txt")
    parser.add_argument("--captions", type=Path, help="caption file (ID<TAB>caption lines or one caption a line)")
    parser.add_argument("--forms-only", action="store_true", help="only the word-form pairs (no corpus needed)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N captions (a smoke run)")
    parser.add_argument("--spacy-model", default=None, help="spaCy pipeline (default: letitwag's default choice)")
    parser.add_argument("--workers", type=int, default=2, help="local workers of the timed runs (default 2)")
    parser.add_argument("--shard-rows", type=int, default=4096,
                        help="rows per shard of the --mode paper runs (default 4,096: a 40k corpus keeps 2 workers busy)")
    parser.add_argument("--speed-repeat", type=int, default=5,
                        help="the corpus repeated this many times for the Let it Wag! speed pair, both sides end to end "
                        "(default 5; tagging every caption runs at a few hundred captions/s, so each unit costs minutes)")
    parser.add_argument("--out", type=Path, default=Path("bench-out/frequency-modes"), help="scratch folder")
    parser.add_argument("--json", type=Path, help="also write every number (and every failure) to this JSON file")
    parser.add_argument("--count-child", help=argparse.SUPPRESS)  # internal: one timed run (JSON arguments)
    args = parser.parse_args(argv)
    if args.count_child:
        print(json.dumps(run_count_child(json.loads(args.count_child))))
        return 0
    if not args.forms_only and (args.captions is None or not args.captions.is_file()):
        print(f"bench_frequency_modes.py: {args.captions or '--captions'}: no such caption file; {CORPUS_HINT}",
              file=sys.stderr)
        return 2

    from letitwag.concepts import bundled_concepts
    from letitwag.frequency.text.forms import english_noun_forms

    results: dict = {"cores": os.cpu_count()}
    concepts = bundled_concepts("all")
    print(f"word forms: {len(concepts):,} bundled concepts, each candidate form of their words judged by spaCy's rule "
          "lemmatiser (as a plural noun) against the word's noun reading...", flush=True)
    judge = SpacyNounLemmas()
    pairs = {source: form_pairs(concepts, source, judge) for source in ("noun", "lookup")}
    results["form_pairs"] = pairs
    for source in ("lookup", "noun"):
        for mode in ("phrase", "bag"):
            found = pairs[source][mode]
            print(f"  --forms {source:6s} {mode:6s}: {found['agree']:,} of {found['pairs']:,} pairs agree "
                  f"({found['agree'] / found['pairs']:.2%}; spaCy maps {found['expected']:,} of the forms to the "
                  "concept word's noun reading, the others elsewhere)")
    for mode in ("phrase", "bag"):
        failures = pairs["noun"][mode]["failures"]
        print(f"  noun-form failures ({mode}, {len(failures)}): " + "; ".join(
            f"{f['concept']}: {f['form']!r} (spaCy: {f['spacy_lemma']!r}, expected {'counted' if f['expected'] else 'not'})"
            for f in failures[:25]) + (" ..." if len(failures) > 25 else ""))
    if args.forms_only:
        return _finish(args, results)

    from reference_counters import PaperInvertedIndex

    from letitwag.frequency.text.forms import english_lemmas
    from letitwag.frequency.text.matcher import TextMatcher
    from letitwag.frequency.text.paper import PaperTerms
    from letitwag.frequency.text.pipelines import default_pipeline, describe_pipeline, load_pipeline

    model = args.spacy_model or default_pipeline()
    pipeline = describe_pipeline(model)
    ids, captions = read_caption_lines(args.captions, args.limit)
    args.out.mkdir(parents=True, exist_ok=True)
    corpus = args.out / "captions.parquet"
    # row groups of one shard each: a shard then decodes only its own rows
    pq.write_table(pa.table({"sample_id": ids, "caption": captions}), corpus, row_group_size=args.shard_rows)
    results.update(captions=len(captions), corpus=str(args.captions), pipeline=pipeline)
    print(f"\ncorpus: {len(captions):,} captions from {args.captions}; pipeline {pipeline}", flush=True)

    print("the paper's computation run directly: the pipeline over every caption, in this process...", flush=True)
    nlp = load_pipeline(model)
    start = time.perf_counter()
    direct = PaperInvertedIndex(concepts, nlp)
    nouns = direct.caption_nouns(captions)
    direct_seconds = time.perf_counter() - start
    reference = {drop: {concept.id: len(hits) for concept, hits in zip(concepts, direct.postings_from_nouns(nouns, drop))}
                 for drop in (False, True)}
    lower_cased = direct.postings_from_nouns([{noun.lower() for noun in found} for found in nouns], False)
    paper_lower_cased = {concept.id: len(hits) for concept, hits in zip(concepts, lower_cased)}
    print(f"  {direct_seconds:.1f} s ({len(captions) / direct_seconds:,.0f} captions/s, 1 process)", flush=True)

    repeated = args.out / f"captions-x{args.speed_repeat}.parquet"
    pq.write_table(pa.table({"sample_id": [f"{copy}/{i}" for copy in range(args.speed_repeat) for i in ids],
                             "caption": captions * args.speed_repeat}), repeated, row_group_size=args.shard_rows)
    bigger = f"corpus x{args.speed_repeat}"
    sizes = {"corpus": len(captions), bigger: len(captions) * args.speed_repeat}
    files = {"corpus": corpus, bigger: repeated}
    runs = {}
    plan = [("all", "require", False, "corpus"), ("all", "drop", False, "corpus"),
            ("let-it-wag", "require", False, "corpus"), ("let-it-wag", "require", True, "corpus"),
            ("all", "require", True, "corpus"), ("let-it-wag", "require", False, bigger),
            ("let-it-wag", "require", True, bigger)]
    print(f"--mode paper end to end, {args.workers} local workers, --shard-rows {args.shard_rows}, each run in a fresh "
          "process:", flush=True)
    for name, unknown, every, data in plan:
        label = f"{name} {unknown}{' tag-every-caption' if every else ''}{'' if data == 'corpus' else ', ' + data}"
        out = args.out / label.replace(" ", "-").replace(",", "")
        runs[label] = run_count(captions=[str(files[data])], id_column="sample_id", workers=args.workers, mode="paper",
                                spacy_model=model, shard_rows=args.shard_rows, concepts=name, out=str(out),
                                unknown_words=unknown, tag_every_caption=every)
        runs[label].update(counts=counts_of(out / "text.parquet"), captions=sizes[data])
        run = runs[label]
        print(f"  {label:48s} {run['seconds']:7.1f} s  {run['captions'] / run['seconds']:9,.0f} captions/s  "
              f"tagged {run['captions_tagged']:,}  CPU {run['cpu_seconds']:.0f} s  peak RSS {run['peak_rss'] / 1e6:,.0f} MB",
              flush=True)
    results["paper_runs"] = {label: {k: v for k, v in run.items() if k != "counts"} for label, run in runs.items()}

    all_ids = concepts.ids
    print("\n--mode paper against the paper's computation run directly (concepts that occur in either):")
    paper_vs_direct = {}
    for unknown, drop in (("require", False), ("drop", True)):
        found = agreement(runs[f"all {unknown}"]["counts"], reference[drop], all_ids)
        paper_vs_direct[unknown] = found
        differ = [(i, runs[f"all {unknown}"]["counts"][i], reference[drop][i]) for i in all_ids
                  if runs[f"all {unknown}"]["counts"][i] != reference[drop][i]]
        print(f"  --unknown-words {unknown:7s}: {share(found)} "
              f"(target >= {TARGET_PAPER_AGREEMENT:.1%}: {'MET' if found['equal'] >= TARGET_PAPER_AGREEMENT else 'NOT MET'})"
              + (f"; differ: {differ[:10]}" if differ else ""))
    results["paper_vs_direct"] = paper_vs_direct

    print("\nfast modes against --mode paper (all concepts, computed in this process):", flush=True)
    paper_counts = runs["all require"]["counts"]
    table = pq.read_table(args.out / "all-require" / "text.parquet")
    flagged = dict(zip(table.column("concept_id").to_pylist(), table.column("pos_ambiguous").to_pylist()))
    batch = pa.array(captions, pa.string())
    terms = PaperTerms.from_pipeline(concepts, nlp)
    differ_from_words = set(terms.described(concepts))
    lists = {"all": all_ids, "let-it-wag": bundled_concepts("let-it-wag").ids, "imagenet": bundled_concepts("imagenet").ids}
    fast_results = {}
    per_concept: dict[str, dict[str, int]] = {"paper": paper_counts}
    sources = (("lookup", "--forms lookup", english_lemmas()),
               ("as-written", "--forms noun --concept-words as-written", english_noun_forms("as-written")),
               ("noun", "--forms noun", english_noun_forms()))
    causes = {}
    for source, option, forms in sources:
        for mode in ("phrase", "bag"):
            counted = TextMatcher(concepts, mode=mode, forms=forms).count(batch, with_hits=False).documents
            fast = dict(zip(all_ids, counted.tolist()))
            label = f"{option} {mode}"
            groups = {**{f"{name} list": ids_ for name, ids_ in lists.items()},
                      "all, pos_ambiguous": [i for i in all_ids if flagged[i]],
                      "all, not pos_ambiguous": [i for i in all_ids if not flagged[i]],
                      "all, not pos_ambiguous, paper reads the words as written": [
                          i for i in all_ids if not flagged[i] and i not in differ_from_words],
                      "all, not pos_ambiguous, count >= 10 in either": [
                          i for i in all_ids if not flagged[i] and max(fast[i], paper_counts[i]) >= 10],
                      "all, not pos_ambiguous, words as written, count >= 10": [
                          i for i in all_ids if not flagged[i] and i not in differ_from_words
                          and max(fast[i], paper_counts[i]) >= 10]}
            fast_results[label] = {group: agreement(fast, paper_counts, members) for group, members in groups.items()}
            print(f"  {label}:")
            for group, found in fast_results[label].items():
                print(f"    {group:58s} {share(found)}")
            if source == "noun":
                per_concept[mode] = fast
                for group in ("all, not pos_ambiguous", "all, pos_ambiguous"):
                    worst = sorted((i for i in groups[group] if fast[i] != paper_counts[i]),
                                   key=lambda i: -abs(fast[i] - paper_counts[i]))[:12]
                    print(f"    largest differences, {group[5:]} (fast/paper): " + ", ".join(
                        f"{i} {fast[i]}/{paper_counts[i]}" for i in worst))
                name_only = TextMatcher(concepts, mode=mode, forms=forms, use_aliases=False).count(
                    batch, with_hits=False).documents
                causes[mode] = unflagged_causes(concepts, fast, dict(zip(all_ids, name_only.tolist())), paper_counts,
                                                paper_lower_cased, flagged, terms, forms)
                n = fast_results[label]["all, not pos_ambiguous"]["occurring"]
                print(f"    not pos_ambiguous and more than 10% off, by cause (of {n} occurring; each cause's "
                      "share is what removing it would add):")
                for cause, members in causes[mode].items():
                    largest = sorted(members, key=lambda m: -abs(m[1] - m[2]))[:8]
                    print(f"      {cause:16s} {len(members):4d} ({len(members) / max(n, 1):5.1%}): " + ", ".join(
                        f"{i} {f}/{p}" for i, f, p in largest))
    results["fast_vs_paper"] = fast_results
    results["unflagged_causes"] = causes
    results["per_concept"] = {i: {**{name: counts[i] for name, counts in per_concept.items()},
                                  "pos_ambiguous": flagged[i]} for i in all_ids}
    unflagged = fast_results["--forms noun phrase"]["all, not pos_ambiguous"]["within_10pct"]
    unflagged_bag = fast_results["--forms noun bag"]["all, not pos_ambiguous"]["within_10pct"]
    print(f"  goal: not pos_ambiguous >= {GOAL_UNFLAGGED_WITHIN:.0%} within 10%: phrase {unflagged:.1%}, bag "
          f"{unflagged_bag:.1%} ({'MET' if min(unflagged, unflagged_bag) >= GOAL_UNFLAGGED_WITHIN else 'NOT MET'})")
    print("  the causes:\n" + "\n".join(f"    {cause}: {meaning}" for cause, meaning in CAUSES.items()))

    print("\n--mode paper speed against tagging every caption (same engine, same workers, fresh processes):")
    speed = {}
    for name in ("let-it-wag", "all"):
        fast_run, slow_run = runs[f"{name} require"], runs[f"{name} require tag-every-caption"]
        speed[name] = slow_run["seconds"] / fast_run["seconds"]
        print(f"  end to end, {name:10s}: {len(captions) / fast_run['seconds']:9,.0f} against "
              f"{len(captions) / slow_run['seconds']:7,.0f} captions/s: {speed[name]:5.1f}x "
              f"(tagged {fast_run['captions_tagged']:,} of {len(captions):,})")
    fast_big, slow_big = (runs[f"let-it-wag require{' tag-every-caption' if every else ''}, {bigger}"] for every in (False, True))
    speed[f"let-it-wag, {bigger}"] = slow_big["seconds"] / fast_big["seconds"]
    print(f"  end to end, let-it-wag, {bigger} ({fast_big['captions']:,} captions): "
          f"{fast_big['captions'] / fast_big['seconds']:9,.0f} against {slow_big['captions'] / slow_big['seconds']:7,.0f} "
          f"captions/s: {speed[f'let-it-wag, {bigger}']:5.1f}x (tagged {fast_big['captions_tagged']:,})")
    print(f"  goal >= {GOAL_SPEEDUP:.0f}x for the Let it Wag! list: on the corpus "
          f"{'MET' if speed['let-it-wag'] >= GOAL_SPEEDUP else 'NOT MET'}, on the {bigger} "
          f"{'MET' if speed[f'let-it-wag, {bigger}'] >= GOAL_SPEEDUP else 'NOT MET'}")
    print(f"  the paper's computation in one process (above): {len(captions) / direct_seconds:,.0f} captions/s")
    results["speedup"] = speed
    print(f"load average now: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (other processes share them)")
    return _finish(args, results)


def _finish(args, results: dict) -> int:
    pairs = results["form_pairs"]["noun"]
    worst = min(found["agree"] / found["pairs"] for found in pairs.values())
    print(f"\nword-form pairs target >= {TARGET_FORM_PAIRS:.1%} (both fast modes): "
          f"{'MET' if worst >= TARGET_FORM_PAIRS else 'NOT MET'} ({worst:.2%})")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
