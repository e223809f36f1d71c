"""Warnings reported at the user's line: the first frame outside creditsim (and outside the decorator
wrappers of torch, contextlib and functools that creditsim's functions run under).

A fixed ``stacklevel`` is right for one call path only: the same warning reached through
``simulate`` and through a direct call needs different levels, and a decorator added later shifts them
all. Walking the stack finds the caller whatever the path; called from creditsim's own command line
(every frame inside the package) the warning is reported at the outermost frame.
"""

from __future__ import annotations

import os
import sys
import warnings

__all__ = ["warn"]

_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
_WRAPPERS = (f"{os.sep}torch{os.sep}", f"{os.sep}contextlib.py", f"{os.sep}functools.py")


def _internal(filename: str) -> bool:
    return filename.startswith(_PACKAGE) or any(w in filename for w in _WRAPPERS)


def warn(message: str, category: type[Warning] = UserWarning) -> None:
    """``warnings.warn(message, category)`` at the first calling frame outside creditsim."""
    frame, level = sys._getframe(1), 2  # level 2: warn's caller
    while frame.f_back is not None and _internal(os.path.abspath(frame.f_code.co_filename)):
        frame, level = frame.f_back, level + 1
    warnings.warn(message, category, stacklevel=level)
