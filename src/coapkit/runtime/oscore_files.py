"""OSCORE security contexts on disk, in aiocoap's context directory layout.

A context directory holds (aiocoap's ``FilesystemSecurityContext``):

``settings.json`` and/or ``secret.json``
    The input parameters, each key in at most one of the two files (the secret
    usually in ``secret.json``, readable by its owner only): ``sender-id``,
    ``recipient-id``, ``secret``, optional ``salt``, ``id-context``,
    ``algorithm`` (default ``"AES-CCM-16-64-128"``), ``kdf-hashfun`` (default
    ``"sha256"``), ``window`` (the replay window, default 32); coapkit's own
    ``coapkit-rederive`` (true: a template for RFC 8613 Appendix B.2, see
    :mod:`coapkit.oscore.rederive`; aiocoap ignores the key).  Byte values take
    a ``_hex`` or ``_ascii`` suffix: ``"sender-id_hex": "01"``,
    ``"secret_ascii": "Correct Horse Battery Staple"``.
``sequence.json``
    The state: ``{"next-to-send": N, "received": {"index": I, "bitfield": B}}``,
    or ``"received": "unknown"`` while a process uses the context (after a crash
    the replay window is unknown and freshness is proven with Echo, RFC 8613
    Appendix B.1.2).  Written atomically (a temporary file, ``fsync``, rename,
    ``fsync`` of the directory) before a sequence number it covers is used.
``lock``
    Held (``flock``) while a process uses the context, as aiocoap's ``filelock``
    holds it: two processes, of either stack, never use one context at once.

A context must never be copied and used in two places (that reuses nonces);
moving it is fine.  Relative ``basedir`` paths in a credentials file are
relative to the working directory, as for aiocoap.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from coapkit.oscore.algorithms import require_crypto
from coapkit.oscore.context import (
    ContextParameters,
    SecurityContext,
    SequencePolicy,
    SequenceState,
)
from coapkit.oscore.credentials import CredentialsMap
from coapkit.oscore.errors import OscoreConfigError
from coapkit.randomness import RandomSource
from coapkit.runtime.entropy import SystemEntropy

__all__ = ["FileStore", "load_context", "load_credentials", "write_context"]

SEQUENCE = "sequence.json"
LOCK = "lock"
PARAMETER_FILES = ("secret.json", "settings.json")


class FileStore:
    """The :class:`~coapkit.oscore.context.SequenceStore` of one context directory
    (``sequence.json``), holding the directory's ``lock`` from construction to
    :meth:`release`."""

    def __init__(self, basedir: str | os.PathLike[str], *, lock: bool = True) -> None:
        self.basedir = Path(basedir)
        self.path = self.basedir / SEQUENCE
        self._lock_fd: int | None = None
        if lock:
            self._lock()

    def _lock(self) -> None:
        path = self.basedir / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise OscoreConfigError(
                f"cannot lock the security context {self.basedir}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise OscoreConfigError(
                f"the security context {self.basedir} is in use by another process "
                "(its lock is held); a context must never be used by two at once"
            ) from None
        self._lock_fd = fd

    def load(self) -> SequenceState | None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise OscoreConfigError(f"{self.path} cannot be read: {exc}") from None
        try:
            next_to_send = int(data["next-to-send"])
            received = data["received"]
            if received == "unknown":
                window = None
            else:
                window = (int(received["index"]), int(received["bitfield"]))
        except (KeyError, TypeError, ValueError):
            raise OscoreConfigError(f"{self.path}: the stored state is not understood") from None
        if next_to_send < 0 or (window is not None and min(window) < 0):
            raise OscoreConfigError(f"{self.path}: the stored state is not understood")
        return SequenceState(next_to_send, window)

    def save(self, state: SequenceState) -> None:
        received: Any = "unknown"
        if state.window is not None:
            received = {"index": state.window[0], "bitfield": state.window[1]}
        data = json.dumps({"next-to-send": state.next_to_send, "received": received})
        fd, temporary = tempfile.mkstemp(dir=self.basedir, prefix=".sequence-", suffix=".json")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data.encode("utf-8"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        directory = os.open(self.basedir, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def release(self) -> None:
        """Give the directory's lock back (the context is closed)."""
        fd, self._lock_fd = self._lock_fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.basedir / LOCK)
            os.close(fd)


