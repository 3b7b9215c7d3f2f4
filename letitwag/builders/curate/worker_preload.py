"""Imported by the fork server before it forks validation workers: the validation modules
(Pillow, numpy, scipy, pyarrow) and the compiled pHash resize, loaded and checked against Pillow
here once, so each forked worker starts validating at once instead of paying numba's start-up."""

import letitwag.builders.curate.validate  # noqa: F401  (imported for the forked workers)
from letitwag.builders.curate.phash_resize import warm_up

warm_up()
