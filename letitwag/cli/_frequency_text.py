"""``letitwag frequency count | show``: count concepts in captions, and look at any frequency table.

Thin layer over ``letitwag.frequency.count.count_text`` and ``letitwag.tables.FrequencyTable``;
the library modules are imported inside the handlers so ``letitwag --help`` stays fast.
"""

from __future__ import annotations

from pathlib import Path

from letitwag import cli

COUNT_DESCRIPTION = """\
Count how many captions mention each concept (documents) and how often (occurrences).

Matching modes (docs/frequency.md compares them on real captions):
  phrase (default)  word-bounded, order kept, the last word through its noun forms: "dogs",
                    "dog's" count for "dog", "geese" for "goose", "golden retrievers" for
                    "golden retriever"; "hot dog" counts for "hot dog" and "dog" unless
                    --longest-match. Verb and adjective forms do not count ("is" is not "being").
  bag               every word of the concept, through its noun forms, anywhere in the caption
                    ("a dog that is hot" counts for "hot dog").
  paper             the paper's counting, exactly: a spaCy English pipeline (--spacy-model) tags
                    the captions, and a caption counts when every word of the concept, lemmatised
                    as the paper did, is among its NOUN/PROPN lemmas. Only captions the fast
                    matcher finds could match are tagged. Needs spaCy and an English pipeline.
The fast modes read a concept word as the paper did, through its noun lemma ("men" counts
what "man" counts; --concept-words as-written keeps it as written), but cannot tell a noun from
a verb, adjective or function word of the same spelling: the table's pos_ambiguous column marks
the concepts where fast and paper counts may part (a word that is also a verb, adjective or
adverb form, or a spaCy English stop word such as "her" or "and").

Inputs (--captions, any mix): parquet, CSV, TSV, JSON lines (.jsonl/.ndjson/.json), plain
text (.txt, one caption per line), webdataset tars (.tar: the .txt member, else the caption
field of the .json member; sample id = webdataset key), folders (searched recursively; a
folder written by datasets' save_to_disk is read as a dataset) and hf:DATASET (a Hub id or
a Hub-layout folder, loaded with datasets.load_dataset; every split is counted).

Outputs in --out: text.parquet (letitwag.frequency-table/1, count type "text"),
text.provenance.json (inputs and their fingerprints, parameters, skipped rows by reason,
shards computed/reused, times), shards/ (one partial + completion marker per shard) and,
with --postings, text_postings.parquet (sample_id, concept_id).

Resume: rerun the same command after an interruption (even kill -9); finished shards whose
inputs and parameters are unchanged are reused, and the table is byte-identical to an
uninterrupted run's. Null, blank, non-UTF-8 and malformed rows are skipped and counted."""

COUNT_EXAMPLES = """\
  letitwag frequency count --captions laion/part-*.parquet --concepts all --out counts/
  letitwag frequency count --captions captions.tsv --text-column TEXT --id-column key \\
      --concepts let-it-wag --postings --out counts/
  letitwag frequency count --captions shards/ --concepts my_concepts.txt --mode bag --workers 8 --out counts/
  letitwag frequency count --captions captions.parquet --concepts let-it-wag --mode paper \\
      --spacy-model en_core_web_lg --out counts-paper/
  letitwag frequency count --captions hf:my-org/captions --concepts imagenet --executor ray \\
      --ray-address auto --out counts/"""

SHOW_EXAMPLES = """\
  letitwag frequency show counts/text.parquet --rarest 20
  letitwag frequency show counts/text.parquet --concept "golden retriever"
  letitwag frequency show counts/text.parquet --concept leaf --forms
  letitwag frequency show paper:laion400m:matched --most-frequent 10
  letitwag frequency show paper:cc3m --concept Harriss_Hawk"""


def register(subparsers) -> None:
    _register_count(subparsers)
    _register_show(subparsers)


