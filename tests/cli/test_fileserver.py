"""``coapkit fileserver DIR``: listings, files with ETags, write protection, never outside DIR."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import random
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from coapkit.cli.fileserver import fileserver_site, guess_content_format
from coapkit.codec.codes import Code
from coapkit.codec.message import Message
from coapkit.codec.options import Options
from coapkit.codec.types import MessageType
from coapkit.resources import Request
from tests.cli.helpers import ServerProcess, cli_env, run, run_bytes


def make_tree(base: Path) -> Path:
    """base/root (served) with files, a sub-directory and symlinks; base/outside/secret.txt."""
    root = base / "root"
    (root / "sub").mkdir(parents=True)
    (root / "notes.txt").write_text("hello from a file\n")
    (root / "data.json").write_text('{"x": 1}')
    (root / "blob.bin").write_bytes(bytes(range(8)))
    (root / "sub" / "page.html").write_text("<p>hi</p>")
    (root / "sub" / "inner.cbor").write_bytes(b"\xa1\x61a\x01")
    outside = base / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("top secret")
    os.symlink(outside / "secret.txt", root / "escape.txt")
    os.symlink(outside, root / "escape-dir")
    os.symlink(root / "notes.txt", root / "alias.txt")
    return root


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return make_tree(tmp_path_factory.mktemp("files"))


@pytest.fixture(scope="module")
def readonly(tree) -> Iterator[ServerProcess]:
    server = ServerProcess("fileserver", str(tree))
    yield server
    server.stop()


@pytest.fixture
def writable(tmp_path) -> Iterator[tuple[ServerProcess, Path]]:
    root = make_tree(tmp_path)
    server = ServerProcess("fileserver", str(root), "--write")
    yield server, root
    server.stop()


def test_listing(readonly):
    result = run("get", readonly.url)
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        "</alias.txt>;ct=0;sz=18,",
        "</blob.bin>;ct=42;sz=8,",
        "</data.json>;ct=50;sz=8,",
        "</notes.txt>;ct=0;sz=18,",
        "</sub>;ct=40",
    ]  # escape.txt and escape-dir lead outside: not listed
    sub = run("get", f"{readonly.url}/sub/", "--json")
    document = json.loads(sub.stdout)
    assert document["content_format"] == 40
    assert document["payload"] == "</sub/inner.cbor>;ct=60;sz=4,</sub/page.html>;sz=9"
    assert "ETag" in document["options"]


def test_discover_lists_the_top_level(readonly):
    result = run("discover", readonly.url)
    assert result.returncode == 0
    assert [line.split()[0] for line in result.stdout.splitlines()[1:]] == [
        "/alias.txt",
        "/blob.bin",
        "/data.json",
        "/notes.txt",
        "/sub",
    ]


def test_file_get_with_etag_and_revalidation(readonly):
    url = f"{readonly.url}/notes.txt"
    document = json.loads(run("get", url, "--json").stdout)
    assert (document["code"], document["payload"], document["content_format"]) == (
        "2.05",
        "hello from a file\n",
        0,
    )
    (etag,) = document["options"]["ETag"]
    valid = run("get", url, "--option", f"ETag={etag}")
    assert (valid.returncode, valid.stdout, valid.stderr) == (0, "", "2.03 Valid\n")
    other = run("get", url, "--option", "ETag=0x0102")
    assert other.stdout == "hello from a file\n"


def test_content_formats(readonly):
    assert (
        json.loads(run("get", f"{readonly.url}/data.json", "--json").stdout)["content_format"] == 50
    )
    html = json.loads(run("get", f"{readonly.url}/sub/page.html", "--json").stdout)
    assert html["content_format"] is None  # no registered Content-Format for HTML
    assert run("get", f"{readonly.url}/sub/page.html").stdout == "<p>hi</p>\n"
    binary = run("get", f"{readonly.url}/blob.bin")
    assert binary.stdout.startswith("00000000  00 01 02 03 04 05 06 07")
    refused = run("get", f"{readonly.url}/notes.txt", "--accept", "json")
    assert refused.returncode == 4 and refused.stderr.startswith("4.06")


def test_output_file(readonly, tmp_path):
    target = tmp_path / "copy.bin"
    assert run("get", f"{readonly.url}/blob.bin", "-o", str(target)).returncode == 0
    assert target.read_bytes() == bytes(range(8))


def test_symlink_inside_is_served(readonly):
    assert run("get", f"{readonly.url}/alias.txt").stdout == "hello from a file\n"


def test_missing_file(readonly):
    result = run("get", f"{readonly.url}/nope.txt")
    assert (result.returncode, result.stderr) == (4, "4.04 Not Found: no such file or directory\n")


def test_read_only_refuses_writes(readonly, tree):
    put = run("put", f"{readonly.url}/new.txt", "--payload", "x")
    assert (put.returncode, put.stderr) == (4, "4.05 Method Not Allowed: allowed: GET\n")
    delete = run("delete", f"{readonly.url}/notes.txt")
    assert delete.returncode == 4
    assert not (tree / "new.txt").exists() and (tree / "notes.txt").exists()


@pytest.mark.parametrize(
    "segments",
    [
        ["..", "outside", "secret.txt"],
        ["sub", "..", "..", "outside", "secret.txt"],
        ["../outside/secret.txt"],  # one segment holding slashes
        ["/etc/passwd"],  # an absolute segment (Path.joinpath would jump to it)
        ["sub", "/etc/passwd"],
        ["escape.txt"],  # a symlink to a file outside
        ["escape-dir", "secret.txt"],  # through a symlinked directory
        [".", "notes.txt"],
        ["sub\\..\\..\\outside"],
        ["0x" + b"notes.txt\0".hex()],  # NUL in a segment (given as hex bytes)
    ],
)
def test_path_traversal_is_refused(readonly, segments):
    # clients normalise ".." away, so craft the Uri-Path options by hand with --option
    options = [arg for segment in segments for arg in ("--option", f"Uri-Path={segment}")]
    result = run("get", readonly.url, *options)
    assert result.returncode == 4
    assert result.stderr.startswith("4.03 Forbidden")
    assert "top secret" not in result.stdout and "root:" not in result.stdout


def test_uri_dot_segments_stay_inside(readonly):
    # RFC 3986 §5.2.4: the client resolves "/../x" to "/x" before sending
    result = run("get", f"{readonly.url}/../../outside/secret.txt")
    assert result.returncode == 4 and result.stderr.startswith("4.04")


def test_put_and_delete_with_write(writable):
    server, root = writable
    url = f"{server.url}/upload.txt"
    created = run("put", url, "--payload", "first", "--json")
    document = json.loads(created.stdout)
    assert document["code"] == "2.01"
    (etag,) = document["options"]["ETag"]
    assert (root / "upload.txt").read_text() == "first"
    replaced = run("put", url, "--payload", "second", "--option", f"If-Match={etag}")
    assert (replaced.returncode, replaced.stderr) == (0, "2.04 Changed\n")
    stale = run("put", url, "--payload", "third", "--option", f"If-Match={etag}")
    assert (stale.returncode, stale.stderr) == (4, "4.12 Precondition Failed\n")
    exclusive = run("put", url, "--payload", "x", "--option", "If-None-Match")
    assert exclusive.returncode == 4
    assert (root / "upload.txt").read_text() == "second"
    assert run("get", url).stdout == "second\n"
    assert run("delete", url).stderr == "2.02 Deleted\n"
    assert not (root / "upload.txt").exists()
    assert run("get", url).returncode == 4
    assert run("delete", url).returncode == 4
    assert not [p for p in root.iterdir() if p.name.startswith(".coapkit-upload-")]


def test_write_directories(writable):
    server, root = writable
    assert run("put", f"{server.url}/sub", "--payload", "x").stderr.startswith("4.05")
    assert run("put", f"{server.url}/nodir/file.txt", "--payload", "x").stderr.startswith("4.04")
    assert run("delete", f"{server.url}/sub").stderr.startswith("4.09 Conflict")
    (root / "empty").mkdir()
    assert run("delete", f"{server.url}/empty").returncode == 0
    assert not (root / "empty").exists()
    assert run("delete", server.url).stderr.startswith("4.03")  # the root itself


def test_writes_never_leave_the_directory(writable):
    server, root = writable
    secret = root.parent / "outside" / "secret.txt"
    for segments in (["..", "outside", "secret.txt"], ["escape.txt"], ["escape-dir", "new.txt"]):
        options = [arg for segment in segments for arg in ("--option", f"Uri-Path={segment}")]
        for method in ("put", "delete"):
            result = run(method, server.url, *options, "--payload", "pwned")
            assert result.returncode == 4 and result.stderr.startswith("4.03"), result.stderr
    assert secret.read_text() == "top secret"
    assert not (root.parent / "outside" / "new.txt").exists()
    assert (root / "escape.txt").is_symlink()


# -- the resource, called directly --------------------------------------------------------


def request(method: str, segments: list[str], payload: bytes = b"", **options) -> Request:
    opts = Options.build(uri_path=segments, **options)
    return Request(Message(MessageType.CON, Code[method], 1, b"", opts, payload), None)


def test_direct_dispatch(tmp_path):
    root = make_tree(tmp_path)
    site = fileserver_site(root)
    assert site.dispatch(request("GET", ["notes.txt"])).payload == b"hello from a file\n"
    assert site.dispatch(request("GET", ["..", "outside", "secret.txt"])).code == Code.FORBIDDEN
    assert site.dispatch(request("PUT", ["x.txt"], b"x")).code == Code.METHOD_NOT_ALLOWED
    writable = fileserver_site(root, writable=True)
    assert writable.dispatch(request("PUT", ["x.txt"], b"x")).code == Code.CREATED
    assert (root / "x.txt").read_bytes() == b"x"


def test_guess_content_format():
    assert guess_content_format("a.TXT") == 0
    assert guess_content_format("a.json") == 50
    assert guess_content_format("a.cbor") == 60
    assert guess_content_format("a.xml") == 41
    assert guess_content_format("a.css") == 20000
    assert guess_content_format("a.js") == 10002
    assert guess_content_format("a.html") is None
    assert guess_content_format("a.weird") == 42
    assert guess_content_format("a.weird", default=None) is None


# -- large files: block-wise both ways (RFC 7959) ----------------------------------------------

BIG = random.Random(11).randbytes(100_000)


@pytest.fixture(scope="module")
def big_files(tmp_path_factory) -> Iterator[tuple[ServerProcess, Path]]:
    root = tmp_path_factory.mktemp("big")
    (root / "big.bin").write_bytes(BIG)
    (root / "big.txt").write_text(
        "".join(f"line {n:05d} of a large text file\n" for n in range(3000))
    )
    server = ServerProcess("fileserver", str(root), "--write")
    yield server, root
    server.stop()


def test_large_file_get_is_block_wise_and_intact(big_files, tmp_path):
    server, root = big_files
    target = tmp_path / "copy.bin"
    result = run("get", f"{server.url}/big.bin", "-o", str(target), "-v")
    assert result.returncode == 0
    assert target.read_bytes() == BIG
    assert result.stderr.count("< ACK 2.05 Content") >= 98  # 98 blocks of 1024 bytes
    assert "<   Block2: 97/1024" in result.stderr  # the last one: no more flag
    text = run("get", f"{server.url}/big.txt")
    assert text.stdout == (root / "big.txt").read_text()


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_large_payload_to_a_full_pipe_is_written_whole(big_files, loop):
    # the tool writes 100 kB to a pipe nobody reads yet: its write waits for the pipe
    # (once a uvloop loop has run, such a write came back short and the rest was lost)
    pytest.importorskip(loop)
    server, _ = big_files
    process = subprocess.Popen(
        [sys.executable, "-m", "coapkit", "get", f"{server.url}/big.bin", "-o", "-",
         "--loop", loop],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env(),
    )  # fmt: skip
    assert process.stdout is not None
    capacity = fcntl.fcntl(process.stdout.fileno(), F_GETPIPE_SZ)
    deadline = time.monotonic() + 30
    while pipe_bytes(process.stdout.fileno()) < capacity and process.poll() is None:
        assert time.monotonic() < deadline, "the pipe never filled up"
        time.sleep(0.01)  # waiting for the tool's output, not for protocol timing
    # the tool must now wait for us; a write that came back short would let it end here
    # (uvloop: some 10 to 50 ms later), with the rest of the payload lost
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(1.0)
    out, err = process.communicate(timeout=30)
    assert (process.returncode, err) == (0, b"")
    assert out == BIG


def pipe_bytes(fd: int) -> int:
    """How many bytes wait in the pipe ``fd`` reads from (FIONREAD)."""
    return struct.unpack("i", fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"))[0]


F_GETPIPE_SZ = getattr(fcntl, "F_GETPIPE_SZ", 1032)


def test_large_put_with_write(big_files, tmp_path):
    server, root = big_files
    source = tmp_path / "up.bin"
    source.write_bytes(BIG[::-1])
    result = run("put", f"{server.url}/uploaded.bin", "--payload", f"@{source}", "-v")
    assert result.returncode == 0, result.stderr[-500:]
    assert result.stderr.rstrip().endswith("2.01 Created")
    assert result.stderr.count("< ACK 2.31 Continue") == 97
    assert (root / "uploaded.bin").read_bytes() == BIG[::-1]
    again = run("put", f"{server.url}/uploaded.bin", "--payload", f"@{source}")
    assert (again.returncode, again.stderr) == (0, "2.04 Changed\n")


@pytest.mark.interop
def test_libcoap_fetches_a_large_file(big_files, tmp_path):
    from tests.interop.peers import coap_client

    server, _ = big_files
    target = tmp_path / "libcoap.bin"
    fetched = coap_client("-b", "64", "-o", str(target), f"{server.url}/big.bin")
    assert fetched.returncode == 0, fetched.stderr
    assert target.read_bytes() == BIG
    source = tmp_path / "libcoap-up.bin"
    source.write_bytes(BIG)
    put = coap_client("-m", "put", "-b", "64", "-f", str(source), f"{server.url}/from-libcoap.bin")
    assert put.returncode == 0, put.stderr
    assert (big_files[1] / "from-libcoap.bin").read_bytes() == BIG


# -- dotfiles (issue 16): hidden unless --dotfiles -------------------------------------------


def make_dotted_tree(base: Path) -> Path:
    """A root with what a directory often holds without meaning to publish it."""
    root = base / "dotted"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("[remote]")
    (root / ".env").write_text("SECRET=1")
    (root / "sub").mkdir()
    (root / "sub" / ".hidden").write_text("hidden")
    (root / "sub" / "shown.txt").write_text("shown")
    (root / "public.txt").write_text("public")
    os.symlink(root / ".git" / "config", root / "config-link")  # a visible name into .git
    os.symlink(root / ".git", root / "repo")
    return root


def test_dotfiles_are_hidden_unless_asked_for(tmp_path):
    root = make_dotted_tree(tmp_path)
    server = ServerProcess("fileserver", str(root), "--write")
    try:
        listing = run("get", server.url)
        assert listing.stdout.splitlines() == ["</public.txt>;ct=0;sz=6,", "</sub>;ct=40"]
        assert run("get", f"{server.url}/sub").stdout.splitlines() == ["</sub/shown.txt>;ct=0;sz=5"]
        discovered = run("discover", server.url).stdout
        assert ".env" not in discovered and ".git" not in discovered
        for path in (".env", ".git", ".git/config", "sub/.hidden", "config-link", "repo/config"):
            result = run("get", f"{server.url}/{path}")
            assert (result.returncode, result.stdout) == (4, ""), path
            assert result.stderr.startswith("4.04 Not Found"), (path, result.stderr)
        nowhere = run("get", f"{server.url}/no-such.txt")  # the same answer as for a file not there
        assert nowhere.stderr == run("get", f"{server.url}/.env").stderr
        deleted = run("delete", f"{server.url}/.env")
        assert deleted.returncode == 4 and deleted.stderr.startswith("4.04")
        assert (root / ".env").read_text() == "SECRET=1"
        put = run("put", f"{server.url}/.htaccess", "--payload", "x")
        assert put.returncode == 4 and put.stderr.startswith("4.03 Forbidden")
        assert not (root / ".htaccess").exists()
        assert run("get", f"{server.url}/public.txt").stdout == "public\n"
    finally:
        server.stop()
    log = server.log()
    assert "GET /.git/config -> 4.04 Not Found" in log


def test_dotfiles_flag_serves_and_lists_them(tmp_path):
    root = make_dotted_tree(tmp_path)
    server = ServerProcess("fileserver", str(root), "--dotfiles")
    try:
        listing = run("get", server.url).stdout
        assert "</.env>;ct=42;sz=8," in listing.splitlines()
        assert "</.git>;ct=40," in listing.splitlines()
        for path, content in ((".git/config", b"[remote]"), ("config-link", b"[remote]")):
            assert run_bytes("get", f"{server.url}/{path}", "-o", "-").stdout == content
        assert run_bytes("get", f"{server.url}/sub/.hidden", "-o", "-").stdout == b"hidden"
    finally:
        server.stop()
