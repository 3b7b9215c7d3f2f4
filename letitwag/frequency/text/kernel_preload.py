"""Imported by the local executor's fork server (``LocalExecutor(preload=...)``) before it forks
text-counting workers: loading the compiled phrase kernel here, once, means each forked worker
starts counting at once instead of paying numba's ~0.7 s start-up itself."""

from letitwag.frequency.text.matcher import warm_up_phrase_kernel

warm_up_phrase_kernel()
