"""``coapkit completion bash|zsh``: valid scripts that complete what the parser defines."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from coapkit.cli.completion import bash_script, zsh_script
from coapkit.cli.introspect import commands
from coapkit.cli.main import build_parser
from tests.cli.helpers import run, run_in_process

SUBCOMMANDS = [c.name for c in commands(build_parser())[1:]]
needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")
needs_zsh = pytest.mark.skipif(shutil.which("zsh") is None, reason="zsh is not installed")


@pytest.fixture(scope="module")
def bash_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    result = run("completion", "bash")  # the real command, as a user runs it
    assert result.returncode == 0, result.stderr
    path = tmp_path_factory.mktemp("completion") / "coapkit.bash"
    path.write_text(result.stdout)
    return path


def complete(script: Path, line: str, cwd: Path | None = None) -> list[str]:
    """What bash offers for the last word of ``line`` (a trailing space starts a new word)."""
    words = line.split()
    if line.endswith(" "):
        words.append("")
    quoted = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    program = (
        f"source '{script}'\n"
        f"COMP_WORDS=({quoted}); COMP_CWORD={len(words) - 1}\n"
        "_coapkit\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    result = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        check=True,
    )
    assert result.stderr == ""
    return [w for w in result.stdout.splitlines() if w]


@needs_bash
def test_bash_script_is_valid(bash_file: Path) -> None:
    subprocess.run(["bash", "-n", str(bash_file)], check=True, timeout=30)
    result = subprocess.run(
        ["bash", "--norc", "-c", f"source '{bash_file}'; complete -p coapkit"],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    assert result.stdout.strip() == "complete -F _coapkit coapkit"


@needs_bash
def test_bash_completes_the_subcommands(bash_file: Path) -> None:
    assert complete(bash_file, "coapkit ") == [*SUBCOMMANDS, "-h", "--help", "--version"]
    assert "completion" in SUBCOMMANDS and "get" in SUBCOMMANDS
    assert complete(bash_file, "coapkit g") == ["get"]
    assert complete(bash_file, "coapkit p") == ["post", "put", "patch", "ping", "proxy"]
    assert complete(bash_file, "coapkit --") == ["--help", "--version"]


@needs_bash
def test_bash_completes_options_and_their_values(bash_file: Path, tmp_path: Path) -> None:
    assert complete(bash_file, "coapkit get --ob") == ["--observe"]
    assert complete(bash_file, "coapkit post --ob") == []  # POST cannot observe
    assert complete(bash_file, "coapkit get coap://h/x --lo") == ["--loop"]
    assert complete(bash_file, "coapkit get --loop ") == ["auto", "asyncio", "uvloop"]
    assert complete(bash_file, "coapkit put --content-format cb") == ["cbor", "cbor-seq"]
    assert complete(bash_file, "coapkit get -v --accept js") == ["json", "json-patch"]
    assert complete(bash_file, "coapkit completion ") == ["bash", "zsh"]
    assert complete(bash_file, "coapkit server --w") == ["--workers"]
    (tmp_path / "reading.json").write_text("{}")
    (tmp_path / "public").mkdir()
    assert complete(bash_file, "coapkit put --payload @rea", cwd=tmp_path) == ["@reading.json"]
    assert complete(bash_file, "coapkit get -o rea", cwd=tmp_path) == ["reading.json"]
    assert complete(bash_file, "coapkit fileserver pu", cwd=tmp_path) == ["public"]
    assert complete(bash_file, "coapkit get --timeout ") == []


@needs_bash
def test_bash_completes_schemes_and_pem_files(bash_file: Path, tmp_path: Path) -> None:
    assert complete(bash_file, "coapkit get coap+") == ["coap+tcp://", "coap+ws://"]
    assert complete(bash_file, "coapkit ping coaps") == ["coaps://", "coaps+tcp://", "coaps+ws://"]
    assert complete(bash_file, "coapkit observe") == []
    assert complete(bash_file, "coapkit get coap+tcp://h/x") == []  # the scheme is there
    assert complete(bash_file, "coapkit server --listen coap+w") == ["coap+ws://"]
    assert complete(bash_file, "coapkit fileserver . --listen coap:") == []
    assert complete(bash_file, "coapkit get --cred") == ["--credentials"]
    assert complete(bash_file, "coapkit get --ins") == ["--insecure"]
    assert complete(bash_file, "coapkit server --ins") == []  # a client's option only
    (tmp_path / "ca.pem").write_text("")
    line = "coapkit get coaps+tcp://h/x --ca c"
    assert complete(bash_file, line, cwd=tmp_path) == ["ca.pem"]
    assert complete(bash_file, "coapkit server --cert c", cwd=tmp_path) == ["ca.pem"]
    assert complete(bash_file, "coapkit server --credentials c", cwd=tmp_path) == ["ca.pem"]
    assert complete(bash_file, "coapkit get --psk ") == []


def test_the_zsh_script_offers_the_schemes() -> None:
    script = zsh_script(build_parser())
    schemes = "coap:// coaps:// coap+tcp:// coaps+tcp:// coap+ws:// coaps+ws://"
    assert f"'1:URI:{{compadd -S \"\" -- {schemes}}}'" in script
    assert f"'*--listen[serve on this URI]:uri:{{compadd -S \"\" -- {schemes}}}'" in script
    assert "'--ca[" in script and ":pem:_files'" in script


def test_every_option_of_every_command_is_in_both_scripts() -> None:
    parser = build_parser()
    bash, zsh = bash_script(parser), zsh_script(parser)
    for command in commands(parser)[1:]:
        assert f"        {command.name})" in bash
        assert f"'{command.name}:" in zsh
        for option in command.options:
            for flag in option.flags:
                assert flag in bash and flag in zsh, (command.name, flag)


@needs_zsh
def test_zsh_script_is_valid_and_registers(tmp_path: Path) -> None:
    result = run_in_process("completion", "zsh")
    assert result.returncode == 0
    assert result.stdout.startswith("#compdef coapkit\n")
    path = tmp_path / "_coapkit"
    path.write_text(result.stdout)
    subprocess.run(["zsh", "-n", str(path)], check=True, timeout=30)
    check = subprocess.run(
        [
            "zsh",
            "-f",
            "-c",
            f"autoload -U compinit && compinit -u -D && source '{path}' && print $_comps[coapkit]",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert check.stdout.strip() == "_coapkit"


def test_unknown_shell_is_a_usage_error() -> None:
    result = run_in_process("completion", "fish")
    assert result.returncode == 2
    assert "invalid choice" in result.stderr