def _register_count(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "count",
        help="text frequency: count concept mentions in a caption corpus (sharded, resumable)",
        description=COUNT_DESCRIPTION,
        examples=COUNT_EXAMPLES,
    )
    parser.add_argument("--captions", nargs="+", required=True, metavar="PATH",
                        help="caption files, globs (quote them), folders or hf:DATASET; formats above")
    parser.add_argument("--concepts", required=True, metavar="LIST",
                        help="concept list: a bundled name (all, let-it-wag, imagenet, cub, ...) or a file "
                        "(letitwag.concepts/1 JSON, CSV/TSV with an id column, or one id per line)")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR", help="output directory (created)")
    parser.add_argument("--mode", default="phrase", choices=["phrase", "bag", "paper"],
                        help="phrase: word-bounded phrase match (default); bag: every concept word anywhere; paper: "
                        "the paper's tagger-based counting (e.g. --mode paper --spacy-model en_core_web_lg)")
    parser.add_argument("--forms", default="noun", choices=["noun", "lookup"],
                        help="phrase/bag: which caption words count for a concept word. noun (default): the word and "
                        "the tokens spaCy's rule lemmatiser reads as that noun (chickadees, geese, leaves -> leaf); "
                        "lookup: spaCy's part-of-speech-blind lookup table (is -> be, leaves -> leave), the "
                        "behaviour before noun forms (e.g. --forms lookup)")
    parser.add_argument("--concept-words", default="lemma", choices=["lemma", "as-written"],
                        help="phrase/bag with noun forms: how a concept word is read. lemma (default): through its "
                        "noun lemma, as the paper lemmatised concept words, so 'men' counts what 'man' counts and "
                        "'airplanes' what 'airplane' counts; as-written: the word itself and its own plurals "
                        "(e.g. --concept-words as-written)")
    parser.add_argument("--spacy-model", default=None, metavar="NAME",
                        help="paper mode: the spaCy pipeline (package name or folder) that tags captions, e.g. "
                        "en_core_web_lg; unset: en_core_web_lg when installed, else the largest installed English one")
    parser.add_argument("--unknown-words", default="require", choices=["require", "drop"],
                        help="paper mode: require (default): a caption needs every word of the concept; drop: as the "
                        "paper did, words no caption of the corpus holds are dropped from the concept first (so "
                        "'kite bird of prey' may count every 'kite bird'), e.g. --unknown-words drop")
    parser.add_argument("--tag-every-caption", action="store_true",
                        help="paper mode: tag every caption, as the paper did, instead of only those that may "
                        "count (same counts, many times slower; for checking)")
    parser.add_argument("--longest-match", action="store_true",
                        help="phrase mode: a mention inside a longer concept's mention counts only for the "
                        "longer one ('hot dog' no longer counts for 'dog')")
    parser.add_argument("--no-aliases", action="store_true",
                        help="match concept names only, not their aliases (bundled aliases fix the lists' typos)")
    parser.add_argument("--text-column", default=None,
                        help="column/field holding the caption (parquet, CSV/TSV, JSON lines, .json members, "
                        "datasets); unset: the first of caption, text, TEXT, txt, prompt, sentence")
    parser.add_argument("--id-column", default=None,
                        help="column/field holding the sample id (used by --postings); unset: "
                        "'<file>:<row>' (row from 0), the webdataset key for tars, '<dataset>/<split>:<row>'")
    parser.add_argument("--postings", action="store_true",
                        help="also write text_postings.parquet (sample_id, concept_id) for frequency match")
    parser.add_argument("--executor", default="local", choices=["local", "ray"],
                        help="local: process pool on this machine; ray: Ray tasks (local Ray, or --ray-address)")
    parser.add_argument("--workers", type=int, default=None,
                        help="local: worker processes (1 = in this process); ray without --ray-address: CPUs of "
                        "the local Ray; unset: the CPUs available")
    parser.add_argument("--ray-address", default=None,
                        help="join a running Ray cluster (e.g. auto, ray://head:10001); its nodes need letitwag "
                        "installed and must see the --captions paths; partials come back to this machine")
    parser.add_argument("--shard-rows", type=int, default=None,
                        help="rows per shard (default 262,144, and 16,384 in paper mode; a parquet shard is whole row "
                        "groups unless one group is longer; a webdataset tar is always one shard); smaller shards "
                        "resume finer")
    parser.add_argument("--corpus-name", default=None,
                        help="corpus name stored in the table; unset: the first input's name")
    parser.set_defaults(handler=_run_count)


