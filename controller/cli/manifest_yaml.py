"""Reading manifests as Kubernetes reads them, and refusing what would stall or mislead the tools.

``kubectl`` and the API server read YAML with Go's yaml library, which resolves ``1e12`` as a number; PyYAML's
safe loader (YAML 1.1) reads it as a string, so ``coalmine validate`` refused a Canary a cluster accepts. This loader
resolves floats as YAML 1.2 does. It also refuses, naming the line:

- a key given twice in one mapping (which value wins differs between tools; kubectl refuses it too);
- more than :data:`MAX_ALIASES` aliases in a document, or one that expands to more than :data:`MAX_NODES` values
  (a "billion laughs": a few aliases of aliases expand exponentially when the result is copied or serialised);
- nesting deeper than :data:`MAX_DEPTH` (which ends in a ``RecursionError`` somewhere later).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, Node, SequenceNode

MAX_ALIASES = 64
MAX_DEPTH = 64
MAX_NODES = 100_000

_FLOAT_1_2 = re.compile(
    r"""^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class ManifestError(yaml.YAMLError):
    """A manifest the tools refuse to read; ``problem`` and ``problem_mark`` as PyYAML's own errors."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.problem_mark = mark


class ManifestLoader(yaml.SafeLoader):
    """PyYAML's safe loader with YAML 1.2 floats, duplicate keys refused, aliases and depth bounded."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        if self.check_event(yaml.AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIASES:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise ManifestError(f"more than {MAX_ALIASES} YAML aliases in one document", mark)
        node: Node | None = super().compose_node(parent, index)
        return node

    def compose_document(self) -> Node | None:
        self._aliases = 0
        node: Node | None = super().compose_document()
        if node is not None:
            _check_depth(node, 0)
            expanded = _expanded_size(node, {})
            if expanded > MAX_NODES:
                raise ManifestError(
                    f"expands to {expanded:,} values (more than {MAX_NODES:,}): aliases", node.start_mark
                )
        return node

    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, str | int | float | bool) and key in seen:
                raise ManifestError(f"duplicate key {key!r} in one mapping", key_node.start_mark)
            if isinstance(key, str | int | float | bool):
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _check_depth(node: Node, depth: int, path: frozenset[int] = frozenset()) -> None:
    """Depth along every path; a node that contains itself (``&a [*a]``) is as deep as it gets: refused."""
    if depth > MAX_DEPTH or id(node) in path:
        raise ManifestError(f"nested deeper than {MAX_DEPTH} levels", node.start_mark)
    inner = path | {id(node)}
    if isinstance(node, MappingNode):
        for key, value in node.value:
            _check_depth(key, depth + 1, inner)
            _check_depth(value, depth + 1, inner)
    elif isinstance(node, SequenceNode):
        for item in node.value:
            _check_depth(item, depth + 1, inner)


def _expanded_size(node: Node, sizes: dict[int, int]) -> int:
    """How many values the document holds once every alias is expanded (shared nodes counted once each time)."""
    known = sizes.get(id(node))
    if known is not None:
        return known
    total = 1
    if isinstance(node, MappingNode):
        total += sum(_expanded_size(key, sizes) + _expanded_size(value, sizes) for key, value in node.value)
    elif isinstance(node, SequenceNode):
        total += sum(_expanded_size(item, sizes) for item in node.value)
    sizes[id(node)] = total
    return total


ManifestLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_1_2, list("-+0123456789."))


def load_all(text: str) -> Iterator[Any]:
    """The documents of ``text`` (see the module doc); raises :class:`yaml.YAMLError` with ``problem_mark``."""
    loader = ManifestLoader(text)
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            yield loader.get_data()
    except ConstructorError:
        raise
    except RecursionError as error:  # a structure the depth check could not reach (defensive)
        raise ManifestError("nested too deeply", None) from error
    finally:
        loader.dispose()


__all__ = ["MAX_ALIASES", "MAX_DEPTH", "MAX_NODES", "ManifestError", "ManifestLoader", "load_all"]
