"""Reading YAML and JSON that a user or an earlier run wrote, within limits.

A file of a few hundred bytes can still cost minutes or all memory: YAML anchors and aliases
("billion laughs") expand exponentially once the document becomes plain containers (OmegaConf,
`flatten`), a file can be huge, and a deeply nested one exhausts the stack. Every config, recipe
and record file fxflow reads from outside its package passes these checks first, so each refusal
names the file and takes milliseconds:

- at most MAX_CONFIG_BYTES (config, recipe) or MAX_RECORD_BYTES (record) bytes;
- aliases may add at most MAX_ALIAS_EXPANSION values to what the file itself spells out, and
  never refer to a node they sit inside (a document that contains itself);
- nesting at most MAX_DEPTH levels.

The YAML check works on the composed node graph (the parser's anchors are shared nodes), so it
costs time linear in the file, whatever the aliases would expand to. Flow nesting (`[[[[`) is
counted on the text before parsing: PyYAML's scanner takes time quadratic in it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from omegaconf._utils import get_yaml_loader

MAX_CONFIG_BYTES = 256 << 10  # 256 KiB: the largest shipped recipe is ~2 KB; YAML parses slowly
MAX_RECORD_BYTES = 64 << 20  # 64 MiB: a record's summary.json is ~10 KB
MAX_ALIAS_EXPANSION = 10_000  # values that aliases may add beyond the file's own
MAX_DEPTH = 64  # nesting levels of mappings and lists


class FileRefused(ValueError):
    """A file fxflow will not read: the message names the file, the limit and what is accepted."""


def read_text(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> str:
    """The file's text, refused above `max_bytes` (checked before reading) or when not UTF-8."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise FileRefused(f"{path}: {size} bytes, above the limit of {max_bytes} bytes for this kind of file")
        with path.open("rb") as stream:
            data = stream.read(max_bytes + 1)  # the file may have grown since stat
    except OSError as exc:
        raise FileRefused(f"{path}: cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > max_bytes:
        raise FileRefused(f"{path}: above the limit of {max_bytes} bytes for this kind of file")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(f"{path}: not UTF-8 text (byte {exc.start})") from None


def check_yaml(text: str, source: Path | str) -> None:
    """Refuse `text` (FileRefused naming `source`) when its aliases expand too far, an alias sits
    inside its own anchor, or it nests too deeply. YAML syntax errors propagate as yaml.YAMLError
    with their line."""
    parse_yaml(text, source, construct=False)


def parse_yaml(text: str, source: Path | str, construct: bool = True) -> Any:
    """The plain Python value of YAML `text` (None when empty), in the dialect Hydra reads configs
    in (OmegaConf's safe loader: no timestamps, no duplicate keys), parsed once: the composed
    node graph is checked against the limits above, then constructed."""
    _check_flow_depth(text, source)
    loader = _BoundedLoader(text)
    try:
        try:
            node = loader.get_single_node()
        except _TooDeep as exc:
            raise FileRefused(f"{source}:{exc.line}: nested more than {MAX_DEPTH} levels deep") from None
        if node is None:
            return None
        _check_graph(node, source)
        return loader.construct_document(node) if construct else None
    finally:
        loader.dispose()


def load_yaml(path: Path, max_bytes: int = MAX_CONFIG_BYTES) -> Any:
    """The plain Python value of a YAML file, read within the limits above (see parse_yaml).
    Raises FileRefused, or ValueError with file and line for a YAML error."""
    text = read_text(path, max_bytes)
    try:
        return parse_yaml(text, path)
    except yaml.YAMLError as exc:
        raise ValueError(yaml_problem(path, exc)) from None


def load_json(path: Path, max_bytes: int = MAX_RECORD_BYTES) -> Any:
    """The value of a JSON file, read within the limits above; ValueError naming file and line when
    it is not JSON or nests too deeply."""
    text = read_text(path, max_bytes)
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FileRefused(f"{path}:{exc.lineno}: not valid JSON: {exc.msg} (column {exc.colno})") from None
    except RecursionError:
        raise FileRefused(f"{path}: nested too deeply to read (accepted: at most {MAX_DEPTH} levels)") from None
    if _depth(value) > MAX_DEPTH:
        raise FileRefused(f"{path}: nested more than {MAX_DEPTH} levels deep")
    return value


def load_record(path: Path) -> dict[str, Any] | None:
    """A record file's JSON object (summary.json, sweep_summary.json), or None when it is missing,
    unreadable, damaged, over the limits or not an object. Code that scans folders of records skips
    such a file (the job that left it counts as missing or unfinished); it never stops on it."""
    try:
        value = load_json(path)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def yaml_problem(path: Path | str, exc: BaseException) -> str:
    """`FILE:LINE: what is wrong` for a YAML error (the line where the parser gave up)."""
    mark = getattr(exc, "problem_mark", None)
    where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
    problem = getattr(exc, "problem", None) or (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return f"{where}: {problem}"


_QUOTED_OR_COMMENT = re.compile(r""""(?:[^"\\\n]|\\.)*"|'(?:[^'\n]|'')*'|(?:^|(?<=\s))#[^\n]*""", re.MULTILINE)
_BRACKET = re.compile(r"[\[\]{}]")


def _check_flow_depth(text: str, source: Path | str) -> None:
    """Refuse flow collections (`[`, `{`) nested deeper than MAX_DEPTH, counted on the text with
    quoted strings and comments blanked out (a `[` inside a plain scalar may count: over-counting
    only matters past MAX_DEPTH unclosed brackets)."""
    blanked = _QUOTED_OR_COMMENT.sub(lambda m: " " * len(m.group()), text)
    depth = 0
    for match in _BRACKET.finditer(blanked):
        depth = depth + 1 if match.group() in "[{" else max(depth - 1, 0)
        if depth > MAX_DEPTH:
            line = blanked.count("\n", 0, match.start()) + 1
            raise FileRefused(f"{source}:{line}: nested more than {MAX_DEPTH} levels deep")


class _TooDeep(Exception):
    def __init__(self, line: int):
        self.line = line


class _BoundedLoader(get_yaml_loader()):  # type: ignore[misc] - OmegaConf's SafeLoader subclass
    """OmegaConf's loader, whose composer stops as soon as nesting passes MAX_DEPTH (its recursion
    would otherwise run into Python's stack limit, slowly)."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def _check_graph(root: yaml.Node, source: Path | str) -> None:
    """Count the values the document expands to (each shared node once per place it appears), with
    memoised sizes so the walk is linear in the graph, and refuse cycles and deep nesting."""
    sizes: dict[int, int] = {}
    own = 0  # distinct nodes: what the file spells out
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    open_nodes: set[int] = set()
    while stack:
        node, depth, children_done = stack.pop()
        key = id(node)
        if children_done:
            open_nodes.discard(key)
            sizes[key] = 1 + sum(sizes[id(child)] for child in _children(node))
            if sizes[key] - own > MAX_ALIAS_EXPANSION:
                raise FileRefused(f"{source}:{node.start_mark.line + 1}: YAML aliases (*name) expand to more than "
                                  f"{MAX_ALIAS_EXPANSION} values beyond the file's own (an alias bomb?); write the "
                                  "values out, or reuse anchors less")
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise FileRefused(f"{source}:{node.start_mark.line + 1}: a YAML alias refers to a node that contains it "
                              "(the document would contain itself)")
        if depth > MAX_DEPTH:
            raise FileRefused(f"{source}:{node.start_mark.line + 1}: nested more than {MAX_DEPTH} levels deep")
        own += 1
        open_nodes.add(key)
        stack.append((node, depth, True))
        stack.extend((child, depth + 1, False) for child in _children(node) if id(child) not in sizes)


def _children(node: yaml.Node) -> list[yaml.Node]:
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _depth(value: Any) -> int:
    """Nesting depth of JSON containers, without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            if depth <= MAX_DEPTH:
                stack.extend((child, depth + 1) for child in (item.values() if isinstance(item, dict) else item))
    return deepest
