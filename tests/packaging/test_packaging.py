"""The package as users get it: a wheel and an sdist built from a clean checkout, the
wheel installed into a fresh venv, its ``coapkit`` talking to its own server; and the
README's demo script.

The build test needs the ``build`` package and PyPI (for the isolated build
environment's setuptools); it is marked slow.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from pathlib import Path

import pytest

import coapkit

ROOT = Path(__file__).resolve().parents[2]


def clean_checkout(target: Path) -> Path:
    """What a fresh clone would hold: the files git tracks or would (not those it ignores)."""
    listing = subprocess.run(
        ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        capture_output=True,
        check=False,
    )
    if listing.returncode == 0 and listing.stdout:
        for name in listing.stdout.decode().split("\0"):
            if name and (ROOT / name).is_file():
                (target / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(ROOT / name, target / name)
    else:
        shutil.copytree(ROOT, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns(".*"))
    return target


def plain_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYTHON", "VIRTUAL_ENV", "COAPKIT_MYPYC"))
    }
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.skipif(
    os.environ.get("COAPKIT_EXPECT_COMPILED") == "1",
    reason="builds the default (pure) wheel: the pure run of ./scripts/test covers it",
)
def test_build_install_and_use_the_wheel(tmp_path: Path) -> None:
    pytest.importorskip("build")
    source = clean_checkout(tmp_path / "checkout")
    dist = tmp_path / "dist"
    subprocess.run(
        [sys.executable, "-m", "build", "--outdir", str(dist), str(source)],
        check=True,
        capture_output=True,
        timeout=500,
        env=plain_env(),
    )
    [wheel] = dist.glob("coapkit-*.whl")
    [sdist] = dist.glob("coapkit-*.tar.gz")

    names = zipfile.ZipFile(wheel).namelist()
    assert "coapkit/py.typed" in names
    assert "coapkit/cli/main.py" in names and "coapkit/trace.py" in names
    assert not any(n.endswith(".so") for n in names)  # the default build is pure Python
    assert not any(n.startswith(("tests/", "docs/")) for n in names)
    [metadata_name] = [n for n in names if n.endswith(".dist-info/METADATA")]
    metadata = zipfile.ZipFile(wheel).read(metadata_name).decode()
    assert f"Version: {coapkit.__version__}" in metadata
    assert "Requires-Python: >=3.11" in metadata
    for extra in ("speed", "cbor", "dtls", "test", "docs", "dev"):
        assert f"Provides-Extra: {extra}" in metadata
    assert "Typing :: Typed" in metadata and "License-Expression: MIT" in metadata
    with tarfile.open(sdist) as tar:
        members = {m.split("/", 1)[1] for m in tar.getnames() if "/" in m}
    for needed in (
        "mkdocs.yml",
        "docs/index.md",
        "tests/docs/test_examples.py",
        "CHANGELOG.md",
        "setup.py",  # the compiled build (COAPKIT_MYPYC=1) works from the sdist too
        "build_backend/coapkit_backend.py",
    ):
        assert needed in members

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = venv / "bin" / "pip"
    subprocess.run(
        [str(pip), "install", "-q", "--no-index", str(wheel)],
        check=True,
        timeout=300,
        env=plain_env(),
    )
    tool = str(venv / "bin" / "coapkit")
    elsewhere = tmp_path  # not the checkout: the installed package must stand alone
    env = plain_env()  # and no PYTHONPATH pointing at the checkout
    version = subprocess.run(
        [tool, "--version"], capture_output=True, text=True, cwd=elsewhere, env=env, check=True
    )
    assert version.stdout == f"coapkit {coapkit.__version__}\n"
    python = str(venv / "bin" / "python")
    for args in (["--version"], ["get", "--help"]):  # python -m coapkit is the same tool
        script = subprocess.run(
            [tool, *args], capture_output=True, text=True, cwd=elsewhere, env=env, check=False
        )
        module = subprocess.run(
            [python, "-m", "coapkit", *args],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env=env,
            check=False,
        )
        assert (module.returncode, module.stdout) == (script.returncode, script.stdout)

    log = tmp_path / "server.log"
    with log.open("w") as stderr:
        server = subprocess.Popen(
            [tool, "server", "--bind", "127.0.0.1", "--port", "0"],
            stderr=stderr,
            stdout=subprocess.DEVNULL,
            cwd=elsewhere,
            env=plain_env(),
        )
    try:
        deadline = time.monotonic() + 30
        while not (
            found := re.search(r"serving CoAP on coap://127\.0\.0\.1:(\d+)", log.read_text())
        ):
            assert server.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        get = subprocess.run(
            [tool, "get", f"coap://127.0.0.1:{found.group(1)}/hello"],
            check=False,
            capture_output=True,
            text=True,
            timeout=60,
            cwd=elsewhere,
            env=plain_env(),
        )
        assert (get.returncode, get.stdout) == (0, "Hello, CoAP!\n"), get.stderr
        where = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import coapkit; print(coapkit.__file__)"],
            capture_output=True,
            text=True,
            cwd=elsewhere,
            env=plain_env(),
            check=True,
        )
        assert str(venv) in where.stdout
    finally:
        server.terminate()
        server.wait(10)


def test_demo_script_starts_fetches_and_cleans_up(tmp_path: Path) -> None:
    shim = tmp_path / "coapkit"
    shim.write_text(
        f'#!/bin/sh\nPYTHONPATH="{ROOT / "src"}" exec "{sys.executable}" -m coapkit "$@"\n'
    )
    shim.chmod(shim.stat().st_mode | stat.S_IXUSR)
    before = set(Path(tempfile.gettempdir()).glob("tmp.*"))
    result = subprocess.run(
        [str(ROOT / "scripts" / "demo")],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COAPKIT": str(shim)},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "Hello, CoAP!\n" in result.stdout
    assert re.search(r"/time +time +obs", result.stdout)
    assert set(Path(tempfile.gettempdir()).glob("tmp.*")) <= before  # the log file is gone
    ports = re.findall(r"--port (\d+)", result.stdout)
    assert ports
    check = subprocess.run(  # nothing listens there any more: the server was stopped
        [str(shim), "ping", f"coap://127.0.0.1:{ports[0]}", "--timeout", "1"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert check.returncode != 0
