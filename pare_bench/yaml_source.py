"""Reading suite YAML: the data plus where every key came from, with `include:` resolved.

A separate module because this machinery is about files, not about what a suite means. It keeps a line
number for every key and list item (pydantic's `loc` paths are turned into `file:line` with it), resolves
`include:` by deep-merging the including file over the included one (the location index is merged the
same way), and tells apart fatal problems, after which nothing else can be checked (unreadable file, bad
YAML, include cycle: raised as `FatalSuiteProblem`), from collected ones (duplicate keys), which are
returned so they can be reported together with every other problem of the suite.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

Loc = tuple  # a YAML path: str keys and int list indices, as pydantic's `loc`


class FatalSuiteProblem(Exception):
    """A problem after which nothing else can be checked (unreadable file, bad YAML, include cycle)."""


@dataclass(frozen=True)
class Where:
    file: str
    line: int  # 1-based
    column: int  # 1-based
    kind: str  # "map", "seq" or "scalar": the kind of the value, used when merging includes


def format_loc(loc: Loc) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def locate_problem(index: dict[Loc, Where], loc: Loc, message: str) -> tuple[tuple, str]:
    """A formatted problem and its sort key. Missing keys have no line; their nearest ancestor does."""
    anchor = loc
    while anchor and anchor not in index:
        anchor = anchor[:-1]
    where = index.get(anchor)
    prefix = f"{where.file}:{where.line}: " if where else ""
    path = f"{format_loc(loc)}: " if loc else ""
    key = (where.file if where else "", where.line if where else 0, format_loc(loc))
    return key, f"{prefix}{path}{message}"


# --------------------------------------------------------------------------------------------- reading


def _where(node: yaml.Node, file: str, kind_node: yaml.Node) -> Where:
    kind = {yaml.MappingNode: "map", yaml.SequenceNode: "seq"}.get(type(kind_node), "scalar")
    return Where(file, node.start_mark.line + 1, node.start_mark.column + 1, kind)


def _yaml_problem(path: Path, error: yaml.YAMLError) -> str:
    """Where the parser gave up; that is usually at, or just after, the mistake."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or str(error)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context and context_mark:
        context += f" started at line {context_mark.line + 1}, column {context_mark.column + 1}"
    detail = f"{problem} ({context})" if context else problem
    if mark is None:
        return f"{path}: malformed YAML: {detail}"
    line, column = mark.line + 1, mark.column + 1
    return f"{path}:{line}:{column}: malformed YAML at line {line}, column {column}: {detail}"


def _index_node(node: yaml.Node, file: str, loc: Loc, index: dict[Loc, Where], problems: list) -> None:
    """Record where every key and list item starts, so a pydantic `loc` can be turned into a line."""
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            child = (*loc, key_node.value)
            if child in index and index[child].file == file:
                problems.append((child, f"duplicate key {key_node.value!r} (also on line {index[child].line})"))
            index[child] = _where(key_node, file, value_node)
            _index_node(value_node, file, child, index, problems)
    elif isinstance(node, yaml.SequenceNode):
        for position, item in enumerate(node.value):
            index[(*loc, position)] = _where(item, file, item)
            _index_node(item, file, (*loc, position), index, problems)


def _parse(path: Path) -> tuple[Any, dict[Loc, Where], list]:
    """One file's data, its location index and its duplicate-key problems; YAML errors are fatal."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise FatalSuiteProblem(f"{path}: cannot read suite file: {error}") from None
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        raise FatalSuiteProblem(_yaml_problem(path, error)) from None
    index: dict[Loc, Where] = {}
    problems: list = []
    if root is not None:
        index[()] = _where(root, str(path), root)
        _index_node(root, str(path), (), index, problems)
    return data, index, problems


def _deep_merge(base: dict, over: dict) -> dict:
    """`over` wins; mappings merge key by key, lists and scalars are replaced whole."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _merge_index(base: dict[Loc, Where], over: dict[Loc, Where]) -> dict[Loc, Where]:
    """Locations after `_deep_merge`: a replaced value takes its whole subtree's lines with it."""
    replaced = [loc for loc, w in over.items() if w.kind != "map" or base.get(loc, w).kind != "map"]
    merged = {
        loc: where for loc, where in base.items() if not any(len(loc) > len(r) and loc[: len(r)] == r for r in replaced)
    }
    merged.update(over)
    return merged


def read_with_includes(path: Path, chain: tuple[Path, ...] = ()) -> tuple[dict, dict[Loc, Where], list]:
    """A suite file with its includes resolved; cycles and missing includes are fatal."""
    data, index, problems = _parse(path)
    if data is None:
        raise FatalSuiteProblem(f"{path}: the suite file is empty; expected a mapping of suite keys")
    if not isinstance(data, dict):
        where = index[()]
        raise FatalSuiteProblem(
            f"{where.file}:{where.line}: the top level must be a mapping of suite keys, got a {type(data).__name__}"
        )
    if "include" not in data:
        return data, index, problems
    include = data.pop("include")
    where = index[("include",)]
    if not isinstance(include, str) or not include:
        raise FatalSuiteProblem(f"{where.file}:{where.line}: include: expected a file path, got {include!r}")
    target = path.parent / include
    chain = (*chain, path)
    if target.resolve() in {p.resolve() for p in chain}:
        cycle = " -> ".join(str(p) for p in (*chain, target))
        raise FatalSuiteProblem(f"{where.file}:{where.line}: include: include cycle: {cycle}")
    if not target.is_file():
        raise FatalSuiteProblem(f"{where.file}:{where.line}: include: included file not found: {target}")
    base, base_index, base_problems = read_with_includes(target, chain)
    return _deep_merge(base, data), _merge_index(base_index, index), base_problems + problems
