"""Names a command line chooses, checked before Hydra composes anything: `recipe=NAME`,
`GROUP=OPTION` (sweeps too: `devices=two_gpu,tow_gpu`) and the verb.

Hydra answers a misspelled option with every option of the group and its search path, and a
misspelled verb (`fxflow valdate`) with "missing EQUAL"; here each gets one line naming what was
written and the closest few names (fxflow.config.errors.did_you_mean).

    fxflow: devices=tow_gpu: devices has no option 'tow_gpu' (did you mean 'two_gpu'?); `fxflow ls devices` lists them
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterable, Sequence

from fxflow.config.errors import did_you_mean
from fxflow.paths import search_dirs
from fxflow.recipes import recipe_files

RECIPE = "recipe"
_BARE_WORD = re.compile(r"[A-Za-z_][\w-]*")


def group_options(group: str) -> dict[str, Path]:
    """Option name -> the file the search path finds for it (a user's file before a shipped one)."""
    found: dict[str, Path] = {}
    for folder in reversed(search_dirs()):
        found.update({p.stem: p for p in (folder / group).glob("*.yaml")})
    return dict(sorted(found.items()))


def groups() -> set[str]:
    """The config groups a command line can choose from (`recipe` and each folder of conf/)."""
    return {p.name for folder in search_dirs() if folder.is_dir() for p in folder.iterdir() if p.is_dir()} | {RECIPE}


def options(group: str) -> list[str]:
    return list(recipe_files()) if group == RECIPE else list(group_options(group))


def unknown_choices(overrides: Sequence[str]) -> list[str]:
    """One message per chosen option that no config file provides (empty when all exist, or when
    the line does not parse: then Hydra's own message says why)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    try:
        parsed = OverridesParser.create().parse_overrides(list(overrides))
    except Exception:  # noqa: BLE001 - a line Hydra cannot parse is Hydra's to explain
        return []
    known_groups = groups()
    messages = []
    for override in parsed:
        group = override.key_or_group
        if override.is_hydra_override() or override.is_delete() or group not in known_groups:
            continue
        known = options(group)
        for value in _values(override):
            if value not in known:
                what = "no recipe" if group == RECIPE else f"{group} has no option"
                lister = "fxflow ls" if group == RECIPE else f"fxflow ls {group}"
                messages.append(f"{override.input_line}: {what} '{value}'{did_you_mean(value, known)}; "
                                f"`{lister}` lists them")
    return messages


def _values(override) -> Iterable[str]:  # noqa: ANN001 - hydra's Override
    if override.is_sweep_override():
        try:
            return [str(v) for v in override.sweep_string_iterator()]
        except Exception:  # noqa: BLE001 - a glob or range over options: Hydra expands and checks it
            return []
    value = override.value()
    return [] if value is None else [str(value)]


def not_a_verb(argv: Sequence[str], verbs: Iterable[str]) -> str | None:
    """When the first word is neither a verb nor anything Hydra takes (a bare word such as `valdate`),
    what to say instead of Hydra's "missing EQUAL"; None otherwise."""
    if not argv or not _BARE_WORD.fullmatch(argv[0]):
        return None
    word, verbs = argv[0], list(verbs)
    return (f"'{word}' is neither a verb nor KEY=VALUE{did_you_mean(word, verbs)}; verbs: {', '.join(verbs)}; "
            f"a run takes overrides such as recipe=sparse_nn")
