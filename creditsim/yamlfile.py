"""Reading small YAML files a user hands us (deal files, run configurations) with hard limits.

``yaml.SafeLoader`` builds no arbitrary objects, but it still accepts what such a file never needs and
what makes it dangerous or ambiguous:

- Anchors and aliases (``&a`` / ``*a``) are refused outright: these files are small flat data with no
  use for them, and aliases are what a "billion laughs" bomb is built from (nine nested aliases
  expand to 10**9 strings). Refusing them at composition costs nothing and needs no counting policy.
- Collections nest at most ``max_depth`` deep (PyYAML composes recursively: a deeper file would end in
  a RecursionError).
- A mapping key given twice is an error naming the key and both lines (PyYAML keeps the last silently,
  which would quietly drop e.g. the first ``oc_trigger``).
- Integers with more than ``max_number_chars`` characters are refused before ``int()`` sees them
  (Python's 4300-digit limit would raise a bare ValueError; such numbers are never config data).
- The file size is checked before reading (a config is a few hundred bytes, a 1 GB file is a wrong
  path).

Every violation is one :class:`~creditsim.errors.ConfigError` line naming the file, line and column.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from creditsim.errors import ConfigError

__all__ = ["read_yaml", "yaml_error_line", "short_repr"]


def short_repr(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters: a message stays one short line whatever the input."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def yaml_error_line(exc: yaml.YAMLError) -> str:
    """PyYAML's multi-line message as one line: ``line L, column C: problem (while ... at line L')``.

    Lines and columns are 1-based, as editors show them.
    """
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())
    parts = []
    mark = exc.problem_mark or exc.context_mark
    if mark is not None:
        parts.append(f"line {mark.line + 1}, column {mark.column + 1}:")
    parts.append(exc.problem or "syntax error")
    if exc.context:
        where = exc.context
        if exc.context_mark is not None and exc.context_mark is not mark:
            where += f" started at line {exc.context_mark.line + 1}, column {exc.context_mark.column + 1}"
        parts.append(f"({where})")
    return " ".join(" ".join(parts).split())


class _LimitError(Exception):
    """A file breaks one of :class:`_LimitedLoader`'s limits; ``str`` is the one-line reason."""


def _at(node_or_event: Any) -> str:
    mark = node_or_event.start_mark
    return f"line {mark.line + 1}, column {mark.column + 1}"


class _LimitedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with the limits of the module docstring."""

    what = "file"
    layout = "a mapping"
    max_depth = 8
    max_number_chars = 40

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise _LimitError(f"{_at(event)}: YAML aliases (*{event.anchor}) are not allowed in a {self.what}")
        if getattr(event, "anchor", None) is not None:
            raise _LimitError(f"{_at(event)}: YAML anchors (&{event.anchor}) are not allowed in a {self.what}")
        nests = isinstance(event, (yaml.SequenceStartEvent, yaml.MappingStartEvent))
        if nests:
            self._depth += 1
            if self._depth > self.max_depth:
                raise _LimitError(f"{_at(event)}: nesting deeper than {self.max_depth} levels; a {self.what} is "
                                  f"{self.layout}")
        try:
            return super().compose_node(parent, index)
        finally:
            if nests:
                self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, Any] = {}
            for key_node, _ in node.value:
                # keys are scalars; a collection key is left to PyYAML's own error
                if not isinstance(key_node, yaml.ScalarNode):
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # unhashable: PyYAML reports it below
                    continue
                if first is not None:
                    raise _LimitError(f"{_at(key_node)}: duplicate key {short_repr(key)} (first given at {_at(first)})")
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)

    def construct_yaml_int(self, node: Any) -> int:
        text = str(node.value)
        if len(text) > self.max_number_chars:
            raise _LimitError(f"{_at(node)}: an integer of {len(text)} characters; numbers in a {self.what} have "
                              f"at most {self.max_number_chars}")
        return super().construct_yaml_int(node)


_LimitedLoader.add_constructor("tag:yaml.org,2002:int", _LimitedLoader.construct_yaml_int)


def read_yaml(path: str | os.PathLike[str], what: str = "file", *, max_bytes: int = 1 << 20, max_depth: int = 8,
              max_number_chars: int = 40, layout: str = "a mapping") -> Any:
    """Parse the YAML file ``path`` under the limits of the module docstring.

    Args:
        path: the file.
        what: how messages name the file, e.g. ``"deal file"``.
        max_bytes: largest file size accepted, bytes.
        max_depth: deepest nesting of collections (top mapping = 1).
        max_number_chars: longest integer literal, characters.
        layout: what the file should look like, for the nesting message.

    Returns:
        the parsed data (mapping, list or scalar; the caller checks the layout).
    """
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{what} not found: {p}")
    size = p.stat().st_size
    if size > max_bytes:
        raise ConfigError(f"{what} {p} is {size:,} bytes; a {what} is at most {max_bytes:,} bytes")
    loader_cls = type("Loader", (_LimitedLoader,), {"what": what, "layout": layout, "max_depth": max_depth,
                                                   "max_number_chars": max_number_chars})
    try:
        loader = loader_cls(p.read_text(encoding="utf-8"))
        try:
            return loader.get_single_data()
        finally:
            loader.dispose()
    except _LimitError as exc:
        raise ConfigError(f"{what} {p}: {exc}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} {p} is not valid YAML: {yaml_error_line(exc)}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{what} {p} is not UTF-8 text") from None
