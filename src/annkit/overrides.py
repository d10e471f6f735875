"""A command line's overrides, read with Hydra's own grammar before Hydra runs: quoting explained,
group options checked, config folders from elsewhere kept away from Hydra's settings.

Nothing here imports torch. :func:`read` splits a subcommand's arguments into Hydra's flags and its
overrides, each parsed by Hydra's ``OverridesParser``; a word the grammar refuses (a path with
spaces or letters outside ASCII, ``=`` or ``,``, not quoted) becomes one paragraph that shows the
quoted word (:mod:`annkit.commands`). :func:`check_groups` gives an unknown ``group=option`` the
options that exist and a "did you mean". :func:`check_config_dir` refuses a ``--config-dir`` whose
files would set ``hydra.*`` (a log file's path, callbacks, …): such settings come from the command
line only.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra._internal.config_loader_impl import ConfigLoaderImpl  # Hydra's own group listing (no public API has it)
from hydra._internal.utils import create_config_search_path
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.override_parser.types import Override, OverrideType
from hydra.errors import HydraException
from hydra.types import RunMode
from omegaconf import DictConfig

from annkit.commands import command, hydra_value, override
from annkit.errors import AnnkitError, did_you_mean

# Hydra's flags that take a value (the next word, or after "=")
VALUE_FLAGS = (
    "-cp",
    "--config-path",
    "-cn",
    "--config-name",
    "-cd",
    "--config-dir",
    "-p",
    "--package",
    "--experimental-rerun",
    "-c",
    "--cfg",
    "-i",
    "--info",
)
MULTIRUN = ("-m", "--multirun")
_PARSER = OverridesParser.create()


@dataclass
class CommandLine:
    """A subcommand's arguments: Hydra's flags (with their values) and the parsed overrides."""

    flags: list[str] = field(default_factory=list)
    words: list[str] = field(default_factory=list)  # the overrides as typed
    parsed: list[Override] = field(default_factory=list)  # the same, as Hydra reads them
    config_dirs: list[Path] = field(default_factory=list)

    @property
    def multirun(self) -> bool:
        return any(f in MULTIRUN for f in self.flags)

    def value(self, key: str) -> Any:
        """The last value the command line gives ``key`` (``None`` when it gives none)."""
        found = [o.value() for o in self.parsed if o.key_or_group == key and o.type != OverrideType.DEL]
        return found[-1] if found else None

    def has(self, key: str) -> bool:
        return any(o.key_or_group == key for o in self.parsed)


def key_of(word: str) -> str:
    """The key (or group) of an override as typed: ``+a.b=1`` → ``a.b``."""
    return word.split("=", 1)[0].lstrip("+~")


def read(task: str, args: Sequence[str]) -> CommandLine:
    """Split ``args`` into Hydra's flags and overrides, and parse each override with Hydra's grammar."""
    line = CommandLine()
    i = 0
    while i < len(args):
        word = args[i]
        if word.startswith("-") and not word.startswith(("--=", "-=")):
            name = word.split("=", 1)[0]
            line.flags.append(word)
            if name in VALUE_FLAGS and "=" not in word and i + 1 < len(args):
                line.flags.append(args[i + 1])
                if name in ("-cd", "--config-dir"):
                    line.config_dirs.append(Path(args[i + 1]))
                i += 1
            elif name in ("-cd", "--config-dir") and "=" in word:
                line.config_dirs.append(Path(word.split("=", 1)[1]))
            i += 1
            continue
        line.words.append(word)
        line.parsed.append(parse_word(task, word, args[i - 1] if i else None))
        i += 1
    return line


def parse_word(task: str, word: str, before: str | None = None) -> Override:
    """One override, or a paragraph saying why Hydra's grammar refuses it and how to write it."""
    try:
        return _PARSER.parse_overrides([word])[0]
    except HydraException as err:
        reason = str(err).strip().splitlines()[0]
    if "=" not in word:
        split = before is not None and "=" in before and not before.startswith("-")
        raise AnnkitError(
            f'"{word}" is not an override (key=value or group=option)'
            + (
                f': the shell split a value with a space into two words, "{before}" and "{word}". Quote it: '
                f"`{command(task, override(key_of(before), before.split('=', 1)[1] + ' ' + word))}`."
                if split
                else f". Write it as key=value, e.g. `annkit {task} trainer.epochs=5`; `annkit {task} --help` lists the keys."
            )
        )
    key, value = word.split("=", 1)
    prefix = word[: len(word) - len(word.lstrip("+~"))]
    fixed = prefix + override(key.lstrip("+~"), value)
    raise AnnkitError(
        f"Hydra's override grammar cannot read {word!r} ({reason}). A value with spaces, letters outside ASCII, '=', "
        f"',', quotes or brackets must be a quoted string for Hydra, and the whole word quoted again for the shell: "
        f"`{command(task, fixed)}` (Hydra reads {key.lstrip('+~')}={hydra_value(value)}). A ',' left unquoted "
        f"makes a sweep over values (with -m)."
    )


