"""Explanation methods: ``gradcat`` (a root-to-leaf path through the block tree) and ``cam``
(class activation maps). Each takes a model and a batch tensor and answers in model-input
pixels; ``nestviz.api`` turns that into original-image pixels.

Calling the package is the one-call helper, ``nestviz.explain("cat.jpg")`` (see ``nestviz.api.explain``;
``nestviz/__init__.py`` makes the package callable). Nothing is imported here, so importing stays cheap.
"""
