"""``letitwag analyze``: performance against pretraining concept frequency (thin CLI layer)."""

from __future__ import annotations

import json
from pathlib import Path

from letitwag import cli
from letitwag.errors import UserInputError

EXAMPLES = """  letitwag analyze --paper --out report/
  letitwag analyze --results runs/vitb32/results.json --table paper:laion400m --out report/
  letitwag analyze --results scores.csv --table counts/text.parquet --count-type text --task retrieval --out r/
  letitwag analyze --paper --results runs/liw/results.json runs/in1k/results.json --table paper:laion400m --out r/
  letitwag analyze --results run/ --table paper:cc3m --edge-rule sparse:5 --bin-position centre --out r/"""


def _pairs(values: list[str] | None, option: str, as_float: bool) -> dict:
    out = {}
    for value in values or []:
        key, sep, target = value.rpartition("=")
        if not sep or not key or not target:
            raise UserInputError(f"{option} {value!r}: use NAME=VALUE")
        if as_float:
            try:
                out[key] = float(target)
            except ValueError:
                raise UserInputError(f"{option} {value!r}: {target!r} is not a number") from None
        else:
            out[key] = target
    return out


def _renames(path: str | None, pairs: list[str] | None) -> dict:
    renames = {}
    if path:
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as error:
            raise UserInputError(f"{path}: cannot read the rename map ({error}); give a JSON object "
                                 '{"results name": "table concept id"}') from None
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            raise UserInputError(f'{path}: the rename map must be a JSON object {{"results name": "table concept id"}}')
        renames.update(data)
    renames.update(_pairs(pairs, "--rename", as_float=False))
    return renames


def _handle(args) -> int:
    from letitwag.analysis.run import run_analysis

    analysis = run_analysis(
        args.out, results=args.results or (), table=args.table, paper=args.paper, count_type=args.count_type,
        corpus=args.corpus, metric=args.metric, task=args.task, bins=args.bins, edge_rule=args.edge_rule,
        position=args.bin_position, bootstrap=args.bootstrap, seed=args.seed,
        renames=_renames(args.rename_file, args.rename), per_dataset=args.per_dataset,
        imagenet_top1=_pairs(args.imagenet_top1, "--imagenet-top1", as_float=True), figures=not args.no_figures,
    )
    print(f"{len(analysis['fits'])} fits, {analysis['join']['n_joined']} joined concept rows, "
          f"{len(analysis['join']['unjoined'])} not joined -> {Path(args.out) / 'index.html'}")
    return 0


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers, "analyze",
        help="fit per-concept performance against pretraining frequency (the paper's log-linear analysis)",
        description="Join per-concept scores (results.json or a (concept, score) CSV/parquet) with a frequency "
                    "table and fit performance against log frequency two ways: the paper's binned Pearson "
                    "correlation and a per-concept regression with a bootstrap CI. --paper reruns every "
                    "analysis of the paper on the bundled data. Writes analysis.json, fits.csv, joined.csv, "
                    "figures/ (PNG + SVG) and index.html.",
        examples=EXAMPLES,
    )
    parser.add_argument("--results", nargs="+", metavar="RESULTS",
                        help="results.json files, run directories, or CSV/TSV/parquet tables of (concept, score)")
    parser.add_argument("--table", help="frequency table (.parquet) or paper:<corpus>[:<count type>]")
    parser.add_argument("--paper", action="store_true", help="also analyse all of the paper's bundled results")
    parser.add_argument("--count-type", help="count type to join: matched, text, image or a raw name "
                                             "(unset: the table's only type, else matched)")
    parser.add_argument("--corpus", help="corpus of the table to join (unset: the table's only corpus, else "
                                         "the one named in the model's pretrained tag)")
    parser.add_argument("--metric", help="per-concept field of results.json (unset: per_class_accuracy) or score "
                                         "column of a table")
    parser.add_argument("--task", choices=["classification", "retrieval", "t2i"],
                        help="task of the results (unset: from the file, else classification)")
    parser.add_argument("--bins", type=int, help="number of bins (unset: 12 for classification, 7 for retrieval/T2I, as in the paper)")
    parser.add_argument("--edge-rule", default="1,1",
                        help="end bins to drop: LOW,HIGH counts (paper: 1,1), sparse:K (fewer than K concepts) or none")
    parser.add_argument("--bin-position", default="upper", choices=["upper", "centre", "left"],
                        help="x position of a bin for the correlation (paper: upper edge)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples for the slope CI (0: off)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    parser.add_argument("--rename", nargs="+", metavar="NAME=ID",
                        help="explicit renames of results concept names to table concept ids, e.g. plane=airplane")
    parser.add_argument("--rename-file", help='JSON object {"results name": "table concept id"}')
    parser.add_argument("--per-dataset", action="store_true",
                        help="one fit per dataset instead of pooling a model's datasets (the paper pools)")
    parser.add_argument("--imagenet-top1", nargs="+", metavar="MODEL=PCT",
                        help="ImageNet accuracy (percent) of a results model, to place it on the Let it Wag! plot")
    parser.add_argument("--no-figures", action="store_true", help="skip the figures (numbers only)")
    parser.add_argument("--out", required=True, help="report folder")
    parser.set_defaults(handler=_handle)
