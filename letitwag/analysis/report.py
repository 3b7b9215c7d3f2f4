"""Write the analysis outputs: ``analysis.json``, ``fits.csv``, ``joined.csv``, ``index.html``.

``analysis.json`` is the record of every number with its method and parameters; it is
written with sorted keys so the same inputs give the same bytes, except the one
``generated_at`` field. The HTML page is rendered with Jinja2 and autoescaping (concept and
model names come from user files), references only files next to it, and so reads offline.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

import jinja2
import pyarrow as pa
import pyarrow.csv as pacsv

from letitwag.io import atomic_write_text, atomic_write_with

ANALYSIS_FORMAT = "letitwag.analysis/1"
JOINED_COLUMNS = ("source", "model", "dataset", "task", "metric", "corpus", "count_type", "concept", "concept_id",
                  "match", "count", "score")

TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{{ title }}</title>
<style>
body{font-family:Georgia,serif;margin:2em auto;max-width:1200px;padding:0 1em;color:#222}
table{border-collapse:collapse;font-size:12px;margin:0.5em 0 1.5em}
td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f2f2f2} td.l,th.l{text-align:left}
figure{margin:1em 0} img{max-width:100%} .note{color:#555;font-size:13px}
</style></head><body>
<h1>{{ title }}</h1>
<p class="note">Generated {{ generated_at }} by letitwag {{ version }}. Every number below is also in
<a href="analysis.json">analysis.json</a> with its method and parameters; all fits are in
<a href="fits.csv">fits.csv</a>, all joined concepts in <a href="joined.csv">joined.csv</a>.</p>
<h2>Methods</h2>
<ul>{% for name, text in methods.items() %}<li><b>{{ name }}</b>: {{ text }}</li>{% endfor %}</ul>
{% if paper %}
<h2>Paper reproduction notes</h2>
<ul>{% for name, value in paper.methods.items() %}<li><b>{{ name }}</b>: {{ value }}</li>{% endfor %}</ul>
{% endif %}
<h2>Figures</h2>
{% for fig in figures %}<figure><img src="{{ fig.png }}" alt="{{ fig.title }}"><figcaption>{{ fig.title }}
(<a href="{{ fig.svg }}">SVG</a>)</figcaption></figure>{% endfor %}
<h2>All fits ({{ fits|length }})</h2>
<table><tr>{% for c in fit_columns %}<th class="l">{{ c }}</th>{% endfor %}</tr>
{% for row in fits %}<tr>{% for c in fit_columns %}<td{% if c in text_columns %} class="l"{% endif %}>{{ row[c]|fmt }}</td>{% endfor %}</tr>{% endfor %}
</table>
{% if paper %}
<h2>Long tail: rank-frequency exponents</h2>
<table><tr><th class="l">corpus</th><th class="l">count type</th><th>concepts</th><th>zero counts</th><th>exponent s</th><th>R&sup2;</th><th>top 10% share</th></tr>
{% for z in paper.zipf %}<tr><td class="l">{{ z.corpus }}</td><td class="l">{{ z.count_type }}</td><td>{{ z.n_concepts }}</td><td>{{ z.n_zero }}</td><td>{{ z.exponent|fmt }}</td><td>{{ z.r_squared|fmt }}</td><td>{{ z.top10pct_share|fmt }}</td></tr>{% endfor %}
</table>
<h2>Correlation of concept frequencies between pretraining sets</h2>
<p class="note">{{ paper.correlation_note }}</p>
<table><tr><th class="l">pair</th><th class="l">method</th><th>n</th><th>Spearman</th><th>paper notebook</th></tr>
{% for c in paper.correlations.paper_notebook %}<tr><td class="l">{{ c.corpus_a }} vs {{ c.corpus_b }}</td><td class="l">notebook procedure ({{ c.count_type_a }} / {{ c.count_type_b }})</td><td>{{ c.n_used }}</td><td>{{ c.spearman_rho|fmt }}</td><td>{{ c.notebook_printed|fmt }}</td></tr>{% endfor %}
{% for c in paper.correlations.concept_aligned %}<tr><td class="l">{{ c.corpus_a }} vs {{ c.corpus_b }}</td><td class="l">aligned by concept ({{ c.count_type }})</td><td>{{ c.n_shared_concepts }}</td><td>{{ c.spearman_rho|fmt }}</td><td></td></tr>{% endfor %}
</table>
<h2>Misalignment degrees</h2>
<table><tr><th class="l">corpus</th><th>misaligned samples</th><th>corpus size</th><th>degree %</th><th>paper %</th></tr>
{% for m in paper.misalignment %}<tr><td class="l">{{ m.corpus }}</td><td>{{ m.misaligned_samples }}</td><td>{{ m.corpus_size }}</td><td>{{ m.degree_percent|fmt }}</td><td>{{ m.paper_percent|fmt }}</td></tr>{% endfor %}
</table>
<h2>Models not analysed</h2>
<ul>{% for m in paper.not_analysed %}<li>{{ m.model }}: {{ m.reason }}</li>{% endfor %}</ul>
{% endif %}
{% if let_it_wag %}
<h2>Let it Wag! vs ImageNet</h2>
<table><tr><th class="l">side</th><th>n</th><th>fitted slope</th><th>paper slope</th><th>intercept</th></tr>
{% for side in ("below", "above") %}<tr><td class="l">{{ side }} {{ let_it_wag.lines.threshold }}%</td><td>{{ let_it_wag.lines[side].n }}</td><td>{{ let_it_wag.lines[side].slope|fmt }}</td><td>{{ let_it_wag.lines.paper_slopes[side] }}</td><td>{{ let_it_wag.lines[side].intercept|fmt }}</td></tr>{% endfor %}
</table>
{% if let_it_wag.overlay %}<p>New results overlaid: {% for o in let_it_wag.overlay %}{{ o.model }} ({{ o.imagenet_top1|fmt }}, {{ o.let_it_wag_top1|fmt }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{% if let_it_wag.not_overlaid %}<p class="note">Not overlaid: {% for o in let_it_wag.not_overlaid %}{{ o.model }} ({{ o.reason }}){% if not loop.last %}; {% endif %}{% endfor %}</p>{% endif %}
{% endif %}
{% for suite in suites %}
<h2>Suite datasets not evaluated ({{ suite.not_evaluated|length }})</h2>
<p>From <code>{{ suite.folder }}</code>; the fits above cover only the datasets it evaluated.</p>
{% if suite.not_evaluated %}<table><tr><th class="l">dataset</th><th class="l">status</th><th class="l">reason / how to get it</th></tr>
{% for d in suite.not_evaluated %}<tr><td class="l">{{ d.dataset }}</td><td class="l">{{ d.status }}</td><td class="l"><code>{{ d.reason }}</code></td></tr>{% endfor %}
</table>{% endif %}
{% endfor %}
<h2>Concepts not joined ({{ unjoined|length }})</h2>
{% if unjoined %}<table><tr><th class="l">model</th><th class="l">dataset</th><th class="l">metric</th><th class="l">concept</th><th class="l">reason</th></tr>
{% for u in unjoined %}<tr><td class="l">{{ u.model }}</td><td class="l">{{ u.dataset }}</td><td class="l">{{ u.metric }}</td><td class="l">{{ u.concept }}</td><td class="l">{{ u.reason }}</td></tr>{% endfor %}
</table>{% else %}<p>Every concept joined.</p>{% endif %}
<h2>Excluded scores ({{ excluded_total }})</h2>
{% if excluded %}<table><tr><th class="l">model</th><th class="l">dataset</th><th class="l">reason</th><th>n</th><th class="l">concepts</th></tr>
{% for e in excluded %}<tr><td class="l">{{ e.model }}</td><td class="l">{{ e.dataset }}</td><td class="l">{{ e.reason }}</td><td>{{ e.concepts|length }}</td><td class="l">{{ e.concepts|join(", ") }}</td></tr>{% endfor %}
</table>{% else %}<p>No score was excluded.</p>{% endif %}
</body></html>
"""

