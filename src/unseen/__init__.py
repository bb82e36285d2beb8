"""unseen: generative zero-shot learning with one honest protocol."""

__version__ = "0.1.0"

__all__ = ["__version__"]
