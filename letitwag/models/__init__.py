"""One ``--model`` spec -> a loaded encoder or generator, shared by the builders and the harness.

Specs: ``open_clip:ARCH/PRETRAINED``, ``open_clip:hf-hub:ORG/NAME``, ``transformers:ID_OR_DIR``,
``diffusers:ID_OR_DIR``, ``python:package.module:factory``.
"""
