"""Reading the code examples out of the documentation pages.

A page is a sequence of fenced blocks.  ```` ```python ```` blocks are run in
order in one namespace per page (the pages say their examples build on each
other); a block directly followed by a ```` ```text title="Output" ```` block
must print exactly that.  ```` ```console ```` blocks hold ``$ command`` lines,
each followed by the output it should give.

The python blocks are type-checked too (``mypy --strict``, as a user's CI would
check the program they make): :func:`page_module` lays each page's blocks out
as one module, as they run.  A block that cannot be type-checked says so, and
why, on its first line: ``# not type-checked: aiocoap has no type hints``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_FENCE = re.compile(r"^```([\w-]*)([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  #: 1-based line of the code's first line in the page
    language: str
    info: str  #: the rest of the fence line (``title="Output"``)
    code: str
    output: str | None = None  #: the expected output, for a python block

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    return sorted(p for p in DOCS.rglob("*.md") if "_hooks" not in p.parts)


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found: list[Block] = []
    matches = list(_FENCE.finditer(text))
    for index, match in enumerate(matches):
        language, info, code = match.group(1), match.group(2).strip(), match.group(3)
        line = text.count("\n", 0, match.start()) + 2
        output = None
        if language == "python" and index + 1 < len(matches):
            following = matches[index + 1]
            between = text[match.end() : following.start()]
            if (
                not between.strip()
                and following.group(1) == "text"
                and 'title="Output"' in following.group(2)
            ):
                output = following.group(3)
        found.append(Block(page, line, language, info, code, output))
    return found


#: The first line of a python block that is run but not type-checked, with its reason.
NOT_TYPE_CHECKED = re.compile(r"^# not type-checked: (\S.*)$")


def not_type_checked(block: Block) -> str | None:
    """The reason ``block`` is not type-checked, or None if it is."""
    first = block.code.split("\n", 1)[0]
    match = NOT_TYPE_CHECKED.match(first)
    return match.group(1) if match else None


def page_module(page: Path) -> tuple[str, set[int]]:
    """The page's python blocks as one module, in order as they run in one namespace,
    each at its own line of the page (so that a type error names the page's line); and
    the lines of the blocks that are not type-checked, whose errors do not count (their
    names are still defined for the blocks after them, as when they run)."""
    lines = [""] * (page.read_text(encoding="utf-8").count("\n") + 1)
    skipped: set[int] = set()
    for block in blocks(page):
        if block.language != "python":
            continue
        code = block.code.splitlines()
        lines[block.line - 1 : block.line - 1 + len(code)] = code
        if not_type_checked(block) is not None:
            skipped.update(range(block.line, block.line + len(code)))
    return "\n".join(lines) + "\n", skipped


def count_fences(page: Path, language: str) -> int:
    """Fences of ``language``, counted independently of :func:`blocks` (a check on it)."""
    return sum(
        1
        for line in page.read_text(encoding="utf-8").splitlines()
        if line.strip() == f"```{language}" or line.startswith(f"```{language} ")
    )


@dataclass(frozen=True)
class ConsoleCommand:
    block: Block
    command: str
    expected: list[str]


def console_commands(block: Block) -> list[ConsoleCommand]:
    commands: list[ConsoleCommand] = []
    for line in block.code.splitlines():
        if line.startswith("$ "):
            commands.append(ConsoleCommand(block, line[2:], []))
        elif commands:
            commands[-1].expected.append(line)
    return commands


# -- comparing outputs ---------------------------------------------------------------------------

_VOLATILE = [
    (re.compile(r"MID \d+"), "MID N"),
    (re.compile(r"token [0-9a-f]+"), "token T"),
    (re.compile(r"\+\d+\.\d{3} s"), "+T s"),
    (re.compile(r"(127\.0\.0\.1|\[::1\]):\d+"), r"\1:PORT"),
    (re.compile(r"round trip \d+\.\d+ ms"), "round trip T ms"),
]


def normalise(line: str) -> str:
    """A line with what changes from run to run (IDs, times, ports) replaced."""
    line = line.rstrip()
    for pattern, replacement in _VOLATILE:
        line = pattern.sub(replacement, line)
    return line


def matches(expected: list[str], actual: list[str]) -> bool:
    """Line by line after :func:`normalise`; an expected line ``...`` stands for any lines."""
    want = [normalise(line) for line in expected]
    got = [normalise(line) for line in actual]

    def match(i: int, j: int) -> bool:
        if i == len(want):
            return j == len(got)
        if want[i] == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and want[i] == got[j] and match(i + 1, j + 1)

    return match(0, 0)
