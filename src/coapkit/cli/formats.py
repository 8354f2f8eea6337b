"""Content-Formats guessed from file names, for ``--payload @FILE`` and the file server.

HTML has no registered CoAP Content-Format, so ``.html`` maps to None (send
none) rather than to a wrong one.
"""

from __future__ import annotations

import os

from coapkit.codec.content_formats import OCTET_STREAM

__all__ = ["EXTENSIONS", "guess_content_format"]

#: Content-Format by file extension (lower case).  ``None``: no registered format.
EXTENSIONS: dict[str, int | None] = {
    ".txt": 0,
    ".text": 0,
    ".log": 0,
    ".md": 0,
    ".csv": 0,
    ".json": 50,
    ".cbor": 60,
    ".xml": 41,
    ".wlnk": 40,
    ".exi": 47,
    ".gif": 21,
    ".jpg": 22,
    ".jpeg": 22,
    ".png": 23,
    ".css": 20000,
    ".js": 10002,
    ".mjs": 10002,
    ".svg": 30000,
    ".html": None,
    ".htm": None,
}


def guess_content_format(name: str, default: int | None = OCTET_STREAM) -> int | None:
    """The Content-Format for a file name, from its extension; ``default`` for unknown ones."""
    suffix = os.path.splitext(name)[1].lower()
    return EXTENSIONS.get(suffix, default)
