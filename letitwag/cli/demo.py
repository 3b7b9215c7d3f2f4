"""``letitwag demo``: the whole pipeline offline on embedded data (thin layer over ``letitwag.demo``)."""

from __future__ import annotations

import json
from pathlib import Path

from letitwag import cli

EXAMPLES = """  letitwag demo --out demo-out
  letitwag demo --out /tmp/demo --quick          # smallest sizes, no figures in step 1
  letitwag --log-level WARNING demo --out demo-out --seed 1"""


def register(subparsers) -> None:
    parser = cli.add_command(
        subparsers,
        "demo",
        help="run the whole pipeline offline on embedded data and print where each output is",
        description="Five steps, each into its own folder under --out (rebuilt on every run; nothing else in "
        "--out is touched):\n"
        "  1 letitwag analyze --paper: the paper's log-linear findings from the bundled data, with plots\n"
        "  2 letitwag mine --table paper:laion400m --exclude-zero: the rarest concepts and their counts\n"
        "  3 a mini build: images drawn on the spot (CC0) for the rarest concepts, a tiny random-weight open_clip,\n"
        "    `letitwag knn build` + `letitwag knn serve` on a free 127.0.0.1 port, collect from it and a folder:\n"
        "    source, curate (planted duplicates and broken files), publish in the HF layout, datasets.load_dataset\n"
        "  4 python -m letitwag.evaluate on that dataset: classification with the tiny CLIP and t2i with a tiny\n"
        "    diffusers pipeline: PLUMBING RUNS WITH RANDOM WEIGHTS, their numbers mean nothing\n"
        "  5 letitwag leaderboard build: the paper's 40 models, plus the demo run validated (every metric\n"
        "    recomputed) and listed as an unranked plumbing run (random weights)\n"
        "Needs no network. Prints a summary (outputs, wall time per step); OUT/demo-summary.json holds it all.",
        examples=EXAMPLES,
    )
    parser.add_argument("--out", required=True, type=Path, help="demo output folder (created if missing)")
    parser.add_argument("--quick", action="store_true",
                        help="smallest sizes: 2 concepts x 6 images, 50 bootstrap samples and no figures in step 1")
    parser.add_argument("--seed", type=int, default=0, help="seed of the drawn images, the tiny models and the metrics")
    parser.set_defaults(handler=_run)


def _describe(number: int, facts: dict) -> list[str]:
    """The few facts worth a line each in the printed summary (the rest is in demo-summary.json)."""
    if number == 1:
        head = facts["headline"]
        return [f"{facts['fits']} fits on {facts['joined_concept_rows']} concept rows "
                f"(bootstrap {facts['bootstrap']}, figures {'on' if facts['figures'] else 'off'})",
                f"zero-shot top-1 vs log10 frequency, {head['fits']} models ({', '.join(head['corpora'])}): binned "
                f"Pearson r {head['binned_pearson_r']['min']:.2f}..{head['binned_pearson_r']['max']:.2f}, slope "
                f"{head['slope_points_per_decade']['median']:.1f} accuracy points per 10x frequency (median)"]
    if number == 2:
        table = facts["table"]
        return [f"rarest non-zero concepts of {table['table']} ({table['count_type']}, {table['concepts']} concepts):"] + [
            f"  {count:>6}  {concept}" for concept, count in facts["rarest"]]
    if number == 3:
        loaded = facts["load_dataset"]
        return [f"concepts: {', '.join(facts['concepts'])}; images {facts['image_license']}",
                f"model: {facts['model']}",
                f"kNN backend served on {facts['knn_url']} (started and stopped by the demo)",
                f"{facts['candidates']} candidates; curation rejected {json.dumps(facts['curation'])}; "
                f"kept {facts['kept']}; per source: {json.dumps(facts['by_source'])}",
                "datasets.load_dataset: " + "; ".join(f"{split}: {info['rows']} rows, {info['classes']} classes"
                                                      for split, info in loaded.items()),
                f"wall time: {_stages(facts['seconds'])}"]
    if number == 4:
        return [facts["label"], f"classification: {_numbers(facts['classification'])}", f"t2i: {_numbers(facts['t2i'])}",
                f"wall time: {_stages(facts['seconds'])}"]
    return [f"{facts['entries_on_site']} entries on the site: the paper's 40 models and the demo run, "
            "listed as an unranked plumbing run (random weights)"]


def _numbers(metrics: dict) -> str:
    return ", ".join(f"{key} {value:.4g}" if isinstance(value, float) else f"{key} {value}"
                     for key, value in metrics.items() if key != "run")


def _stages(seconds: dict) -> str:
    return ", ".join(f"{name} {value:.1f} s" for name, value in seconds.items())


def _run(args) -> int:
    from letitwag.demo import DemoOptions, run_demo
    from letitwag.demo.runner import SUMMARY_FILE

    options = DemoOptions.quick(args.seed) if args.quick else DemoOptions(seed=args.seed)
    records = run_demo(args.out, options)
    print(f"\nletitwag demo{' (quick)' if args.quick else ''}: all {len(records)} steps done\n")
    for record in records:
        print(f"[{record.number}] {record.title}  ({record.seconds:.1f} s)")
        for line in _describe(record.number, record.facts):
            print(f"    {line}")
        for what, path in record.outputs.items():
            print(f"    -> {what}: {path}")
    total = sum(record.seconds for record in records)
    print(f"\nsteps took {total:.1f} s in all; summary: {Path(args.out).resolve() / SUMMARY_FILE}")
    return 0