def _bytes_value(key: str, value: object, where: Path) -> tuple[str, object]:
    if key.endswith("_hex"):
        if not isinstance(value, str):
            raise OscoreConfigError(f"{where}: {key} takes a string of hex digits")
        try:
            return key[:-4], bytes.fromhex(value.replace("-", "").replace(" ", "").replace(":", ""))
        except ValueError:
            raise OscoreConfigError(f"{where}: {key} is not hex") from None
    if key.endswith("_ascii"):
        if not isinstance(value, str) or not value.isascii():
            raise OscoreConfigError(f"{where}: {key} takes an ASCII string")
        return key[:-6], value.encode("ascii")
    return key, value


def read_parameters(basedir: str | os.PathLike[str]) -> tuple[ContextParameters, dict[str, Any]]:
    """The input parameters stored in a context directory, and the raw items read
    (for the keys this module does not use)."""
    base = Path(basedir)
    data: dict[str, Any] = {}
    found = False
    for name in PARAMETER_FILES:
        path = base / name
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise OscoreConfigError(f"{path} cannot be read: {exc.strerror}") from None
        found = True
        try:
            items = json.loads(text)
        except ValueError as exc:
            raise OscoreConfigError(f"{path} is not JSON: {exc}") from None
        if not isinstance(items, dict):
            raise OscoreConfigError(f"{path} holds a JSON object")
        for raw_key, raw_value in items.items():
            key, value = _bytes_value(raw_key, raw_value, path)
            if key in data:
                raise OscoreConfigError(
                    f"{base}: {key} is given twice (in settings.json and secret.json)"
                )
            data[key] = value
    if not found:
        raise OscoreConfigError(
            f"{base} holds no settings.json or secret.json (is it a security context?)"
        )
    for required in ("sender-id", "recipient-id", "secret"):
        if required not in data:
            raise OscoreConfigError(f"{base}: the security context has no {required}")
    window = data.get("window", 32)
    if not isinstance(window, int) or isinstance(window, bool):
        raise OscoreConfigError(f"{base}: window is an integer")
    for name in ("sender-id", "recipient-id", "secret", "salt", "id-context"):
        if name in data and not isinstance(data[name], bytes):
            raise OscoreConfigError(f"{base}: {name} takes a _hex or _ascii value")
    try:
        parameters = ContextParameters(
            master_secret=data["secret"],
            sender_id=data["sender-id"],
            recipient_id=data["recipient-id"],
            master_salt=data.get("salt", b""),
            id_context=data.get("id-context"),
            aead=data.get("algorithm", "AES-CCM-16-64-128"),
            hkdf=data.get("kdf-hashfun", "sha256"),
            replay_window=window,
            rederive=data.get("coapkit-rederive", False) is True,
        )
    except ValueError as exc:
        raise OscoreConfigError(f"{base}: {exc}") from None
    return parameters, data


def load_context(
    basedir: str | os.PathLike[str],
    *,
    label: str | None = None,
    rng: RandomSource | None = None,
    policy: SequencePolicy | None = None,
) -> SecurityContext:
    """The security context stored in ``basedir``, locked for this process until it is
    closed (:meth:`SecurityContext.close` stores its exact state and unlocks it)."""
    require_crypto()
    parameters, _ = read_parameters(basedir)
    store = FileStore(basedir)
    try:
        return SecurityContext(
            parameters,
            store=store,
            rng=rng or SystemEntropy(),
            label=label,
            policy=policy,
        )
    except BaseException:
        store.release()
        raise


