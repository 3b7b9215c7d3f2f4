"""Builders: count concept frequencies, mine rare concepts, collect, curate and publish a dataset.

Stages talk only through files (frequency tables, concept lists, manifests); none imports the
harness.
"""