FIT_COLUMNS = ("role", "model", "corpus", "count_type", "task", "metric", "datasets", "n_concepts", "bins",
               "edge_rule", "bins_kept", "binned_pearson_r", "binned_p", "slope_per_decade", "slope_ci95_low",
               "slope_ci95_high", "intercept", "pearson_r", "spearman_rho")
TEXT_COLUMNS = ("role", "model", "corpus", "count_type", "task", "metric", "datasets", "edge_rule")


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "–"
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.3f}"
    return str(value)


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def write_json(out_dir: Path, analysis: dict) -> Path:
    path = out_dir / "analysis.json"
    atomic_write_text(path, json.dumps(analysis, indent=1, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n")
    return path


def write_csv(path: Path, rows: list[dict], columns: tuple[str, ...] | list[str]) -> Path:
    table = pa.Table.from_pydict({c: [row.get(c) for row in rows] for c in columns})
    atomic_write_with(path, lambda tmp: pacsv.write_csv(table, tmp))
    return path


def write_html(out_dir: Path, analysis: dict, fit_rows: list[dict]) -> Path:
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
    env.filters["fmt"] = _fmt
    paper = analysis.get("paper")
    html = env.from_string(TEMPLATE).render(
        title=analysis["title"], generated_at=analysis["generated_at"], version=analysis["letitwag_version"],
        methods=analysis["methods"], paper=paper, figures=analysis["figures"], fits=fit_rows,
        fit_columns=FIT_COLUMNS, text_columns=TEXT_COLUMNS, let_it_wag=analysis.get("let_it_wag_vs_imagenet"),
        unjoined=analysis["join"]["unjoined"], excluded=analysis["join"]["excluded"],
        excluded_total=sum(len(e["concepts"]) for e in analysis["join"]["excluded"]),
        suites=analysis.get("suites", []),
    )
    path = out_dir / "index.html"
    atomic_write_text(path, html)
    return path
