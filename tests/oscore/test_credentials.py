"""Credentials maps in aiocoap's JSON format: which context protects which URI."""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

from coapkit.oscore.context import ContextParameters, SecurityContext
from coapkit.oscore.credentials import CredentialsMap, OscoreEntry, OtherEntry, parse_credentials
from coapkit.oscore.errors import OscoreConfigError

SECRET = bytes(16)


def context(sender: int) -> SecurityContext:
    return SecurityContext(ContextParameters(SECRET, bytes((sender,)), b"\xff"))


def loaded(data: dict[str, object]) -> tuple[CredentialsMap, dict[str, SecurityContext]]:
    made: dict[str, SecurityContext] = {}

    def load(basedir: str, label: str) -> SecurityContext:
        made[label] = context(len(made) + 1)
        return made[label]

    return CredentialsMap.from_data(data, load), made


def test_the_longest_matching_pattern_wins_and_references_are_followed() -> None:
    credentials, made = loaded(
        {
            "coap://localhost/*": {"oscore": {"basedir": "client1/for-fileserver/"}},
            "coap://localhost/special/*": ":special",
            ":special": {"oscore": {"basedir": "special/"}},
            "coaps+tcp://*": {"tlscert": {"certfile": "ca.pem"}},
            "coap://gone/*": None,
        }
    )
    assert credentials.context_for_uri("coap://localhost/a") is made["coap://localhost/*"]
    assert credentials.context_for_uri("coap://localhost/special/x") is made[":special"]
    assert credentials.context_for_uri("coap://elsewhere/a") is None
    assert credentials.context_for_uri("coaps+tcp://h/a") is None  # not OSCORE
    assert isinstance(credentials.entries["coaps+tcp://*"], OtherEntry)
    assert set(credentials.server_contexts()) == set(made.values())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "holds a JSON object"),
        ({"coap://x/*": {"oscore": {}}}, "needs a 'basedir'"),
        ({"coap://x/*": {"oscore": {"basedir": "d", "x": 1}}}, "has no item 'x'"),
        ({"coap://x/*": {"oscore": {}, "dtls": {}}}, "exactly one key"),
        ({"coap://x/*": {"rot13": {}}}, "unknown kind of credential 'rot13'"),
        ({"coap://x/*": "label"}, "a reference starts with ':'"),
        ({"coap://x/*": ":missing"}, "refers to ':missing', which is not there"),
    ],
)
def test_a_bad_file_is_one_line(data: object, message: str) -> None:
    with pytest.raises(OscoreConfigError, match=message) as raised:
        parse_credentials(data)
    assert "\n" not in str(raised.value)


def test_a_loop_of_references_is_refused() -> None:
    credentials, _ = loaded({"coap://x/*": ":a", ":a": ":b", ":b": ":a"})
    with pytest.raises(OscoreConfigError, match="loop"):
        credentials.context_for_uri("coap://x/y")


def test_aiocoaps_contextfile_name_still_works() -> None:
    entries = parse_credentials({":c": {"oscore": {"contextfile": "old/"}}})
    assert entries[":c"] == OscoreEntry("old/")