def _register_show(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "show",
        help="print the rarest / most frequent concepts of a frequency table, or one concept's counts",
        description="Print rows of a frequency table: one written by letitwag frequency, or a bundled paper "
        "table given as paper:<corpus>[:<count type>] (count types: matched (default), text, image, "
        "text_lowercased or a raw paper name such as rampp0.5). Default: --rarest 20.",
        examples=SHOW_EXAMPLES,
    )
    parser.add_argument("table", metavar="TABLE", help="a table parquet file or paper:<corpus>[:<count type>]")
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--rarest", type=int, metavar="N", help="the N concepts with the fewest documents")
    what.add_argument("--most-frequent", type=int, metavar="N", help="the N concepts with the most documents")
    what.add_argument("--concept", metavar="NAME", help="one concept, by id or display name (case-insensitive)")
    parser.add_argument("--corpus", default=None,
                        help="keep only this corpus (tables may hold several); unset: all")
    parser.add_argument("--count-type", default=None,
                        help="keep only this count type (text, image, matched, ...); unset: all")
    parser.add_argument("--forms", action="store_true",
                        help="with --concept: also list the caption words that count for it in the fast modes, as "
                        "the table was counted (phrase/bag, noun or lookup forms; the defaults for other tables), "
                        "the noun lemma a concept word is read through (men -> man), and which forms a tagger may "
                        "not read as nouns (also verb/adjective/adverb forms, stop words), e.g. --concept leaf --forms")
    parser.set_defaults(handler=_run_show)


def _run_count(args) -> int:
    import pyarrow.compute as pc

    from letitwag.frequency.count import count_text

    table = count_text(
        args.captions, args.concepts, args.out,
        mode=args.mode, forms=args.forms, concept_words=args.concept_words, longest_match=args.longest_match,
        use_aliases=not args.no_aliases,
        spacy_model=args.spacy_model, unknown_words=args.unknown_words, tag_every_caption=args.tag_every_caption,
        text_column=args.text_column, id_column=args.id_column, postings=args.postings,
        executor=args.executor, workers=args.workers, ray_address=args.ray_address,
        shard_rows=args.shard_rows, corpus_name=args.corpus_name,
    )
    provenance = table.provenance
    execution = provenance["execution"]
    skipped = ", ".join(f"{reason} {n}" for reason, n in provenance["skipped"].items()) or "none"
    print(f"wrote {args.out / 'text.parquet'}: {len(table.table)} concepts, {provenance['corpus_size']} samples "
          f"(skipped: {skipped}); shards: {execution['computed']} computed, {execution['reused']} reused")
    if provenance.get("postings"):
        print(f"postings: {provenance['postings']}")
    print("\n10 rarest:")
    _print_rows(table.rarest(10))
    print("\n10 most frequent:")
    frequent = table.most_frequent(10)
    _print_rows(frequent.filter(pc.greater(frequent["documents"], 0)))
    return 0


def _run_show(args) -> int:
    from letitwag.errors import UserInputError
    from letitwag.tables import FrequencyTable

    table = FrequencyTable.read(args.table)
    if args.corpus is not None or args.count_type is not None:
        table = table.select(corpus=args.corpus, count_type=args.count_type)
    if args.forms and args.concept is None:
        raise UserInputError("--forms lists one concept's caption forms: give --concept NAME too")
    if args.concept is not None:
        rows = table.lookup(args.concept)
        if rows.num_rows == 0:
            raise UserInputError(f"{args.table}: no concept {args.concept!r}; try --rarest N to see concept ids")
        if args.forms:
            _print_rows(rows)
            _print_forms(rows, table.provenance)
            return 0
    elif args.most_frequent is not None:
        rows = table.most_frequent(args.most_frequent)
    else:
        rows = table.rarest(args.rarest if args.rarest is not None else 20)
    _print_rows(rows)
    return 0


