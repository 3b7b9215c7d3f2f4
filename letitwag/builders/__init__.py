"""Builders: mine rare concepts from frequency tables, collect, curate and publish a dataset.

Stages talk only through files (frequency tables, concept lists, manifests); none imports the
harness, and the frequency engine (``letitwag.frequency``) imports none of them.
"""
