"""RFC 9529's traces, byte for byte, through coapkit's Initiator and Responder.

Each trace is played by both roles with the trace's ephemeral keys injected
(the seam: ``ephemeral=``): every message each side makes must be the trace's,
and each side must accept the other's.  The intermediate values (transcript
hashes, PRKs, MACs) are checked too where the trace gives them, and the OSCORE
parameters of RFC 9528 Appendix A.1 (RFC 9529 §2.6, §3.7).
"""

from __future__ import annotations

import pytest

pytest.importorskip("cryptography")

from coapkit.edhoc import (
    Credential,
    EdhocError,
    Identity,
    Initiator,
    Responder,
    TrustedPeers,
    ccs_credential,
)
from coapkit.edhoc.crypto import public_of
from coapkit.edhoc.session import encode_error
from tests.edhoc.vectors import TRACE_1, TRACE_2


def trace_1_parties() -> tuple[Initiator, Responder]:
    t = TRACE_1
    cred_i = Credential(t["CRED_I"], t["ID_CRED_I"], t["PK_I"])
    cred_r = Credential(t["CRED_R"], t["ID_CRED_R"], t["PK_R"])
    initiator = Initiator(
        Identity(cred_i, t["SK_I"]),
        TrustedPeers([cred_r]),
        method=0,
        suites=[0],
        c_i=t["C_I"],
        ephemeral=t["X"],
    )
    responder = Responder(
        Identity(cred_r, t["SK_R"]), TrustedPeers([cred_i]), suites=[0], ephemeral=t["Y"]
    )
    return initiator, responder


def trace_2_parties() -> tuple[Initiator, Responder]:
    t = TRACE_2
    cred_i = ccs_credential(t["CRED_I"])
    cred_r = ccs_credential(t["CRED_R"])
    initiator = Initiator(
        Identity(cred_i, t["SK_I"]),
        TrustedPeers([cred_r]),
        method=3,
        suites=[6, 2],
        c_i=t["C_I"],
        ephemeral=t["X"],
    )
    responder = Responder(
        Identity(cred_r, t["SK_R"]), TrustedPeers([cred_i]), suites=[2], ephemeral=t["Y"]
    )
    return initiator, responder


@pytest.mark.parametrize(
    ("trace", "parties"), [(TRACE_1, trace_1_parties), (TRACE_2, trace_2_parties)]
)
def test_trace_messages_byte_for_byte(trace: dict[str, bytes], parties: object) -> None:
    """RFC 9529 §2 (trace 1) and §3 (trace 2): message_1 to message_4, PRK_out, OSCORE."""
    initiator, responder = parties()  # type: ignore[operator]
    message_1 = initiator.message_1()
    assert message_1 == trace["message_1"]
    c_i, ead_1 = responder.process_message_1(message_1)
    assert c_i == trace["C_I"] and ead_1 == ()
    message_2 = responder.message_2(trace["C_R"])
    assert message_2 == trace["message_2"]
    initiator.process_message_2(message_2)
    assert initiator.c_r == trace["C_R"]
    message_3 = initiator.message_3()
    assert message_3 == trace["message_3"]
    responder.process_message_3(message_3)
    message_4 = responder.message_4()
    assert message_4 == trace["message_4"]
    assert initiator.process_message_4(message_4) == ()
    for party in (initiator, responder):
        assert party.prk_out == trace["PRK_out"]
        assert party._prk_exporter == trace["PRK_exporter"]
        assert party._prk_4e3m == trace["PRK_4e3m"]
        assert party._th_4 == trace["TH_4"]
    client = initiator.oscore_parameters()
    server = responder.oscore_parameters()
    assert client.master_secret == server.master_secret == trace["OSCORE_Master_Secret"]
    assert client.master_salt == server.master_salt == trace["OSCORE_Master_Salt"]
    # Appendix A.1: the Initiator's Sender ID is C_R, its Recipient ID C_I; reversed for R
    assert (client.sender_id, client.recipient_id) == (trace["C_R"], trace["C_I"])
    assert (server.sender_id, server.recipient_id) == (trace["C_I"], trace["C_R"])
    assert client.aead == "AES-CCM-16-64-128" and client.hkdf == "sha256"


def test_trace_1_keys_match_the_certificates() -> None:
    """RFC 9529 §2.1: the Ed25519 keys SK_I, SK_R are those of the certificates."""
    assert public_of("ed25519", TRACE_1["SK_I"]) == TRACE_1["PK_I"]
    assert public_of("ed25519", TRACE_1["SK_R"]) == TRACE_1["PK_R"]
    assert TRACE_1["PK_I"] in TRACE_1["CRED_I"] and TRACE_1["PK_R"] in TRACE_1["CRED_R"]


def test_trace_2_key_schedule_step_by_step() -> None:
    """RFC 9529 §3.3-3.6: every intermediate value of trace 2."""
    t = TRACE_2
    initiator, responder = trace_2_parties()
    assert public_of("p256", t["X"]) == t["G_X"]
    assert public_of("p256", t["Y"]) == t["G_Y"]
    responder.process_message_1(initiator.message_1())
    responder.message_2(t["C_R"])
    for party in (responder,):
        assert party._th_2 == t["TH_2"]
        assert party._prk_2e == t["PRK_2e"]
        assert party._prk_3e2m == t["PRK_3e2m"]
        assert party._mac_2(t["ID_CRED_R"], t["CRED_R"], b"") == t["MAC_2"]
        assert party._th_3 == t["TH_3"]
    initiator.process_message_2(t["message_2"])
    assert initiator._th_2 == t["TH_2"] and initiator._th_3 == t["TH_3"]
    initiator.message_3()
    assert initiator._prk_4e3m == t["PRK_4e3m"]
    assert initiator._mac_3(t["ID_CRED_I"], t["CRED_I"], b"") == t["MAC_3"]
    key, iv = initiator._k_iv(initiator._prk_4e3m, 8, 9, initiator._th_4)
    assert (key, iv) == (t["K_4"], t["IV_4"])


def test_trace_2_wrong_suite_then_error() -> None:
    """RFC 9529 §3.2: message_1 with SUITES_I 6 gets ERR_CODE 2 with SUITES_R 2."""
    t = TRACE_2
    responder = Responder(
        Identity(ccs_credential(t["CRED_R"]), t["SK_R"]), TrustedPeers(), suites=[2]
    )
    with pytest.raises(EdhocError) as caught:
        responder.process_message_1(t["message_1_first"])
    assert caught.value.err_code == 2 and caught.value.suites_r == (2,)
    assert encode_error(2, caught.value.suites_r) == t["error"]
    # the Initiator reads the error as the peer's refusal, with the suites it offers
    initiator, _ = trace_2_parties()
    initiator.message_1()
    with pytest.raises(EdhocError) as refused:
        initiator.process_message_2(t["error"])
    assert refused.value.suites_r == (2,)
