"""The embedded demo: the whole pipeline offline on built-in data in a few minutes.

    from letitwag.demo import DemoOptions, run_demo
    records = run_demo("demo-out", DemoOptions.quick())

Steps: 1 the paper's analysis from bundled data, 2 mining the rarest LAION-400M concepts,
3 a mini dataset build (drawn images, local kNN backend + folder source, curation, HF layout,
``datasets.load_dataset``), 4 evaluation with tiny RANDOM-WEIGHT models (plumbing only),
5 the leaderboard site. ``letitwag demo --out DIR`` is the command-line face.
"""

from letitwag.demo.runner import DemoOptions, StepRecord, run_demo

__all__ = ["DemoOptions", "StepRecord", "run_demo"]
