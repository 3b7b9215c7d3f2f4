"""Analysis: per-concept performance against pretraining frequency (the paper's log-linear finding).

``run.run_analysis`` is the entry point (``letitwag analyze`` wraps it): it reads per-concept
scores (``results_io``), joins them with a frequency table reporting every concept that does
not join (``join``), fits performance against log frequency two ways per model and metric
(``fits``: the paper's binned Pearson correlation and a per-concept regression with a seeded
bootstrap CI; ``grouping`` pools datasets as the paper does), reruns the paper's own
experiments and corpus statistics from the bundled data (``paper``, ``corpus_stats``), draws
the figures (``plots``; ``plots.plot_performance_vs_frequency`` is the one-model figure other
parts reuse) and writes ``analysis.json``, CSVs and an offline HTML page (``report``).

Submodules are imported on use so that importing the package stays cheap.
"""
