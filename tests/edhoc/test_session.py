"""The EDHOC state machines beyond the traces: every method and suite, refusals, fuzzing.

RFC 9528 §3.2 (methods), §3.6 (suites), §3.8 (EAD: critical items refused),
§5 (each message's checks), §6 (errors).  Whatever the bytes, a received
message raises EdhocError or is accepted: never another exception.
"""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st

from coapkit.edhoc import (
    EadItem,
    EdhocError,
    Identity,
    Initiator,
    Responder,
    TrustedPeers,
    ccs_credential,
)
from coapkit.edhoc.cbor import decode_one, encode_value
from coapkit.edhoc.crypto import SUITES, public_of
from coapkit.oscore.context import SecurityContext
from tests.edhoc.vectors import TRACE_2


def party(suite: int, method_signs: bool, kid: bytes, seed: int) -> Identity:
    """An identity with a CCS whose key fits the suite and whether this party signs."""
    curve = SUITES[suite].curve
    private = bytes([seed]) * 32
    if curve == "p256":
        public = public_of("p256", private, full=True)
        key = {1: 2, 2: kid, -1: 1, -2: public[:32], -3: public[32:]}
    else:
        name = "ed25519" if method_signs else "x25519"
        key = {1: 1, 2: kid, -1: 6 if method_signs else 4, -2: public_of(name, private)}
    credential = ccs_credential({2: "party", 8: {1: key}})
    return Identity(credential, private)


def run(method: int, suite: int, *, by_value: bool = False) -> tuple[Initiator, Responder]:
    i_signs, r_signs = method in (0, 1), method in (0, 2)
    me = party(suite, i_signs, b"\x01", 7)
    you = party(suite, r_signs, b"\xaa", 9)
    if by_value:
        cred = me.credential
        me = Identity(ccs_credential(cred.cred, by_value=True), me.private_key)
    initiator = Initiator(
        me, TrustedPeers([you.credential]), method=method, suites=[suite], c_i=b"\x05"
    )
    responder = Responder(you, TrustedPeers([me.credential]), suites=[0, 1, 2, 3])
    responder.process_message_1(initiator.message_1())
    initiator.process_message_2(responder.message_2(b"\x21"))
    responder.process_message_3(initiator.message_3())
    initiator.process_message_4(responder.message_4())
    return initiator, responder


@pytest.mark.parametrize("method", [0, 1, 2, 3])
@pytest.mark.parametrize("suite", [0, 1, 2, 3])
def test_every_method_and_suite_agrees(method: int, suite: int) -> None:
    initiator, responder = run(method, suite)
    assert initiator.prk_out == responder.prk_out
    client = SecurityContext(initiator.oscore_parameters())
    server = SecurityContext(responder.oscore_parameters())
    assert client.sender_key == server.recipient_key
    assert client.recipient_key == server.sender_key
    assert client.sender_id == b"\x21" and client.recipient_id == b"\x05"


def test_credential_by_value() -> None:
    initiator, responder = run(3, 2, by_value=True)
    assert responder.peer_id_cred is not None and responder.peer_id_cred.ccs is not None
    assert initiator.prk_out == responder.prk_out


def test_each_run_has_fresh_keys() -> None:
    first, _ = run(3, 2)
    second, _ = run(3, 2)
    assert first.prk_out != second.prk_out


def test_unknown_peer_refused() -> None:
    me = party(2, False, b"\x01", 7)
    you = party(2, False, b"\xaa", 9)
    initiator = Initiator(me, TrustedPeers([you.credential]), c_i=b"\x05")
    responder = Responder(you, TrustedPeers([]))
    responder.process_message_1(initiator.message_1())
    initiator.process_message_2(responder.message_2(b"\x21"))
    with pytest.raises(EdhocError, match="not one this party trusts"):
        responder.process_message_3(initiator.message_3())
    assert responder.state == "failed"


def test_wrong_key_fails_the_mac() -> None:
    me = party(2, False, b"\x01", 7)
    you = party(2, False, b"\xaa", 9)
    impostor = Identity(you.credential, bytes([3]) * 32)
    initiator = Initiator(me, TrustedPeers([you.credential]), c_i=b"\x05")
    responder = Responder(impostor, TrustedPeers([me.credential]))
    responder.process_message_1(initiator.message_1())
    with pytest.raises(EdhocError, match="MAC"):
        initiator.process_message_2(responder.message_2(b"\x21"))


