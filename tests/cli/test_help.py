"""--version, --help with examples, the exit-status table, and ``python -m coapkit``."""

from __future__ import annotations

import re

import coapkit
from coapkit.cli import exits, main
from tests.cli.helpers import run, run_in_process


def test_version():
    result = run("--version")
    assert (result.returncode, result.stdout) == (0, f"coapkit {coapkit.__version__}\n")


def test_help_has_examples_and_exit_table():
    result = run("--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert main.EXIT_TABLE in result.stdout
    for command in (
        "get", "post", "ping", "discover", "server", "fileserver", "decode", "completion",
    ):  # fmt: skip
        assert command in result.stdout


def test_exit_table_matches_docstring_and_constants():
    assert main.EXIT_TABLE.split("-----------\n")[1] in main.__doc__
    table = dict(re.findall(r"^  (\d+) +(.*)$", main.EXIT_TABLE, re.MULTILINE))
    documented = {int(number) for number in table}
    constants = {value for name, value in vars(exits).items() if name.startswith("EXIT_")}
    assert documented == constants


def test_every_command_has_help_with_examples():
    for command in (
        "get", "post", "put", "delete", "fetch", "patch", "ipatch", "ping", "discover",
        "server", "fileserver", "decode", "completion",
    ):  # fmt: skip
        result = run_in_process(command, "--help")
        assert result.returncode == 0, command
        assert "example" in result.stdout, command
        assert f"coapkit {command}" in result.stdout, command
    request_help = run_in_process("get", "--help").stdout
    for option in ("--payload", "--content-format", "--accept", "--observe", "--count", "--non"):
        assert option in request_help
    for option in ("--timeout", "--option", "--verbose", "--json", "--output"):
        assert option in request_help


def test_python_dash_m_is_the_console_script(capsys):
    # pyproject: coapkit = "coapkit.cli.main:main"; ``python -m coapkit`` runs the same main
    assert main.main(["decode", "40000001"]) == 0
    assert capsys.readouterr().out.startswith("CON Empty")
    assert run("get", "--help").stdout.startswith("usage: coapkit get")


def test_internal_error_is_one_line_and_traceback_only_with_verbose(monkeypatch, capsys):
    from coapkit.cli import requests

    class Broken:
        def __init__(self, **kwargs):
            raise RuntimeError("boom")

    monkeypatch.setattr(requests, "Client", Broken)
    assert main.main(["get", "coap://127.0.0.1/x"]) == 1
    err = capsys.readouterr().err
    assert err == "coapkit: internal error: RuntimeError: boom (run with -v)\n"
    assert main.main(["get", "coap://127.0.0.1/x", "-v"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("coapkit: internal error: RuntimeError: boom (run with -v)\nTraceback")


def test_ctrl_c(monkeypatch, capsys):
    from coapkit.cli import requests, serve

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(requests, "Client", interrupted)
    assert main.main(["get", "coap://127.0.0.1/x"]) == 130
    assert capsys.readouterr().err == "coapkit: interrupted\n"
    monkeypatch.setattr(serve, "configure_logging", lambda *args: None)  # keep pytest's logging
    monkeypatch.setattr(serve, "Server", interrupted)  # a server stopped by Ctrl-C: status 0
    assert main.main(["server", "--port", "0"]) == 0


def test_console_script_entry_point():
    import importlib
    import tomllib
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    target = tomllib.loads(pyproject.read_text())["project"]["scripts"]["coapkit"]
    module, _, name = target.partition(":")
    assert getattr(importlib.import_module(module), name) is main.main


def test_timeout_help_gives_the_clients_own_defaults():
    """What --timeout's help says happens without it is what the client does (it takes
    the same parameters): MAX_TRANSMIT_WAIT, EXCHANGE_LIFETIME, and for --non NON_LIFETIME
    (145 s, not the 93 s once documented for every request)."""
    from coapkit.messaging.parameters import DEFAULT_PARAMETERS as p

    text = " ".join(run("get", "--help").stdout.split())
    assert f"about {p.max_transmit_wait:.0f} s" in text
    assert f"{p.exchange_lifetime:.0f} s once the server has acknowledged the request" in text
    assert f"{p.non_lifetime:.0f} s for a request sent with --non" in text
    assert (p.max_transmit_wait, p.exchange_lifetime, p.non_lifetime) == (93, 247, 145)
    ping = " ".join(run_in_process("ping", "--help").stdout.split())
    assert "--non" not in ping and f"about {p.max_transmit_wait:.0f} s)" in ping


def test_a_non_request_without_timeout_fails_after_non_lifetime():
    """The bound --timeout's help promises for --non, on the client's own clock."""
    import random

    from coapkit.codec.codes import Code
    from coapkit.codec.message import Message
    from coapkit.codec.types import MessageType
    from coapkit.endpoint import Endpoint
    from coapkit.errors import RequestTimeout
    from coapkit.exchanges.events import RequestFailed
    from coapkit.messaging.parameters import DEFAULT_PARAMETERS as p

    endpoint = Endpoint(rng=random.Random(1))
    remote = ("192.0.2.1", 5683)
    endpoint.request(Message(code=Code.GET), remote, 0.0, mtype=MessageType.NON)
    failed: list[RequestFailed] = []
    now = 0.0
    while not failed:
        deadline = endpoint.next_deadline()
        assert deadline is not None
        now = deadline
        failed = [e for e in endpoint.handle_timeout(now).events if isinstance(e, RequestFailed)]
    assert now == p.non_lifetime == 145
    assert isinstance(failed[0].error, RequestTimeout)
