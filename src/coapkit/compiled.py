"""What the optional compiled build (mypyc, ``COAPKIT_MYPYC=1``) needs from the source.

The pure-Python package is the reference and the default; a compiled build turns the
hot modules into C extensions that must behave the same.  Classes that rely on
Python's object model (immutable values stored past their own ``__setattr__``) stay
regular classes there, marked ``@mypyc_attr(native_class=False)``; without mypy's
extensions installed the marker is a no-op (the core has no dependencies).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["is_compiled", "mypyc_attr"]

if TYPE_CHECKING:
    from mypy_extensions import mypyc_attr
else:
    try:
        from mypy_extensions import mypyc_attr
    except ImportError:

        def mypyc_attr(*args, **kwargs):
            return lambda cls: cls


def is_compiled() -> bool:
    """Whether this is a compiled build (its message codec is a C extension)."""
    import coapkit.codec.message as codec

    return not (codec.__file__ or "").endswith(".py")
