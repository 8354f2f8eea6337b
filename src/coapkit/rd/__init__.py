"""A resource directory (RFC 9176): the server, its stores, and the registration client.

* :class:`ResourceDirectory` serves the directory's resources (registration, simple
  registration, updates and removal, endpoint and resource lookup) on a
  :class:`~coapkit.Server`, over a :class:`~coapkit.rd.store.Store`;
* :class:`SQLiteStore` (the default: a file that survives restarts) and
  :class:`~coapkit.rd.redis_store.RedisStore` (``coapkit[redis]``: several directory
  processes sharing one directory) are the stores; :func:`open_store` opens one by name;
* :class:`Registrant` keeps a server's resources registered with a directory.

The guide is docs/rd.md.  This package sits above the client and the server
(docs/architecture.md, rule 9).
"""

from coapkit.rd.directory import ResourceDirectory
from coapkit.rd.model import Lookup, RDConfig, Registration
from coapkit.rd.policy import (
    AuthenticatedPolicy,
    FirstComePolicy,
    OpenPolicy,
    RegistrationPolicy,
)
from coapkit.rd.sqlite_store import SQLiteStore
from coapkit.rd.store import Store, open_store

__all__ = [
    "AuthenticatedPolicy",
    "FirstComePolicy",
    "Lookup",
    "OpenPolicy",
    "RDConfig",
    "Registration",
    "RegistrationPolicy",
    "ResourceDirectory",
    "SQLiteStore",
    "Store",
    "open_store",
]
