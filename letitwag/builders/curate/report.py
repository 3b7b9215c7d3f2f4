"""The curation report: JSON for programs, Markdown and HTML (with thumbnails) for people.

Why thumbnails of rejections: a threshold is only trustworthy once someone has looked at what
it removed. Each step shows up to ``EXAMPLES`` rejected images (the first by candidate id, so
the report is reproducible); validation rejections have no pixels and are listed by reason.
Every user-supplied string is HTML-escaped in the HTML page.
"""

from __future__ import annotations

import html
import io
import json
import logging
from collections import Counter
from pathlib import Path

import pandas as pd
from PIL import Image

from letitwag.builders.curate.config import STEP_ORDER, CurateConfig
from letitwag.concepts import ConceptList
from letitwag.io import atomic_write_bytes, atomic_write_json, atomic_write_text

LOGGER = logging.getLogger(__name__)
EXAMPLES = 8
THUMBNAIL = 128


def _thumbnail(out_dir: Path, image_path: str, name: str) -> str | None:
    try:
        with Image.open(out_dir / image_path) as image:
            image.draft("RGB", (THUMBNAIL, THUMBNAIL))
            image = image.convert("RGB")
            image.thumbnail((THUMBNAIL, THUMBNAIL))
            buffer = io.BytesIO()
            image.save(buffer, format="JPEG", quality=80)
    except (OSError, ValueError, Image.DecompressionBombError):
        return None
    relative = f"report/thumbs/{name}.jpg"
    atomic_write_bytes(out_dir / relative, buffer.getvalue())
    return relative


def build_report(out_dir: Path, frame: pd.DataFrame, concepts: ConceptList, steps: list[dict],
                 config: CurateConfig, warnings: list[str] = ()) -> dict:
    """Per-step and per-concept counts, with example rejections (thumbnails written under report/)."""
    for record in steps:
        rejected = frame[frame["rejected_by"] == record["step"]].sort_values("candidate_id").head(EXAMPLES)
        examples = []
        for index, row in enumerate(rejected.itertuples()):
            thumb = None
            if record["step"] != "validate":
                thumb = _thumbnail(out_dir, row.image_path, f"{record['step']}-{index}")
            examples.append({"candidate_id": row.candidate_id, "concept_id": row.concept_id,
                             "reason": row.reason, "thumbnail": thumb})
        record["kept"] = record["input"] - record["rejected"]
        record["examples"] = examples
        record["reasons"] = dict(Counter(
            str(r).split(" of ")[0].split(":")[0] for r in frame.loc[frame["rejected_by"] == record["step"], "reason"]
        ).most_common(10))
    candidates = frame.groupby("concept_id").size().to_dict()
    kept = frame[frame["rejected_by"].isna()].groupby("concept_id").size().to_dict()
    rejections = frame.groupby(["concept_id", "rejected_by"]).size().to_dict()  # rows kept: no key
    per_concept = {
        concept: {
            "candidates": int(candidates.get(concept, 0)),
            "rejected_by": {step: int(rejections[concept, step]) for step in STEP_ORDER
                            if (concept, step) in rejections},
            "kept": int(kept.get(concept, 0)),
        }
        for concept in concepts.ids
    }
    return {
        "format": "letitwag.curation-report/1",
        "config": config.to_json(),
        "totals": {"candidates": int(len(frame)), "kept": int(frame["rejected_by"].isna().sum()),
                   "concepts": len(concepts),
                   "concepts_kept": sum(1 for c in per_concept.values() if c["kept"] > 0)},
        "warnings": list(warnings),
        "steps": steps,
        "per_concept": per_concept,
    }


