"""The model error users see, in a module without TensorFlow.

Why its own module: listing the models (the sidebar's first draw) and loading a scikit-learn
model must not pay TensorFlow's import (~6 s on first visit) just to name this exception.
"""
from __future__ import annotations


class ModelError(ValueError):
    """A model that cannot be used as an image classifier; the message is shown to users."""
