"""Collect candidate images per concept from folders, URL lists and kNN backends.

``collect(concepts, ["folder:PATH", "urls:FILE", "knn:URL"], out)`` writes a candidate manifest
(``letitwag.builders.manifest``, ``letitwag.candidates/1``) plus ``rejections.parquet`` with a
status and error for every file or URL that did not make it. Work is done in units with
completion markers (``runner``), so a killed run resumes where it stopped.
"""

from letitwag.builders.collect.runner import CollectOptions, collect

__all__ = ["CollectOptions", "collect"]
