"""The documentation site's machinery: the generated CLI reference, the docstring
extension, the nav, and the limits table that SECURITY.md and the docs share.

``mkdocs build --strict`` itself runs in ``scripts/test`` (it needs the docs extra).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import re
from types import ModuleType

import pytest

from coapkit.cli.introspect import commands
from coapkit.cli.main import build_parser
from coapkit.cli.reference import markdown
from coapkit.compiled import is_compiled
from coapkit.messaging.parameters import DEFAULT_PARAMETERS
from tests.docs.examples import DOCS, ROOT, pages


def load_hook(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCS / "_hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_page_is_generated_from_the_parser():
    hook = load_hook("cli_reference")
    page = (DOCS / "cli.md").read_text()
    assert hook.MARKER in page
    config = {"config_file_path": str(ROOT / "mkdocs.yml")}
    rendered = hook.on_page_markdown(page, page=None, config=config, files=None)
    assert hook.MARKER not in rendered
    assert markdown(build_parser()) in rendered
    assert hook.on_page_markdown("# other", page=None, config=config, files=None) == "# other"


def test_the_cli_page_on_disk_says_where_its_reference_comes_from():
    """docs/cli.md holds no reference itself (the build makes it): whoever reads the file
    is told so, and where to look; the built page has the reference instead of the note."""
    hook = load_hook("cli_reference")
    page = (DOCS / "cli.md").read_text()
    note = page[page.index(hook.MARKER) : page.index(hook.END)]
    assert "docs/_hooks/cli_reference.py" in note
    assert (ROOT / "docs" / "_hooks" / "cli_reference.py").is_file()
    assert "`coapkit COMMAND --help`" in note
    assert "## coapkit" not in page  # no stale copy of the reference on disk
    config = {"config_file_path": str(ROOT / "mkdocs.yml")}
    rendered = hook.on_page_markdown(page, page=None, config=config, files=None)
    assert "holds no reference on disk" not in rendered and hook.END not in rendered
    assert rendered.rstrip().endswith(markdown(build_parser()).rstrip())


def test_the_reference_shows_every_command_option_and_example():
    parser = build_parser()
    reference = markdown(parser)
    for command in commands(parser):
        title = f"coapkit {command.name}".strip()
        assert f"## {title} {{#" in reference
        assert command.description.split()[0] in reference
        for option in command.options:
            for flag in option.flags:
                assert f"`{flag}" in reference, (title, flag)
            assert " ".join(option.help.split()) in reference, (title, option.dest)
        if command.name:
            assert "example" in command.epilog, f"coapkit {command.name} --help has no example"
            for line in command.epilog.splitlines():
                assert line.rstrip() in reference


def test_docstring_extension():
    md = pytest.importorskip("markdown")  # the docs extra (scripts/test installs it)
    pytest.importorskip("pymdownx")
    hook = load_hook("docstrings")
    converter = md.Markdown(extensions=["pymdownx.superfences", hook.DocstringExtension()])
    html = converter.convert(
        "See :class:`~coapkit.client.Client` and :meth:`Driver.close`, ``x``.\n\n"
        ">>> 1 + 1  # doctest: +SKIP\n2\n\n"
        "A literal::\n\n    indented\n"
    )
    assert '<autoref identifier="coapkit.client.Client" optional><code>Client</code>' in html
    assert "<code>Driver.close()</code>" in html and "<code>x</code>" in html
    assert "doctest" not in html
    assert '<span class="gp">&gt;&gt;&gt; </span>' in html  # a pycon block
    assert "<blockquote>" not in html
    assert "indented" in html and "::" not in html


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in pages():
        assert f" {page.relative_to(DOCS)}\n" in nav, page


# -- the limits table: in SECURITY.md, included by docs/limits.md ---------------------------------


def limits_rows() -> list[list[str]]:
    text = (ROOT / "SECURITY.md").read_text()
    table = text.split("[start:limits]")[1].split("[end:limits]")[0]
    rows = [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in table.splitlines()
        if line.startswith("|")
    ]
    return rows[2:]  # no header, no rule


def test_limits_page_includes_the_security_table():
    assert '--8<-- "SECURITY.md:limits"' in (DOCS / "limits.md").read_text()
    assert len(limits_rows()) >= 15


def _classes() -> dict[str, type]:
    from coapkit.blockwise.server import BlockwiseConfig
    from coapkit.cache import CacheConfig
    from coapkit.client import Client
    from coapkit.connections import StreamConfig
    from coapkit.dtls import DtlsConfig
    from coapkit.exchanges.amplification import AmplificationConfig
    from coapkit.exchanges.client import ClientExchanges
    from coapkit.messaging.layer import MessagingConfig
    from coapkit.observe.registry import ObserveConfig
    from coapkit.oscore.context import ContextParameters, SequencePolicy
    from coapkit.oscore.server import OscoreServer
    from coapkit.proxy import ProxyConfig
    from coapkit.proxy.http import HttpCrossProxy
    from coapkit.rd.model import RDConfig
    from coapkit.server import Server
    from coapkit.transports.tcp import StreamLimits
    from coapkit.transports.udp import UdpTransport

    return {
        "Client": Client,
        "StreamConfig": StreamConfig,
        "DtlsConfig": DtlsConfig,
        "StreamLimits": StreamLimits,
        "UdpTransport": UdpTransport,
        "MessagingConfig": MessagingConfig,
        "BlockwiseConfig": BlockwiseConfig,
        "ObserveConfig": ObserveConfig,
        "AmplificationConfig": AmplificationConfig,
        "ClientExchanges": ClientExchanges,
        "Server": Server,
        "RDConfig": RDConfig,
        "ContextParameters": ContextParameters,
        "SequencePolicy": SequencePolicy,
        "OscoreServer": OscoreServer,
        "CacheConfig": CacheConfig,
        "ProxyConfig": ProxyConfig,
        "HttpCrossProxy": HttpCrossProxy,
    }


def _signature(cls: type) -> inspect.Signature:
    try:
        return inspect.signature(cls)
    except ValueError:
        if is_compiled():  # the docs and the source are the same in both builds
            pytest.skip(f"{cls.__name__} is compiled here (no signature): the pure run checks it")
        raise


def _default(cls: type, name: str) -> object:
    if dataclasses.is_dataclass(cls):
        fields = {f.name: f for f in dataclasses.fields(cls)}
        if name in fields:
            return fields[name].default
        return getattr(cls, name)  # a plain class attribute (ObserveConfig)
    parameters = _signature(cls).parameters
    if name in parameters:
        return parameters[name].default
    value = getattr(cls, name)  # a class attribute (Server.renders_per_observer)
    if not isinstance(value, int | float) and is_compiled():
        pytest.skip(f"{cls.__name__}.{name} is a compiled attribute here: the pure run checks it")
    return value


_UNITS = {"KiB": 1024, "MiB": 1024 * 1024}


def _numbers(cell: str) -> list[float]:
    """The numbers of a 'default' cell: '1,024 entries, 32 MiB' -> [1024, 33554432]."""
    found = []
    for number, unit in re.findall(
        r"(\d[\d,]*(?:\.\d+)?)\s*(KiB|MiB)?", cell.split("(", maxsplit=1)[0]
    ):
        found.append(float(number.replace(",", "")) * _UNITS.get(unit, 1))
    return found


@pytest.mark.parametrize("row", limits_rows(), ids=lambda row: row[0])
def test_each_limit_names_a_real_setting_with_that_default(row: list[str]) -> None:
    limit, default, where = row[0], row[1], row[2]
    classes = _classes()
    settings: list[object] = []
    # A module-level constant: `coapkit.server.RENDERS_PER_OBSERVER`
    for module, constant in re.findall(r"`(coapkit(?:\.\w+)*)\.([A-Z_]+)`", where):
        settings.append(getattr(importlib.import_module(module), constant))
    names = re.findall(r"`([A-Za-z]+)(?:\.(\w+)|\((\w+)=\))?`", where)
    assert names or settings, limit
    owner = None
    for cls_name, attribute, keyword in names:
        if cls_name in classes:
            owner = classes[cls_name]
            name = attribute or keyword
        else:  # `cache_bytes` after `BlockwiseConfig.cache_entries`
            name = cls_name
        assert owner is not None, limit
        if name:
            assert hasattr(owner, name) or name in _signature(owner).parameters, (
                limit,
                name,
            )
            value = _default(owner, name)
            if value is None and "EXCHANGE_LIFETIME" in default:  # None: derived from it
                value = DEFAULT_PARAMETERS.exchange_lifetime
            settings.append(value)
    numbers = _numbers(default)
    if settings and len(settings) == len(numbers):
        assert [float(s) for s in settings] == numbers, limit  # type: ignore[arg-type]
