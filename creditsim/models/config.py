"""JSON round trip shared by the model configs (the ``config.json`` of every checkpoint)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, fields
from typing import Any, TypeVar

from creditsim.errors import ConfigError

__all__ = ["JSONConfig"]

C = TypeVar("C", bound="JSONConfig")


class JSONConfig:
    """Mixin for ``@dataclass`` model configs: ``to_dict`` / ``from_dict`` with unknown fields rejected.

    A checkpoint written by a newer version with a field this version does not know must fail loudly
    (ConfigError naming the fields) rather than be silently half-loaded.
    """

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)  # type: ignore[call-overload]
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls: type[C], d: Mapping[str, Any]) -> C:
        known = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        unknown = sorted(set(d) - known)
        if unknown:
            raise ConfigError(f"{cls.__name__}: unknown fields {unknown}; expected a subset of {sorted(known)}")
        return cls(**dict(d))
