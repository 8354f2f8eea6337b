"""The build backend: setuptools, asking for mypy too when ``COAPKIT_MYPYC=1``.

``pip install .`` builds the pure-Python package (the default and the reference).
``COAPKIT_MYPYC=1 pip install .`` compiles the hot modules with mypyc (``setup.py``
lists them); that needs mypy at build time, so this backend adds it to the build
requirements only then, and a plain build stays a plain setuptools build.
"""

from __future__ import annotations

import os
from typing import Any

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (every hook not redefined here)

#: the mypy (and mypyc) release the compiled build is tested with
MYPY = "mypy==2.4.1"


def _compiled() -> bool:
    return os.environ.get("COAPKIT_MYPYC") == "1"


# setuptools answers these hooks by running setup.py, which imports mypyc when compiling:
# then the answer is mypy itself (setup.py has no other build requirements).


def get_requires_for_build_wheel(config_settings: Any = None) -> list[str]:
    if _compiled():
        return [MYPY]
    return _setuptools.get_requires_for_build_wheel(config_settings)


def get_requires_for_build_editable(config_settings: Any = None) -> list[str]:
    if _compiled():
        return [MYPY]
    return _setuptools.get_requires_for_build_editable(config_settings)
