"""Tests marked ``slow`` here run only when asked for: ``pytest -m slow`` (or any ``-m``
expression naming ``slow``), or with ``COAPKIT_SLOW=1`` (as CI does)."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if os.environ.get("COAPKIT_SLOW") or "slow" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="slow: run with -m slow or COAPKIT_SLOW=1")
    for item in items:
        if item.get_closest_marker("slow") is not None:
            item.add_marker(skip)
