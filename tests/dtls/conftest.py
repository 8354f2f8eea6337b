"""The DTLS tests need the ``dtls`` extra (pyOpenSSL; the ``test`` extra has it) and the
test PKI (tests/security/certs.py).  In CI a missing extra is a failure, elsewhere those
tests are skipped."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from tests.security.certs import Pki


def require_pyopenssl() -> None:
    if not os.environ.get("CI"):
        pytest.importorskip("OpenSSL")


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    require_pyopenssl()
    from tests.security.certs import make_pki

    return make_pki(tmp_path_factory.mktemp("dtls-pki"))
