"""letitwag: the toolkit behind the *Let it Wag!* long-tail benchmark.

Zero-shot performance of CLIP-style and text-to-image models grows only log-linearly with how
often a concept appears in the pretraining data (Udandarao et al., "No 'Zero-Shot' Without
Exponential Data", NeurIPS 2024). This package measures that end to end:

* ``letitwag.frequency`` counts concepts in a pretraining corpus (text, image tags, both);
* ``letitwag.builders`` mines rare concepts and builds, curates and publishes a dataset;
* ``letitwag.harness`` scores zero-shot classifiers and text-to-image models on it;
* ``letitwag.analysis`` relates per-concept performance to pretraining frequency;
* ``letitwag.leaderboard`` verifies submissions and renders a static leaderboard.

Formats shared by every stage live in ``letitwag.concepts`` and ``letitwag.tables``.
"""

__version__ = "0.1.0"
