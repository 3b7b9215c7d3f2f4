"""The fault suite's fixtures, defined in ``fault_helpers`` (which the test modules import by name)."""

from fault_helpers import (  # noqa: F401 - fixtures
    candidates_dir,
    caption_corpus,
    eval_dataset,
    one_torch_thread,
    tiny_clip,
    tiny_tmpfs,
    uninterrupted_counts,
    uninterrupted_curation,
)
