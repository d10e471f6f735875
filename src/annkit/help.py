"""``annkit <task> --help``: every key of the task's composed config, grouped, with its default and its
one-line meaning (:data:`annkit.meanings.MEANINGS`), at the terminal's width.

The config is composed with Hydra's compose API and the command line's overrides, so
``annkit train dataset=csv --help`` shows the csv dataset's keys. Nothing here imports torch.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from importlib.resources import files
from typing import Any

from annkit.errors import AnnkitError
from annkit.meanings import TASK_MEANINGS, meaning
from annkit.overrides import read

# the train config's groups, in the order the help shows them; the last two hold whole experiments / searches
GROUPS = ("model", "dataset", "loss", "optimizer", "scheduler", "trainer", "logger", "lr_find")
CHOICE_ONLY = ("experiment", "hparams_search")


def packaged_options(group: str) -> list[str]:
    """The options annkit ships for config group ``group`` (the YAML files in configs/<group>/)."""
    folder = files("annkit.configs") / group
    return (
        sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml")) if folder.is_dir() else []
    )


def shown_value(value: Any) -> str:
    """A config value as the command line would write it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, list):
        return "[" + ", ".join(shown_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {shown_value(v)}" for k, v in value.items()) + "}"
    return str(value)


def leaves(node: dict[str, Any], prefix: str) -> list[tuple[str, Any]]:
    """(dotted key, value) of every leaf below ``node`` (an activation's mapping stays one value)."""
    out = []
    for key, value in node.items():
        full = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict) and value and not full.endswith("activation"):
            out += leaves(value, full)
        else:
            out.append((full, value))
    return out


def composed(config_name: str, words: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the task's config, unresolved, as plain containers; Hydra's own node: help texts, group choices)."""
    from hydra import compose, initialize_config_module
    from hydra.errors import HydraException
    from omegaconf import OmegaConf

    try:
        with initialize_config_module(config_module="annkit.configs", version_base=None):
            cfg = compose(config_name=config_name, overrides=list(words), return_hydra_config=True)
    except HydraException as err:
        raise AnnkitError(f"The help cannot compose this command line: {str(err).strip().splitlines()[0]}") from None
    tree = OmegaConf.to_container(cfg, resolve=False)
    assert isinstance(tree, dict)
    return {k: v for k, v in tree.items() if k != "hydra"}, tree["hydra"]


def text_block(text: str, width: int) -> Any:
    """A help text of the YAML files at ``width``: prose wrapped; an example line ``  command  # what it
    does`` split in two when it does not fit (the command whole on its line, its comment below)."""
    from rich.text import Text

    out, prose = Text(), []

    def flush() -> None:
        if prose:
            out.append(textwrap.fill(" ".join(prose), width) + "\n")
            prose.clear()

    for line in text.splitlines():
        if line.startswith("Usage: "):  # a synopsis (not a command to paste): wrapped, under its own indent
            flush()
            out.append(textwrap.fill(line, width, subsequent_indent="  ", break_on_hyphens=False) + "\n")
            continue
        if not line.startswith(" ") and line.strip():
            prose.append(line.strip())
            continue
        flush()
        if len(line) <= width or " # " not in line:
            out.append(line + "\n", style="cyan" if line.strip().startswith(("annkit", "ssh")) else "")
            continue
        command, comment = line.split(" # ", 1)
        out.append(command.rstrip() + "\n", style="cyan")
        out.append(
            textwrap.fill("# " + comment.strip(), width, initial_indent="      ", subsequent_indent="        ") + "\n",
            style="dim",
        )
    flush()
    return out


def print_task_help(task: str, config_name: str, args: Sequence[str]) -> None:
    """Print the help of subcommand ``task``: usage and examples, then each group's keys."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table
    from rich.text import Text

    line = read(task, args)
    config, hydra_node = composed(config_name, line.words)
    choices = hydra_node.get("runtime", {}).get("choices", {})
    console = Console()
    console.print(text_block(hydra_node["help"]["header"], console.width), soft_wrap=True)
    if line.config_dirs:
        console.print(
            Text("(the keys below are annkit's own: --config-dir files are not read by the help)", style="dim")
        )

    wide = console.width >= 110

    def section(title: str, rows: list[tuple[str, Any, str]]) -> Any:
        """A table (key, default, meaning) on a wide terminal; else each key = default on a line, its meaning below."""
        if not wide:
            body = Text(textwrap.fill(title, console.width, subsequent_indent="    ") + "\n", style="bold")
            for key, value, text in rows:
                body.append(f"  {key}", style="cyan").append(f" = {shown_value(value)}\n")
                body.append(
                    textwrap.fill(text, console.width, initial_indent=" " * 6, subsequent_indent=" " * 6) + "\n"
                    if text
                    else "",
                    style="dim",
                )
            return body
        grid = Table(
            title=title, title_justify="left", title_style="bold", box=None, header_style="dim", pad_edge=False
        )
        grid.add_column("key", style="cyan", no_wrap=True)
        grid.add_column("default", overflow="fold", max_width=32)
        grid.add_column("meaning", overflow="fold")
        for key, value, text in rows:
            grid.add_row(escape(key), escape(shown_value(value)), escape(text))
        return grid

    order = ("lr_find", *GROUPS) if task == "lr-find" else GROUPS
    sections = [g for g in order if isinstance(config.get(g), dict)]
    for group in dict.fromkeys(sections):
        option = choices.get(group)
        options = packaged_options(group)
        title = f"{group}" + (f"  ({group}={option}; options: {', '.join(options)})" if options else "")
        console.print()
        console.print(
            section(title, [(key, value, meaning(key, option) or "") for key, value in leaves(config[group], group)])
        )
    rest = [(key, value) for key, value in config.items() if key not in sections]
    if rest:
        docs = TASK_MEANINGS.get(task, {})
        console.print()
        console.print(section("keys", [(key, value, docs.get(key) or meaning(key) or "") for key, value in rest]))
    for group in CHOICE_ONLY:
        if group in choices:
            console.print()
            listed = f"{group}=<option>: {', '.join(packaged_options(group))}"
            console.print(Text(textwrap.fill(listed, console.width, subsequent_indent="    "), style="bold"))
    console.print()
    console.print(text_block(hydra_node["help"]["footer"], console.width), soft_wrap=True)
