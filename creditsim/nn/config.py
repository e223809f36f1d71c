"""JSON round trip shared by the model configs (the ``config.json`` of every checkpoint).

Every size field of a model config has a documented upper bound (``LIMITS``): a checkpoint whose
``config.json`` says ``hidden_dim: 2000000`` or ``n_layers: 10000`` is refused with a one-line error
naming the field *before* any module is built, instead of failing inside an allocation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, ClassVar, TypeVar

import numpy as np

from creditsim.errors import ConfigError

__all__ = ["JSONConfig"]

C = TypeVar("C", bound="JSONConfig")


class JSONConfig:
    """Mixin for ``@dataclass`` model configs: ``to_dict`` / ``from_dict`` with unknown fields rejected,
    and inclusive integer bounds ``LIMITS`` (field -> ``(low, high)``) checked by :meth:`check_limits`.

    A checkpoint written by a newer version with a field this version does not know must fail loudly
    (ConfigError naming the fields) rather than be silently half-loaded.
    """

    #: inclusive bounds of the integer size fields; subclasses document and fill it
    LIMITS: ClassVar[dict[str, tuple[int, int]]] = {}

    def check_limits(self) -> None:
        """Raise ConfigError naming the first size field that is not an integer within ``LIMITS``."""
        for name, (low, high) in self.LIMITS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= high:
                raise ConfigError(f"{type(self).__name__}.{name} must be an integer in [{low}, {high}], got {value!r}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        """Build the config from a JSON object; anything else, unknown fields, wrong types or values
        out of bounds are a ConfigError (one line, naming the field)."""
        if not isinstance(d, Mapping):
            raise ConfigError(f"{cls.__name__}: expected a JSON object of fields, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown fields {unknown}; expected a subset of {sorted(known)}")
        try:
            return cls(**dict(d))
        except TypeError as exc:  # e.g. a number where a list of names is expected
            raise ConfigError(f"{cls.__name__}: malformed field value ({exc})") from None
