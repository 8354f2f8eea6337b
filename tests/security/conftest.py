"""The test PKI, made once per session (tests/security/certs.py).

``cryptography`` is a test dependency (the ``test`` extra); in CI a missing
one is a failure, elsewhere the certificate tests are skipped.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.security.certs import Pki


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    if not os.environ.get("CI"):
        pytest.importorskip("cryptography")
    from tests.security.certs import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))
