"""The NesT model and its weights: ``nest`` (the model), ``checkpoints`` (finding, loading and
saving weight files), ``convert`` (timm / Hugging Face keys and shapes -> config), ``classes``."""

from .nest import NAMED_CONFIGS, Nest, NestConfig, default_preprocessing, named_config

__all__ = ["NAMED_CONFIGS", "Nest", "NestConfig", "default_preprocessing", "named_config"]
