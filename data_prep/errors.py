"""Errors of data preparation, each naming the file or sample and the problem."""

from socseg_jax.core.errors import UserError


class ImageReadError(UserError):
    """An image or map file is missing, empty, corrupt or not an image."""


class SampleError(UserError):
    """A raw sample folder is incomplete or inconsistent."""
