"""YAML without bombs: ``yaml.safe_load`` with a budget on aliases and on the expanded document.

A few hundred bytes of anchors and aliases ("billion laughs") describe a document
of billions of nodes.  PyYAML builds it with shared references, cheaply, but the
first walk over it (validation, a deep copy, ``json.dumps``) expands it and runs
out of memory.  :func:`load_yaml` counts aliases and the nodes of the document as
if expanded (on the composed node graph, memoised, so counting costs no more than
the text) and refuses a document beyond :data:`~geoseg.safety.limits.MAX_YAML_ALIASES`
or :data:`~geoseg.safety.limits.MAX_YAML_NODES`, or one that refers to itself.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .limits import MAX_YAML_ALIASES, MAX_YAML_NODES

__all__ = ["MAX_FLOW_DEPTH", "load_yaml"]

#: Nesting of ``[`` and ``{``: PyYAML's scanner takes time quadratic in it (50 000 levels: minutes).
MAX_FLOW_DEPTH = 64


def _flow_depth(text: str) -> int:
    """The deepest nesting of flow brackets, counted over the raw text (brackets in strings count too)."""
    depth = deepest = 0
    for char in text:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}" and depth:
            depth -= 1
    return deepest


def _expanded_size(root: Any, what: str) -> int:
    """Nodes of the document rooted at ``root`` with every alias expanded (iterative, memoised)."""
    import yaml

    sizes: dict[int, int] = {}
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        key = id(node)
        if children_done:
            on_path.discard(key)
            kids = _children(node, yaml)
            total = 1 + sum(sizes[id(k)] for k in kids)
            if total > MAX_YAML_NODES:
                raise ConfigError(
                    f"{what} expands to more than {MAX_YAML_NODES} values through its aliases (*name); "
                    "write the values out instead of repeating anchors"
                )
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in on_path:
            raise ConfigError(f"{what} has an anchor that contains an alias of itself; remove the alias")
        on_path.add(key)
        stack.append((node, True))
        for kid in _children(node, yaml):
            if id(kid) in on_path:
                raise ConfigError(f"{what} has an anchor that contains an alias of itself; remove the alias")
            if id(kid) not in sizes:
                stack.append((kid, False))
    return sizes[id(root)]


def _children(node: Any, yaml: Any) -> list[Any]:
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    return []


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


def load_yaml(text: str, what: str) -> Any:
    """``yaml.safe_load(text)`` within the alias and size budgets; a :class:`ConfigError` naming ``what`` otherwise."""
    import yaml

    if _flow_depth(text) > MAX_FLOW_DEPTH:
        raise ConfigError(f"{what} nests lists or mappings more than {MAX_FLOW_DEPTH} levels deep; flatten it")
    try:
        aliases = 0
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise ConfigError(
                        f"{what} uses more than {MAX_YAML_ALIASES} aliases (*name); write the values out instead"
                    )
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _expanded_size(node, what)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        raise ConfigError(f"{what} is not valid YAML: {_one_line(exc)}") from None
    except RecursionError:
        raise ConfigError(f"{what} nests lists or mappings too deeply to read") from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. a timestamp or number PyYAML cannot build
        if isinstance(exc, ConfigError):
            raise
        raise ConfigError(f"{what} holds a value that cannot be read: {_one_line(exc)}") from None
