"""Run the python examples of one documentation page, in order, in one namespace.

``python tests/docs/run_page.py PAGE RESULT.json`` writes what each block
printed to RESULT.json; a block that raises stops the run with the traceback
on stderr, its line numbers those of the page.  The test suite runs each page
in its own process, so that what an example configures (logging, the event
loop policy) cannot leak into the tests or the next page.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.docs.examples import blocks


def main(page: Path, result: Path) -> int:
    # A page that hangs shows where, on stderr, before the test's timeout (110 s) kills it.
    faulthandler.dump_traceback_later(90, exit=True)
    namespace: dict[str, object] = {"__name__": "__main__"}
    outputs = []
    for block in blocks(page):
        if block.language != "python":
            continue
        code = compile("\n" * (block.line - 1) + block.code, str(page), "exec")
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(code, namespace)
        outputs.append({"line": block.line, "stdout": buffer.getvalue()})
        result.write_text(json.dumps(outputs))
    return 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), Path(sys.argv[2])))