def _markdown(report: dict) -> str:
    lines = ["# Curation report", "",
             f"{report['totals']['candidates']} candidates -> {report['totals']['kept']} kept images in "
             f"{report['totals']['concepts_kept']} of {report['totals']['concepts']} concepts.", "",
             *(f"**Warning:** {warning}\n" for warning in report["warnings"]),
             "| # | step | enabled | in | rejected | kept | settings |", "|---|---|---|---|---|---|---|"]
    for number, step in enumerate(report["steps"], start=1):
        settings = {k: v for k, v in step["settings"].items() if k != "enabled"}
        lines.append(f"| {number} | {step['step']} | {step['settings']['enabled']} | {step['input']} | "
                     f"{step['rejected']} | {step['kept']} | `{json.dumps(settings, sort_keys=True)}` |")
    lines += ["", "## Rejected examples", ""]
    for step in report["steps"]:
        if not step["examples"]:
            continue
        lines.append(f"### {step['step']}")
        lines.append("")
        for example in step["examples"]:
            picture = f"![{example['candidate_id']}]({example['thumbnail']}) " if example["thumbnail"] else ""
            lines.append(f"- {picture}`{example['candidate_id']}` ({example['concept_id']}): {example['reason']}")
        lines.append("")
    lines += ["## Per concept", "", "| concept | candidates | kept | rejected by step |", "|---|---|---|---|"]
    for concept, counts in report["per_concept"].items():
        steps = ", ".join(f"{k}: {v}" for k, v in counts["rejected_by"].items())
        lines.append(f"| {concept} | {counts['candidates']} | {counts['kept']} | {steps} |")
    return "\n".join(lines) + "\n"


def _html(report: dict) -> str:
    escape = html.escape
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>Curation report</title>",
             "<style>body{font-family:sans-serif;margin:2em}td,th{border:1px solid #ccc;padding:4px}"
             "table{border-collapse:collapse}figure{display:inline-block;width:150px;margin:4px;font-size:11px;"
             "vertical-align:top}</style></head><body><h1>Curation report</h1>",
             f"<p>{report['totals']['candidates']} candidates &rarr; {report['totals']['kept']} kept images in "
             f"{report['totals']['concepts_kept']} of {report['totals']['concepts']} concepts.</p>",
             *(f"<p><strong>Warning:</strong> {escape(warning)}</p>" for warning in report["warnings"]),
             "<table><tr><th>step</th><th>enabled</th><th>in</th><th>rejected</th><th>kept</th><th>settings</th></tr>"]
    for step in report["steps"]:
        settings = escape(json.dumps({k: v for k, v in step["settings"].items() if k != "enabled"}, sort_keys=True))
        parts.append(f"<tr><td>{escape(step['step'])}</td><td>{step['settings']['enabled']}</td><td>{step['input']}"
                     f"</td><td>{step['rejected']}</td><td>{step['kept']}</td><td><code>{settings}</code></td></tr>")
    parts.append("</table>")
    for step in report["steps"]:
        if not step["examples"]:
            continue
        parts.append(f"<h2>{escape(step['step'])}: rejected examples</h2><div>")
        for example in step["examples"]:
            picture = f"<img src='{escape(example['thumbnail'])}' alt=''>" if example["thumbnail"] else ""
            parts.append(f"<figure>{picture}<figcaption><b>{escape(example['concept_id'])}</b><br>"
                         f"{escape(example['candidate_id'])}<br>{escape(str(example['reason']))}</figcaption></figure>")
        parts.append("</div>")
    parts.append("<h2>Per concept</h2><table><tr><th>concept</th><th>candidates</th><th>kept</th><th>rejected by step</th></tr>")
    for concept, counts in report["per_concept"].items():
        steps = escape(", ".join(f"{k}: {v}" for k, v in counts["rejected_by"].items()))
        parts.append(f"<tr><td>{escape(concept)}</td><td>{counts['candidates']}</td><td>{counts['kept']}</td>"
                     f"<td>{steps}</td></tr>")
    parts.append("</table></body></html>")
    return "\n".join(parts) + "\n"


def write_report(out_dir: Path, frame: pd.DataFrame, concepts: ConceptList, steps: list[dict],
                 config: CurateConfig, warnings: list[str] = ()) -> dict:
    """Write ``report.json``, ``report.md`` and ``report.html`` into ``out_dir``; returns the report."""
    report = build_report(out_dir, frame, concepts, steps, config, warnings)
    atomic_write_json(out_dir / "report.json", report)
    atomic_write_text(out_dir / "report.md", _markdown(report))
    atomic_write_text(out_dir / "report.html", _html(report))
    LOGGER.info("curation report: %s", out_dir / "report.html")
    return report
