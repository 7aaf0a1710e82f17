"""Explanation methods: ``gradcat`` (a root-to-leaf path through the block tree) and ``cam``
(class activation maps). Each takes a model and a batch tensor and answers in model-input
pixels; ``nestviz.api`` turns that into original-image pixels.

The one-call helper ``nestviz.explain("cat.jpg")`` is ``nestviz.api.explain``. Nothing is imported here, so
importing stays cheap.
"""
