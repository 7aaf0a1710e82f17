"""How far to trust the explanations, and the model: ``nestviz metrics`` and ``nestviz evaluate``.

- ``measure``: ``nestviz.metrics(...)``, images, true classes and boxes in, a ``MetricsReport`` out.
- ``trust``: the metric passes (one explanation pass, shared occlusions, the randomisation cascade).
- ``known_answers``: ``nestviz.check_evidence(...)``, the known-answer check (``metrics --evidence``).
- ``boxes``: object-box files (Pascal VOC, COCO, CSV).
- ``evaluate``: accuracy on a class-per-folder dataset; ``pointing``: the pointing game on 2x2 mosaics.
- ``scoring/``: the pure metric functions, arrays in and numbers out.

The one-call helper ``nestviz.metrics("val/", boxes="boxes/")`` is ``nestviz.evaluation.measure.metrics``.
Nothing is imported here, so importing stays cheap.
"""
