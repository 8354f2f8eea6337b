"""OSCORE (RFC 8613): end-to-end protection of CoAP requests and responses, sans I/O.

Needs the ``oscore`` extra (``pip install 'coapkit[oscore]'``: ``cryptography``
and ``cbor2``).
"""

from __future__ import annotations
