"""The command line as data, read from the argparse parser of :mod:`coapkit.cli.main`.

Shell completion (:mod:`coapkit.cli.completion`) and the documentation's CLI
reference (:mod:`coapkit.cli.reference`) are both generated from this, so
neither can drift from the options the tool really takes.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from coapkit.cli.arguments import SCHEMES, content_format_type
from coapkit.codec.content_formats import BY_NUMBER

__all__ = ["Command", "Option", "commands", "content_format_names", "options_of"]


@dataclass(frozen=True)
class Option:
    """One argument of a command: an option (``flags``) or a positional (no flags)."""

    dest: str
    flags: tuple[str, ...]
    metavar: str | None
    help: str
    choices: tuple[str, ...] | None
    takes_value: bool
    default: object
    repeatable: bool
    #: words that may follow: the choices, the content format names for --accept & co,
    #: or the ``scheme://`` beginnings of a URI
    words: tuple[str, ...] | None

    @property
    def positional(self) -> bool:
        return not self.flags

    @property
    def value_name(self) -> str:
        """How the value is shown: the metavar, or ``{a,b}`` choices, or the dest."""
        if self.metavar:
            return self.metavar
        if self.choices:
            return "{" + ",".join(self.choices) + "}"
        return self.dest.upper()


@dataclass(frozen=True)
class Command:
    """A subcommand (``name``), or the tool itself (``name`` empty)."""

    name: str
    parser: argparse.ArgumentParser
    help: str
    options: tuple[Option, ...]

    @property
    def description(self) -> str:
        return self.parser.description or ""

    @property
    def epilog(self) -> str:
        return self.parser.epilog or ""

    @property
    def usage(self) -> str:
        return " ".join(self.parser.format_usage().split()).removeprefix("usage: ")


def content_format_names() -> tuple[str, ...]:
    """The short Content-Format names ``--content-format`` and ``--accept`` take."""
    return tuple(cf.short for cf in BY_NUMBER.values() if cf.short)


def _option(action: argparse.Action) -> Option:
    takes_value = action.nargs != 0
    choices = tuple(str(c) for c in action.choices) if action.choices else None
    words = choices
    if action.type is content_format_type:
        words = content_format_names()
    if action.metavar == "URI":  # a request's URI, --listen: the schemes
        words = tuple(f"{scheme}://" for scheme in SCHEMES)
    default = action.default if action.default is not argparse.SUPPRESS else None
    return Option(
        dest=action.dest,
        flags=tuple(action.option_strings),
        metavar=action.metavar if isinstance(action.metavar, str) else None,
        help=(action.help or "") if action.help is not argparse.SUPPRESS else "",
        choices=choices,
        takes_value=takes_value,
        default=default,
        repeatable=isinstance(action, argparse._AppendAction),
        words=words,
    )


def options_of(parser: argparse.ArgumentParser) -> tuple[Option, ...]:
    """The options and positionals of one parser, in definition order (no subcommands)."""
    return tuple(
        _option(action)
        for action in parser._actions
        if not isinstance(action, argparse._SubParsersAction)
    )


def _subparsers(
    parser: argparse.ArgumentParser,
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action
    raise ValueError("the parser has no subcommands")


def commands(parser: argparse.ArgumentParser) -> list[Command]:
    """The tool (first, with an empty name) and each of its subcommands, in order."""
    sub = _subparsers(parser)
    helps = {choice.dest: choice.help or "" for choice in sub._choices_actions}
    result = [Command("", parser, parser.description or "", options_of(parser))]
    for name, subparser in sub.choices.items():
        result.append(Command(name, subparser, helps.get(name, ""), options_of(subparser)))
    return result
