"""nestviz: GradCAT and CAM explanations for NesT (Nested Hierarchical Transformer) models.

Importing the package is cheap: torch and the model code load only when an API function
is first used, so ``nestviz --help`` stays fast.
"""

__version__ = "0.1.0"
