"""mkdocs hook: the CLI reference is generated from coapkit's argparse parser at build time.

A page that contains the marker below gets, in its place, the Markdown of
:func:`coapkit.cli.reference.markdown` for :func:`coapkit.cli.main.build_parser`:
the same options, help texts and examples as ``coapkit COMMAND --help``.  What
stands between the marker and :data:`END` (docs/cli.md: a note for whoever reads
the file itself, saying where the reference comes from) is replaced with it.
The generated text is not kept in the repository: it could only drift from the
parser, and every change of an option would touch it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- coapkit-cli-reference -->"
END = "<!-- /coapkit-cli-reference -->"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any, **kwargs: Any) -> str:
    if MARKER not in markdown:
        return markdown
    src = str(Path(config["config_file_path"]).resolve().parent / "src")
    if src not in sys.path:
        sys.path.insert(0, src)  # document this checkout, installed or not
    from coapkit.cli.main import build_parser
    from coapkit.cli.reference import markdown as reference

    start = markdown.index(MARKER)
    end = markdown.find(END, start)
    end = start + len(MARKER) if end < 0 else end + len(END)
    return markdown[:start] + reference(build_parser()) + markdown[end:]