def _print_forms(rows, provenance: dict) -> None:
    """The caption words that count for the concept of ``rows`` in the fast modes."""
    from letitwag.concepts import Concept, bundled_concepts
    from letitwag.frequency.text.forms import NounForms, english_noun_forms, word_forms
    from letitwag.frequency.text.matcher import caption_forms

    concept_id, name = rows.column("concept_id")[0].as_py(), rows.column("name")[0].as_py()
    concept = bundled_concepts("all").get(concept_id) or Concept(concept_id, name=name)
    parameters = provenance.get("parameters", {})
    counted_as = parameters.get("mode") in ("phrase", "bag")
    modes = [parameters["mode"]] if counted_as else ["phrase", "bag"]
    source = parameters.get("forms", "noun") if counted_as else "noun"
    use_aliases = parameters.get("use_aliases", True) if counted_as else True
    # noun-form tables counted before concept words were lemmatised lack the parameter: as written
    concept_words = parameters.get("concept_words", "as-written") if counted_as and source == "noun" else "lemma"
    forms = word_forms(source, concept_words)
    origin = "as this table was counted" if counted_as else "the defaults"
    print(f"\ncaption forms of {concept_id!r} ({origin}: {source} forms, {forms.parameters['forms_source']} "
          f"{forms.parameters['forms_version']}; case and punctuation ignored):")
    nouns = forms if isinstance(forms, NounForms) else english_noun_forms()
    texts = [text.split(" ") for text in concept.surface_forms()[: None if use_aliases else 1]]
    written = [word for words in texts for word in words]
    # a phrase keeps all but its last word as written
    inflected = written if "bag" in modes else [words[-1] for words in texts]
    read_as = {word: lemma for word in inflected if (lemma := nouns.concept_lemma(word)) != word}
    if read_as and forms is nouns:
        print("  inflected concept words read through their noun lemma (--concept-words lemma): "
              + ", ".join(f"{word} -> {lemma}" for word, lemma in read_as.items()))
    for mode in modes:
        rule = "in order, adjacent, last word inflected" if mode == "phrase" else "every word anywhere, each inflected"
        print(f"  {mode} ({rule}):")
        for words in caption_forms(concept, mode, forms, use_aliases):
            print("    " + " ".join(tokens[0] if len(tokens) == 1 else "{" + ", ".join(tokens) + "}"
                                    for _, tokens in words))
    ambiguous = {word: found for word in written if (found := nouns.ambiguous_forms(word))}
    if ambiguous:
        readings = "; ".join(f"{form} ({'/'.join(kinds)})" for found in ambiguous.values() for form, kinds in found.items())
        print(f"  pos_ambiguous: a tagger may not read these as nouns: {readings}")
    else:
        print("  pos_ambiguous: no (no form is also a verb, adjective or adverb form, nor a stop word)")
    if parameters.get("mode") == "paper":
        terms = provenance.get("paper", {}).get("terms", {}).get(concept_id)
        print(f"  this table was counted by --mode paper; its terms for this concept: "
              f"{', '.join(terms) if terms else 'its lower-cased words'}")


def _print_rows(rows) -> None:
    """An aligned text table of concept, corpus, count type and counts (and the ambiguity flag where known)."""
    columns = ["concept_id", "corpus", "count_type", "documents", "occurrences", "corpus_size"]
    if "pos_ambiguous" in rows.column_names and rows.column("pos_ambiguous").null_count < rows.num_rows:
        columns.append("pos_ambiguous")
    records = [["" if value is None else str(value) for value in row] for row in
               zip(*(rows.column(name).to_pylist() for name in columns))]
    widths = [max([len(name)] + [len(record[i]) for record in records]) for i, name in enumerate(columns)]
    numeric = {"documents", "occurrences", "corpus_size"}
    for record in [columns] + records:
        cells = [cell.rjust(width) if name in numeric else cell.ljust(width)
                 for cell, width, name in zip(record, widths, columns)]
        print("  ".join(cells).rstrip())