# ── config groups ───────────────────────────────────────────────────────────────────────────────


def _loader(config_dirs: Sequence[Path] = ()) -> ConfigLoaderImpl:
    """Hydra's own config loader over annkit's configs, Hydra's and its plugins', and ``config_dirs``."""
    search = create_config_search_path("pkg://annkit.configs")
    for folder in config_dirs:
        search.prepend("command-line", f"file://{Path(folder).absolute()}")
    return ConfigLoaderImpl(config_search_path=search)


def group_options(
    group: str, config_dirs: Sequence[Path] = (), loader: ConfigLoaderImpl | None = None
) -> list[str] | None:
    """The options of config group ``group`` (annkit's, Hydra's and its plugins', and those in
    ``config_dirs``), or None when there is no such group."""
    loader = loader or _loader(config_dirs)
    if not loader.repository.group_exists(group):
        return None
    return sorted(loader.get_group_options(group))


def check_groups(task: str, line: CommandLine) -> None:
    """Every ``group=option`` of the command line names an option that exists."""
    loader = None
    for o in line.parsed:
        key = o.key_or_group
        if "." in key or o.type == OverrideType.DEL or o.is_sweep_override():
            continue
        loader = loader or _loader(line.config_dirs)
        options = group_options(key, loader=loader)
        value = o.value()
        if options is None or value is None or not isinstance(value, str) or value in options:
            continue
        where = (
            f"the files in configs/{key}/"
            if not key.startswith("hydra")
            else f"Hydra's and its plugins' {key}/ configs"
        )
        close = difflib.get_close_matches(value, options, n=1, cutoff=0.6)
        raise AnnkitError(
            f'{key}={value}: there is no {key} option "{value}".{did_you_mean(value, options)} The {key} options are: '
            f"{', '.join(options)} ({where}). Pick one with {key}=<option>, e.g. "
            f"`{command(task, f'{key}={(close or options)[0]}')}`; `annkit {task} --help` lists every group."
        )


def check_keys(task: str, line: CommandLine) -> None:
    """Every ``key=value`` names a key the composed config has (Hydra would only say "Could not override"); a new
    key needs ``+key=value``. The config is composed once, with the command line's groups and values, as Hydra will
    compose it; a failure of another kind is left to Hydra to report."""
    loader = _loader(line.config_dirs)
    keys = [o for o in line.parsed if o.type == OverrideType.CHANGE and not o.key_or_group.startswith("hydra")
            and ("." in o.key_or_group or not loader.repository.group_exists(o.key_or_group))]  # fmt: skip
    if not keys:
        return
    config = task.replace("-", "_")
    words = [w for w, o in zip(line.words, line.parsed) if not o.is_sweep_override()]
    try:
        cfg = loader.load_configuration(config, words, RunMode.RUN, validate_sweep_overrides=False)
    except HydraException:
        plain = {id(o) for o in keys}
        kept = [w for w, o in zip(line.words, line.parsed) if id(o) not in plain and not o.is_sweep_override()]
        try:
            cfg = loader.load_configuration(config, kept, RunMode.RUN, validate_sweep_overrides=False)
        except HydraException:
            return
    for o in keys:
        missing = _missing(cfg, o.key_or_group)
        if missing is not None:
            raise _unknown_key(task, o, *missing)


