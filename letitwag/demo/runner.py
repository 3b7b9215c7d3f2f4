"""Run the whole demo: five steps, each timed, each into its own folder under ``out``.

Why one folder per step, rebuilt from scratch on every run: rerunning the demo into the same
directory must always work and always show the same thing; only the step folders this module
names are ever removed, so anything else a user keeps in ``out`` is left alone. The summary
(what each step made, where, how long it took) is returned and written to ``demo-summary.json``.
"""

from __future__ import annotations

import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from letitwag.demo.evaluation import PLUMBING_LABEL, EvalSizes
from letitwag.demo.mini_build import BuildSizes
from letitwag.demo.timing import timed
from letitwag.errors import UserInputError
from letitwag.io import atomic_write_json

logger = logging.getLogger(__name__)

SUMMARY_FILE = "demo-summary.json"
STEP_FOLDERS = ("1-analysis", "2-mine", "3-build", "4-evaluate", "5-leaderboard")


@dataclass(frozen=True)
class DemoOptions:
    """Sizes of every step; ``quick()`` is the smallest run that still exercises each stage for real."""

    seed: int = 0
    analysis_bootstrap: int = 1000
    analysis_figures: bool = True
    mined: int = 10  # rarest concepts shown
    build_concepts: int = 4  # the first N mined concepts get images
    build: BuildSizes = field(default_factory=BuildSizes)
    evaluation: EvalSizes = field(default_factory=EvalSizes)

    @classmethod
    def quick(cls, seed: int = 0) -> "DemoOptions":
        return cls(seed=seed, analysis_bootstrap=50, analysis_figures=False, mined=5, build_concepts=2,
                   build=BuildSizes(per_concept=6, pool_per_concept=3, knn_num_images=2, per_class=5),
                   evaluation=EvalSizes(bootstrap_samples=20, images_per_prompt=1, inference_steps=1))


@dataclass
class StepRecord:
    number: int
    title: str
    seconds: float = 0.0
    outputs: dict[str, str] = field(default_factory=dict)  # what -> path
    facts: dict = field(default_factory=dict)


def _timed(record: StepRecord, folder: Path, work: Callable[[Path, StepRecord], None]) -> StepRecord:
    if folder.exists():
        shutil.rmtree(folder)  # a clean rebuild of this step's own outputs
    folder.mkdir(parents=True)
    logger.info("demo step %d: %s", record.number, record.title)
    seconds: dict[str, float] = {}
    with timed(seconds, "step"):
        work(folder, record)
    record.seconds = seconds["step"]
    logger.info("demo step %d done in %.1f s", record.number, record.seconds)
    return record


def run_demo(out: str | Path, options: DemoOptions | None = None) -> list[StepRecord]:
    """Run the five demo steps into ``out``; returns their records (also in ``out/demo-summary.json``)."""
    from letitwag.demo import evaluation, leaderboard_step, mini_build, paper_steps

    options = options or DemoOptions()
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise UserInputError(f"--out {out}: is a file; give a folder for the demo outputs")
    out.mkdir(parents=True, exist_ok=True)
    state: dict = {}

    def analyze(folder: Path, record: StepRecord) -> None:
        findings = paper_steps.analyze_paper(folder, options.analysis_bootstrap, options.analysis_figures,
                                             options.seed)
        record.outputs["report"] = str(findings.report)
        record.facts = {"fits": findings.fits, "joined_concept_rows": findings.joined_rows,
                        "bootstrap": options.analysis_bootstrap, "figures": options.analysis_figures,
                        "headline": findings.headline}

    def mine(folder: Path, record: StepRecord) -> None:
        mined = paper_steps.mine_rarest(folder / "rarest.json", options.mined)
        state["concepts"] = mined.concepts
        record.outputs["concept list"] = str(mined.file)
        record.facts = {"table": mined.table, "rarest": mined.counts, "dropped_by": mined.dropped_by}

    def build(folder: Path, record: StepRecord) -> None:
        from letitwag.concepts import ConceptList

        concepts = ConceptList(list(state["concepts"])[: options.build_concepts], name="demo-mini-build")
        state["clip"] = mini_build.build_tiny_clip(folder / "models" / "tiny-open-clip", options.seed)
        built = mini_build.run_mini_build(folder, concepts, state["clip"], options.build, options.seed)
        state["hub"] = built.hub
        record.outputs.update({"drawn images": str(built.images), "kNN index": str(built.knn_index),
                               "candidates": str(built.candidates), "curation report": str(built.curated / "report.html"),
                               "HF dataset": str(built.hub)})
        record.facts = {"concepts": concepts.ids, "model": f"{state['clip']}: {PLUMBING_LABEL}", **built.facts}

    def evaluate(folder: Path, record: StepRecord) -> None:
        seconds: dict[str, float] = {}
        with timed(seconds, "classification"):
            classification = evaluation.evaluate_classification(state["hub"], state["clip"],
                                                                folder / "classification", options.evaluation,
                                                                options.seed)
        state["run"] = folder / "classification"
        with timed(seconds, "t2i (incl. building the tiny pipeline)"):
            generator = evaluation.build_tiny_generator(folder / "models" / "tiny-diffusers", options.seed)
            t2i = evaluation.evaluate_t2i(state["hub"], generator, state["clip"], folder / "t2i",
                                          options.evaluation, options.seed)
        record.outputs.update({"classification run": str(folder / "classification" / "results.json"),
                               "t2i run": str(folder / "t2i" / "results.json")})
        record.facts = {"label": PLUMBING_LABEL,
                        "classification": _metrics(classification, ("top1", "top5", "mean_per_class_recall")),
                        "t2i": _metrics(t2i, ("judge_top1", "judge_top5", "expected_clip_score", "max_clip_score")),
                        "seconds": seconds}

    def leaderboard(folder: Path, record: StepRecord) -> None:
        outcome = leaderboard_step.leaderboard_with_demo_run(folder, state["run"])
        record.outputs.update({"site": str(outcome.site_index), "demo board": str(outcome.board)})
        record.facts = {"entries_on_site": outcome.entries}

    steps = [(analyze, "letitwag analyze --paper: the paper's log-linear findings from bundled data"),
             (mine, "letitwag mine --table paper:laion400m: the rarest concepts"),
             (build, "mini build: drawn images -> knn build/serve + folder -> collect -> curate -> publish -> load"),
             (evaluate, "python -m letitwag.evaluate on the mini dataset (classification, t2i)"),
             (leaderboard, "letitwag leaderboard build: the paper's 40 models + the demo run")]
    records = []
    for number, ((work, title), name) in enumerate(zip(steps, STEP_FOLDERS), start=1):
        records.append(_timed(StepRecord(number, title), out / name, work))
        atomic_write_json(out / SUMMARY_FILE, {"format": "letitwag.demo-summary/1", "options": asdict(options),
                                               "steps": [asdict(r) for r in records]})
    return records


def _metrics(results: dict, keys: tuple[str, ...]) -> dict:
    metrics = results["metrics"]
    return {"run": results["out_dir"], "random_weights": results["model"].get("random_weights"),
            **{key: metrics.get(key) for key in keys}}
