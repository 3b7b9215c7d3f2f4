"""Analysis: per-concept performance against pretraining frequency (the paper's log-linear finding)."""
