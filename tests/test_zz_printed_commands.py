"""Every command annkit prints pastes: collected from every `annkit` subprocess this test session ran
(tests/conftest.py's run_annkit; this file runs last), plus a few of its own, each command must split
with ``shlex.split`` into words that Hydra's grammar reads (a path with a space left unquoted splits
in two, and a letter outside ASCII left unquoted is a lexer error: both fail here)."""

from __future__ import annotations

import re
import shlex

from hydra.core.override_parser.overrides_parser import OverridesParser

from annkit.autodiff import parse
from annkit.cli import SUBCOMMANDS, positional
from annkit.errors import AnnkitError
from annkit.tasks.autodiff import read_words
from tests.conftest import OUTPUTS, run_annkit

PARSER = OverridesParser.create()
BACKTICKED = re.compile(r"`(annkit [^`]+)`")
PLACEHOLDER = re.compile(r"<[^<>]*>")  # <run dir>, <n>: templates the reader fills in


def printed_commands(text: str) -> list[str]:
    """The commands in an output: `annkit …` in backticks, and lines (in a panel or not) that are one."""
    found = BACKTICKED.findall(text)
    for line in text.splitlines():
        body = line.strip(" │╭╮╰╯─")
        body = body.removeprefix("tensorboard ").strip()
        second = body.split(" ")[1] if " " in body else ""
        title = " — " in body or second not in (*SUBCOMMANDS, "-sc", "--help")  # a heading like "annkit train — …"
        if body.startswith("annkit ") and "`" not in body and not title:
            found.append(re.split(r"\s{2,}", body)[0])  # the help's examples: command, then its description
    return found


def problems(cmd: str) -> str | None:
    try:
        words = shlex.split(PLACEHOLDER.sub("X", cmd), comments=True)  # a help line's '# …' is a shell comment
    except ValueError as err:
        return f"shlex cannot split it ({err})"
    if words[0] != "annkit" or (len(words) > 1 and words[1] not in SUBCOMMANDS and not words[1].startswith("-")):
        return "it does not start with annkit <subcommand>"
    if len(words) > 1 and words[1] == "autodiff":  # not a Hydra app: its own words, an expression and name=number
        try:
            request = read_words(words[2:])
            parse(request.expression, list(request.at))
        except AnnkitError as err:
            return f"annkit autodiff refuses it ({err})"
        return None
    try:
        rest = positional(words[1], words[2:]) if len(words) > 1 else []  # show's, compare's bare words
    except AnnkitError as err:
        return f"its bare words are refused ({err})"
    skip = False
    for word in rest:
        if skip or word.startswith("-") or word == "X":
            skip = word in ("-c", "--cfg", "-cd", "--config-dir", "-cn", "--config-name", "-cp", "--config-path")
            continue
        try:
            PARSER.parse_overrides([word])
        except Exception as err:
            return f"the word {word!r} is not an override Hydra reads ({str(err).splitlines()[0]})"
    return None


def test_the_collector_finds_commands_and_catches_broken_ones():
    text = (
        "error: x. Go on with `annkit train 'resume=\"my run\"'`.\n│ tensorboard annkit board logdir=outputs │\n"
        "  annkit train resume=my run\n  annkit eval checkpoint=ü.safetensors   score it\n"
    )
    found = printed_commands(text)
    assert found == [
        "annkit train 'resume=\"my run\"'",
        "annkit board logdir=outputs",
        "annkit train resume=my run",
        "annkit eval checkpoint=ü.safetensors",
    ]
    assert [problems(c) is None for c in found] == [True, True, False, False]


def test_every_printed_command_parses_back_into_its_words(tmp_path):
    odd = tmp_path / "ünï dir=1,2"
    odd.mkdir()
    (odd / "checkpoints").mkdir()
    (odd / "checkpoints" / "last.safetensors").write_bytes(b"x")
    for args in (
        ["--help"],
        ["train", "--help"],
        ["train", "optimizer=sgdd"],
        ["train", "resume=ü"],
        ["train", "dataset=xor", f"hydra.run.dir={odd}".replace(str(odd), f"'{odd}'")],
    ):
        run_annkit(*args, cwd=tmp_path)
    commands = [c for out in OUTPUTS for c in printed_commands(out)]
    assert len(commands) >= 20
    bad = {c: why for c in dict.fromkeys(commands) if (why := problems(c)) is not None}
    assert not bad, "\n".join(f"{c}\n    {why}" for c, why in bad.items())
