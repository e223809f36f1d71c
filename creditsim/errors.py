"""Exception hierarchy of creditsim.

Every error a user can trigger with bad input is a :class:`CreditSimError`, so callers (and the CLI,
which turns them into one-line messages and exit status 2) can catch one class.

- :class:`DataError`: a loan tape, panel, macro frame, matrix or count table is malformed. The message
  names the column / row / field, up to 10 offending row labels and what was expected.
- :class:`ConfigError`: a configuration, deal file, option or argument is invalid.
- :class:`CheckpointError`: a model checkpoint is missing, incomplete or does not match its config.
- :class:`NotFittedError`: a model was used before ``fit``.
- :class:`NumericalError`: a model produced NaN or infinite probabilities or values.
"""

from __future__ import annotations

import numbers

from collections.abc import Iterable

import numpy as np

__all__ = [
    "check_out_array",
    "check_positive_int",
    "CreditSimError",
    "DataError",
    "RestrictedDataMissing",
    "ConfigError",
    "CheckpointError",
    "NotFittedError",
    "NumericalError",
    "format_labels",
]


class CreditSimError(Exception):
    """Base class of every error raised deliberately by creditsim."""


class DataError(CreditSimError, ValueError):
    """Input data (tape, panel, macro frame, matrix, counts) violates the data contract."""


class RestrictedDataMissing(DataError):
    """A data series creditsim may not ship (its publisher forbids republication) is not on this machine:
    ``creditsim data fetch`` downloads it (:mod:`creditsim.datasets.restricted`)."""


class ConfigError(CreditSimError, ValueError):
    """A configuration value, deal definition or argument is invalid."""


class CheckpointError(CreditSimError):
    """A checkpoint cannot be read or does not match the model it is loaded into."""


class NotFittedError(CreditSimError, RuntimeError):
    """A model attribute or method needs ``fit`` to have been called first."""


class NumericalError(CreditSimError, ArithmeticError):
    """A model produced NaN or infinite transition probabilities, or NaN sampled values: its inputs are checked
    finite on the way in, so the cause is a corrupt or diverged checkpoint, or inputs far outside the range
    the model was fitted on (overflow inside the network)."""

    #: the end of every such message: what to check
    CAUSE = ("the model's inputs were finite, so check the checkpoint (NaN weights?) and that loan features and "
             "macro paths lie in the range it was fitted on")


def format_labels(labels: Iterable[object], limit: int = 10) -> str:
    """Render up to ``limit`` offending row labels, e.g. ``"[3, 17, 42] (and 5 more)"``."""
    items = list(labels)
    shown = ", ".join(repr(x) if isinstance(x, str) else str(x) for x in items[:limit])
    more = f" (and {len(items) - limit} more)" if len(items) > limit else ""
    return f"[{shown}]{more}"


def check_positive_int(value: object, name: str, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``, or a ConfigError naming the parameter (bools are refused:
    ``True`` is an int to Python but never a count)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or int(value) < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_out_array(out: object, shape: tuple[int, ...], name: str, contiguous: bool = False) -> None:
    """Refuse an ``out`` argument that is not a writeable float64 numpy array of ``shape`` (C-contiguous too with
    ``contiguous``): a ConfigError naming ``name``, the shape expected and what was given. The passes that fill
    such arrays in place (some compiled, without bounds checks) rely on it."""
    if (isinstance(out, np.ndarray) and out.shape == tuple(shape) and out.dtype == np.float64 and out.flags.writeable
            and (out.flags.c_contiguous or not contiguous)):
        return
    if isinstance(out, np.ndarray):
        got = (f"{out.dtype} {out.shape}, {'C-contiguous' if out.flags.c_contiguous else 'not C-contiguous'}"
               f"{'' if out.flags.writeable else ', read-only'}")
    else:
        got = type(out).__name__
    layout = " C-contiguous" if contiguous else ""
    raise ConfigError(f"{name}: out must be a writeable{layout} float64 array of shape {tuple(shape)}, got {got}")
