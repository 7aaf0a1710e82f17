"""Training and evaluation: the recipe (``loop``), batched augmentation (``augment``), class-per-folder
data decoded once (``data``), accuracy (``evaluate``) and the pointing game (``pointing``)."""