def _missing(cfg: Any, key: str) -> tuple[str, list[str]] | None:
    """(the first part of ``key`` that ``cfg`` lacks, as a dotted path; the keys beside it), or None."""
    node, path = cfg, []
    for part in key.split("."):
        if not isinstance(node, DictConfig) or part not in node:
            keys = [str(k) for k in node if k != "hydra"] if isinstance(node, DictConfig) else []
            return ".".join([*path, part]), keys
        try:
            node, path = node[part], [*path, part]
        except Exception:  # an interpolation that resolves only in the run (Hydra's resolvers): the key exists
            return None
    return None


def _unknown_key(task: str, o: Override, missing: str, valid: list[str]) -> AnnkitError:
    parent, _, name = missing.rpartition(".")
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    fixed = (f"{parent}.{close[0]}" if parent else close[0]) + o.key_or_group[len(missing) :] if close else None
    listed = f"The keys of {parent} are" if parent else "Its top-level keys are"
    return AnnkitError(
        f"{o.input_line}: annkit {task}'s config has no key {missing}."
        + (f' Did you mean "{fixed}"?' if fixed else "")
        + (f" {listed}: {', '.join(sorted(valid))}." if valid else f" {parent} is a value, not a group of keys.")
        + f" Fix the name, or add a new key with +{o.input_line}; `annkit {task} --help` lists every key with its "
        f"default and meaning."
    )


def check_config_dir(folder: Path) -> None:
    """A ``--config-dir`` may add annkit options (model/wide.yaml, experiment/mine.yaml …) but set no
    Hydra setting: a file from someone else must not pick the log file's path, callbacks or the
    launcher. Those come from the command line only (``hydra.run.dir=…``, ``hydra/launcher=…``)."""
    if not folder.is_dir():
        raise AnnkitError(
            f"--config-dir {folder}: there is no such folder. Give the folder that holds your config groups "
            f"(e.g. my/model/wide.yaml → --config-dir my)."
        )
    for path in sorted(folder.rglob("*.yaml")):
        rel = path.relative_to(folder)
        why = None
        if rel.parts[0] == "hydra":
            why = "it is a Hydra config group file"
        else:
            try:
                node = yaml.safe_load(path.read_text(encoding="utf-8"))
            except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
                raise AnnkitError(
                    f"--config-dir {folder}: {rel} is not readable YAML ({str(err).splitlines()[0]}). Fix or remove it."
                ) from None
            if isinstance(node, dict) and "hydra" in node:
                why = "it sets hydra.* keys"
            elif isinstance(node, dict) and any(d.lstrip("/").startswith("hydra") for d in _defaults(node)):
                why = "its defaults list picks a Hydra config group"
        if why:
            raise AnnkitError(
                f"--config-dir {folder}: {rel} cannot be used: {why}. Files of a config folder may hold annkit's own "
                f"keys only (model, dataset, loss, optimizer, scheduler, trainer, logger, lr_find, experiment); Hydra's "
                f"settings (the run dir, logging, launcher, callbacks) are given on the command line, e.g. "
                f"hydra.run.dir=<folder> or hydra/launcher=joblib, so a config file from elsewhere cannot redirect files "
                f"or run code. Remove the hydra part from {rel}."
            )


def _defaults(node: dict[str, Any]) -> list[str]:
    entries = node.get("defaults") or []
    out = []
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict):
            out += [str(k).replace("override ", "").strip() for k in entry]
        else:
            out.append(str(entry))
    return out


# ── run dirs named on the command line ──────────────────────────────────────────────────────────


def fixed_dir(line: CommandLine, key: str) -> Path | None:
    """The folder ``hydra.run.dir`` / ``hydra.sweep.dir`` names on the command line, when it names a
    fixed one (no ``${…}``: the default's timestamp makes a new folder every time)."""
    value = line.value(key)
    if not isinstance(value, str) or "${" in value:
        return None
    return Path(value)


def rewritten(words: Sequence[str], values: dict[str, Any]) -> list[str]:
    """``words`` with the overrides of the keys in ``values`` set to those values (e.g. paths made
    absolute), quoted as Hydra reads them."""
    out = []
    for word in words:
        key = key_of(word)
        prefix = word[: len(word) - len(word.lstrip("+~"))]
        out.append(prefix + override(key, values[key]) if key in values and "=" in word else word)
    return out
