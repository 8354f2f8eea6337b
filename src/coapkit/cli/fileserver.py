"""``coapkit fileserver DIR``: a directory served over CoAP.

* GET on a file: its bytes, with a Content-Format guessed from the extension
  (:data:`EXTENSIONS`; ``application/octet-stream`` otherwise) and an ETag
  made from its modification time, size and inode.  A GET that names the
  current ETag gets 2.03 Valid without the payload (RFC 7252 §5.10.6.2).
* GET on a directory: its entries as ``application/link-format`` (ct 40,
  RFC 6690), one link per entry with ``ct`` and ``sz``, sub-directories
  with ``ct=40``; an ETag over the listing.  ``/.well-known/core`` lists the
  top-level entries the same way.
* PUT (write a file: 2.01 created, 2.04 replaced) and DELETE (a file or an
  empty directory: 2.02) only when started with ``--write``; otherwise 4.05.
  Both honour If-Match and If-None-Match (RFC 7252 §5.10.8): 4.12 when they
  do not hold.  PUT writes a temporary file and renames it into place, so a
  reader never sees half a file; the parent directory must exist.
* Dotfiles and dot-directories (``.env``, ``.git``, ``.ssh``: what a directory
  often holds without meaning to publish it) are hidden unless
  ``--dotfiles``: not listed, and a path with a segment starting with ``.``
  (or one that a symbolic link leads into such a place) is answered 4.04
  Not Found for GET and DELETE, as if it were not there, and 4.03 for PUT
  (which would create it).  The temporary files of uploads in progress
  (``.coapkit-upload-*``) are dotfiles too, so they never show.
* Nothing outside DIR is ever read or written: a path with a ``.`` or ``..``
  segment, a segment holding ``/``, ``\\`` or NUL, or one that leads out of
  DIR through a symbolic link is answered 4.03 Forbidden.  (Clients normalise
  ``..`` away before sending; these checks are for the Uri-Path options a
  hostile client crafts.)

Large files go block-wise (RFC 7959) below this layer: the resource returns
the whole body and the server's block-wise layer slices it into Block2
blocks (and reassembles Block1 uploads, up to the limit ``coapkit
fileserver`` sets).  HTML has no registered CoAP Content-Format, so ``.html``
files go out without one rather than with a wrong one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

from coapkit.cli.formats import EXTENSIONS, guess_content_format
from coapkit.codec.codes import Code
from coapkit.codec.content_formats import LINK_FORMAT
from coapkit.codec.link_format import Link
from coapkit.codec.uri import quote_segment
from coapkit.errors import RespondWith
from coapkit.resources.request import Request
from coapkit.resources.resource import Handler, Resource
from coapkit.resources.response import Response
from coapkit.resources.site import Site
from coapkit.resources.well_known import WELL_KNOWN_CORE, WellKnownCore

__all__ = ["EXTENSIONS", "DirectoryResource", "fileserver_site", "guess_content_format"]


def _etag(*parts: object) -> bytes:
    return hashlib.sha256(repr(parts).encode()).digest()[:8]


class DirectoryResource(Resource):
    """Every path below ``root``; mounted at ``/{path*}`` (see :func:`fileserver_site`)."""

    def __init__(
        self, root: str | os.PathLike[str], *, writable: bool = False, dotfiles: bool = False
    ) -> None:
        super().__init__(hidden=True)
        self.root = Path(os.path.realpath(root))
        self.writable = writable
        #: serve (and list) names starting with "." too (``--dotfiles``)
        self.dotfiles = dotfiles

    def handler(self, method: int) -> Handler | None:
        if not self.writable and method in (Code.PUT, Code.DELETE):
            return None
        return super().handler(method)

    # -- paths --------------------------------------------------------------------------

    def locate(self, segments: tuple[str, ...], *, hidden: Code = Code.NOT_FOUND) -> Path:
        """The real path for Uri-Path segments; RespondWith 4.03 if it would leave the root,
        ``hidden`` (4.04: as if it were not there) if it is or goes through a dotfile."""
        if segments and segments[-1] == "":
            segments = segments[:-1]  # "/dir/" names the directory itself
        for segment in segments:
            if segment in ("", ".", "..") or any(c in segment for c in "/\\\0"):
                raise RespondWith(Code.FORBIDDEN, f"path segment {segment!r} is not allowed")
        real = Path(os.path.realpath(self.root.joinpath(*segments)))
        if real != self.root and self.root not in real.parents:
            raise RespondWith(Code.FORBIDDEN, "that path leads outside the served directory")
        if not self.dotfiles and (self._dotted(segments) or self._dotted(self._inside(real))):
            if hidden == Code.NOT_FOUND:
                raise RespondWith(Code.NOT_FOUND, "no such file or directory")
            raise RespondWith(hidden, "names starting with '.' are not served")
        return real

    def _inside(self, real: Path) -> tuple[str, ...]:
        """The parts of ``real`` (a real path within the root) below the root."""
        return real.relative_to(self.root).parts

    @staticmethod
    def _dotted(parts: tuple[str, ...]) -> bool:
        return any(part.startswith(".") for part in parts)

    def href(self, path: Path) -> str:
        relative = path.relative_to(self.root)
        return "/" + "/".join(quote_segment(part) for part in relative.parts)

    def entry_link(self, path: Path) -> Link | None:
        """The link for one directory entry; None if it leads outside the root or is gone."""
        try:
            real = Path(os.path.realpath(path))
            if real != self.root and self.root not in real.parents:
                return None
            if not self.dotfiles and (
                path.name.startswith(".") or self._dotted(self._inside(real))
            ):
                return None  # hidden: see the module doc
            info = real.stat()
        except OSError:
            return None
        href = self.href(path)
        if real.is_dir():
            return Link.make(href, ct=LINK_FORMAT)
        return Link.make(href, ct=guess_content_format(path.name), sz=info.st_size)

    def listing(self, directory: Path) -> list[Link]:
        links = []
        for entry in sorted(directory.iterdir(), key=lambda p: p.name):
            link = self.entry_link(entry)
            if link is not None:
                links.append(link)
        return links

    # -- methods --------------------------------------------------------------------------

    def get(self, request: Request) -> Response:
        path = self.locate(request.path)
        try:
            if path.is_dir():
                return self._get_directory(request, path)
            info = path.stat()
            etag = _etag(info.st_mtime_ns, info.st_size, info.st_ino)
            content_format = guess_content_format(path.name)
            self._check_accept(request, content_format)
            if etag in request.etags:
                return Response(Code.VALID, etag=etag)
            data = path.read_bytes()
        except FileNotFoundError:
            raise RespondWith(Code.NOT_FOUND, "no such file or directory") from None
        except PermissionError:
            raise RespondWith(Code.FORBIDDEN, "permission denied") from None
        return Response(Code.CONTENT, data, content_format=content_format, etag=etag)

    def _get_directory(self, request: Request, path: Path) -> Response:
        self._check_accept(request, LINK_FORMAT)
        response = Response.link_format(self.listing(path))
        etag = _etag(response.payload)
        if etag in request.etags:
            return Response(Code.VALID, etag=etag)
        return response.replace(etag=etag)

    @staticmethod
    def _check_accept(request: Request, content_format: int | None) -> None:
        accept = request.accept
        if accept is not None and accept != content_format:
            raise RespondWith(Code.NOT_ACCEPTABLE, "not available in the requested Content-Format")

    def _current_etag(self, path: Path) -> bytes | None:
        try:
            info = path.stat()
        except FileNotFoundError:
            return None
        return _etag(info.st_mtime_ns, info.st_size, info.st_ino)

    def put(self, request: Request) -> Response:
        path = self.locate(request.path, hidden=Code.FORBIDDEN)
        if path == self.root or path.is_dir():
            raise RespondWith(Code.METHOD_NOT_ALLOWED, "a directory cannot be replaced by PUT")
        if not path.parent.is_dir():
            raise RespondWith(Code.NOT_FOUND, "the parent directory does not exist")
        etag = self._current_etag(path)
        exists = etag is not None
        if not request.preconditions_met(etag, exists=exists):
            raise RespondWith(Code.PRECONDITION_FAILED, "")
        try:
            handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".coapkit-upload-")
            try:
                with os.fdopen(handle, "wb") as file:
                    file.write(request.payload)
                os.chmod(temporary, 0o644)
                os.replace(temporary, path)
            except BaseException:
                os.unlink(temporary)
                raise
        except PermissionError:
            raise RespondWith(Code.FORBIDDEN, "permission denied") from None
        new_etag = self._current_etag(path)
        return Response(Code.CHANGED if exists else Code.CREATED, etag=new_etag)

    def delete(self, request: Request) -> Response:
        path = self.locate(request.path)
        if path == self.root:
            raise RespondWith(Code.FORBIDDEN, "the served directory itself cannot be deleted")
        etag = None if path.is_dir() else self._current_etag(path)
        exists = path.exists()
        if not exists:
            raise RespondWith(Code.NOT_FOUND, "no such file or directory")
        if not request.preconditions_met(etag, exists=exists):
            raise RespondWith(Code.PRECONDITION_FAILED, "")
        try:
            if path.is_dir():
                path.rmdir()
            else:
                path.unlink()
        except FileNotFoundError:
            pass  # gone already: deleted all the same
        except PermissionError:
            raise RespondWith(Code.FORBIDDEN, "permission denied") from None
        except OSError:
            raise RespondWith(Code.CONFLICT, "the directory is not empty") from None
        return Response(Code.DELETED)


class _TopLevel:
    """The link source of the file server's ``/.well-known/core``: the top-level entries."""

    def __init__(self, resource: DirectoryResource) -> None:
        self.resource = resource

    def links(self) -> list[Link]:
        try:
            return self.resource.listing(self.resource.root)
        except OSError:
            return []


def fileserver_site(
    root: str | os.PathLike[str], *, writable: bool = False, dotfiles: bool = False
) -> Site:
    """A site serving the directory ``root`` (read-only unless ``writable``; names starting
    with ``.`` hidden unless ``dotfiles``)."""
    resource = DirectoryResource(root, writable=writable, dotfiles=dotfiles)
    site = Site(well_known=False)
    site.add(WELL_KNOWN_CORE, WellKnownCore(_TopLevel(resource)))
    site.add("/{path*}", resource)
    return site