def load_credentials(
    source: str | os.PathLike[str] | dict[str, Any], *, rng: RandomSource | None = None
) -> CredentialsMap:
    """A credentials file (aiocoap's JSON format) with its OSCORE contexts loaded; close
    it (:meth:`CredentialsMap.close`) when done, to store the contexts' state."""
    if isinstance(source, dict):
        data: object = source
    else:
        path = Path(source)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise OscoreConfigError(f"credentials file {path} does not exist") from None
        except OSError as exc:
            raise OscoreConfigError(
                f"credentials file {path} cannot be read: {exc.strerror}"
            ) from None
        except ValueError as exc:
            raise OscoreConfigError(f"credentials file {path} is not JSON: {exc}") from None
    source_rng = rng or SystemEntropy()
    loaded: list[SecurityContext] = []

    def load(basedir: str, label: str) -> SecurityContext:
        context = load_context(basedir, label=label, rng=source_rng)
        loaded.append(context)
        return context

    try:
        credentials = CredentialsMap.from_data(data, load)
        credentials.edhoc.update(_edhoc_entries(credentials))
        return credentials
    except BaseException:
        for context in loaded:
            context.close()
        raise


def read_key_file(path: str) -> object:
    """A COSE private key file (CBOR, as ``aiocoap-keygen`` writes it, or JSON), refused
    when others than its owner may read it (as aiocoap refuses it)."""
    where = Path(path)
    try:
        if where.stat().st_mode & 0o077:
            raise OscoreConfigError(
                f"private key file {path} may be read by others than its owner (chmod 600)"
            )
        raw = where.read_bytes()
    except OSError as exc:
        raise OscoreConfigError(f"private key file {path} cannot be read: {exc.strerror}") from None
    if raw[:1] in (b"{", b" ", b"\n"):
        try:
            return json.loads(raw)
        except ValueError:
            pass
    try:
        import cbor2
    except ImportError:
        raise OscoreConfigError("reading a CBOR key file needs cbor2 (the oscore extra)") from None
    try:
        return cbor2.loads(raw)
    except Exception:
        raise OscoreConfigError(f"private key file {path} is neither CBOR nor JSON") from None


def _edhoc_entries(credentials: CredentialsMap) -> dict[str, Any]:
    """The ``edhoc-oscore`` entries, parsed (their key files read)."""
    from coapkit.edhoc.config import parse_edhoc_entry
    from coapkit.oscore.credentials import OtherEntry

    return {
        key: parse_edhoc_entry(key, entry.value, read_key_file)
        for key, entry in credentials.entries.items()
        if isinstance(entry, OtherEntry) and entry.kind == "edhoc-oscore"
    }


def write_context(
    basedir: str | os.PathLike[str],
    parameters: ContextParameters,
    *,
    secret_file: bool = True,
) -> Path:
    """Write ``parameters`` as a context directory (``settings.json`` and, with the Master
    Secret, ``secret.json`` readable by its owner only), for tests and provisioning."""
    base = Path(basedir)
    base.mkdir(parents=True, exist_ok=True)
    settings: dict[str, Any] = {
        "sender-id_hex": parameters.sender_id.hex(),
        "recipient-id_hex": parameters.recipient_id.hex(),
        "algorithm": parameters.aead,
    }
    if parameters.hkdf != "sha256":
        settings["kdf-hashfun"] = parameters.hkdf
    if parameters.replay_window != 32:
        settings["window"] = parameters.replay_window
    if parameters.id_context is not None:
        settings["id-context_hex"] = parameters.id_context.hex()
    if parameters.rederive:
        settings["coapkit-rederive"] = True
    secret: dict[str, Any] = {"secret_hex": parameters.master_secret.hex()}
    if parameters.master_salt:
        secret["salt_hex"] = parameters.master_salt.hex()
    if not secret_file:
        settings.update(secret)
    (base / "settings.json").write_text(json.dumps(settings, indent=2) + "\n", encoding="utf-8")
    if secret_file:
        path = base / "secret.json"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(json.dumps(secret, indent=2) + "\n")
    return base