def test_critical_ead_refused_noncritical_ignored() -> None:
    me = party(2, False, b"\x01", 7)
    you = party(2, False, b"\xaa", 9)
    quiet = Initiator(me, TrustedPeers(), c_i=b"\x05", ead_1=[EadItem(3, b"x")])
    responder = Responder(you, TrustedPeers())
    assert responder.process_message_1(quiet.message_1())[1] == (EadItem(3, b"x"),)
    loud = Initiator(me, TrustedPeers(), c_i=b"\x05", ead_1=[EadItem(3, b"x", critical=True)])
    with pytest.raises(EdhocError, match="critical"):
        Responder(you, TrustedPeers()).process_message_1(loud.message_1())


def test_suite_negotiation_refuses_a_preferred_suite_it_supports() -> None:
    """§5.2.3: a suite the Initiator prefers to the selected one, and that the Responder
    supports, is an error too (SUITES_R tells the Initiator)."""
    me = party(2, False, b"\x01", 7)
    initiator = Initiator(me, TrustedPeers(), suites=[0, 2], c_i=b"\x05")
    responder = Responder(me, TrustedPeers(), suites=[0, 2])
    with pytest.raises(EdhocError) as caught:
        responder.process_message_1(initiator.message_1())
    assert caught.value.err_code == 2 and caught.value.suites_r == (0, 2)


def test_out_of_order_calls() -> None:
    me = party(2, False, b"\x01", 7)
    initiator = Initiator(me, TrustedPeers(), c_i=b"\x05")
    with pytest.raises(EdhocError):
        initiator.message_3()
    with pytest.raises(EdhocError):
        initiator.exporter(0, b"", 16)


def test_canonical_encoding_matches_cbor2() -> None:
    cbor2 = pytest.importorskip("cbor2")
    value = {8: {1: {1: 2, 2: b"\x01", -1: 1, -2: b"x" * 32, -3: b"y" * 32}}, 2: "s", 24: 1}
    assert encode_value(value, canonical=True) == cbor2.dumps(value, canonical=True)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_message_1(data: bytes) -> None:
    responder = Responder(party(2, False, b"\xaa", 9), TrustedPeers())
    with contextlib.suppress(EdhocError):
        responder.process_message_1(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_message_2_and_3(data: bytes) -> None:
    me = party(2, False, b"\x01", 7)
    you = party(2, False, b"\xaa", 9)
    initiator = Initiator(me, TrustedPeers([you.credential]), c_i=b"\x05")
    responder = Responder(you, TrustedPeers([me.credential]))
    responder.process_message_1(initiator.message_1())
    responder.message_2(b"\x21")
    for call in (initiator.process_message_2, responder.process_message_3):
        with contextlib.suppress(EdhocError):
            call(data)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_fuzz_cbor(data: bytes) -> None:
    with contextlib.suppress(EdhocError):
        decode_one(data)


def test_mutated_trace_messages_only_raise_edhoc_errors() -> None:
    """Every one-byte change of trace 2's message_2 and message_3 is refused cleanly."""
    t = TRACE_2
    for name in ("message_2", "message_3"):
        original = t[name]
        for index in range(len(original)):
            data = bytearray(original)
            data[index] ^= 0x41
            me = ccs_credential(t["CRED_I"])
            you = ccs_credential(t["CRED_R"])
            initiator = Initiator(
                Identity(me, t["SK_I"]), TrustedPeers([you]), suites=[6, 2],
                c_i=t["C_I"], ephemeral=t["X"],
            )  # fmt: skip
            responder = Responder(Identity(you, t["SK_R"]), TrustedPeers([me]), ephemeral=t["Y"])
            responder.process_message_1(initiator.message_1())
            responder.message_2(t["C_R"])
            with pytest.raises(EdhocError):
                if name == "message_2":
                    initiator.process_message_2(bytes(data))
                else:
                    responder.process_message_3(bytes(data))
