"""The test vectors of RFC 9529 (Traces of EDHOC), as hex.

Trace 1 is RFC 9529 §2 (method 0, signatures on both sides, cipher suite 0:
X25519 and EdDSA, X.509 certificates identified by ``x5t``): §2.1-2.2 the
inputs and message_1, §2.3 message_2, §2.4 message_3, §2.5 message_4 and
PRK_out, §2.6 the OSCORE parameters.  Trace 2 is RFC 9529 §3 (method 3,
static DH on both sides, cipher suite 2: P-256, CCSs identified by ``kid``):
§3.2 the first message_1 (SUITES_I 6) and the error with SUITES_R,
§3.3 the second message_1 (SUITES_I [6, 2]), §3.4 message_2, §3.5
message_3, §3.6 message_4 and PRK_out, §3.7 the OSCORE parameters.
"""

from __future__ import annotations


def h(text: str) -> bytes:
    return bytes.fromhex("".join(text.split()))


TRACE_1 = {
    # §2.1: the Initiator's and Responder's keys (ephemeral X, Y; signing SK_I, SK_R)
    "X": h("892ec28e5cb6669108470539500b705e60d008d347c5817ee9f3327c8a87bb03"),
    "Y": h("e69c23fbf81bc435942446837fe827bf206c8fa10a39db47449e5a813421e1e8"),
    "SK_I": h("4c5b25878f507c6b9dae68fbd4fd3ff997533db0af00b25d324ea28e6c213bc8"),
    "SK_R": h("ef140ff900b0ab03f0c08d879cbbd4b31ea71e6e7ee7ffcb7e7955777a332799"),
    "PK_I": h("ed06a8ae61a829ba5fa54525c9d07f48dd44a302f43e0f23d8cc20b73085141e"),
    "PK_R": h("a1db47b95184854ad12a0c1a354e418aace33aa0f2c662c00b3ac55de92f9359"),
    "C_I": h("2d"),  # -14
    "C_R": h("18"),  # a byte string (0x18 is no one-byte integer)
    "ID_CRED_I": h("a11822822e48c24ab2fd7643c79f"),  # {34: [-15, h'c24ab2fd7643c79f']}
    "ID_CRED_R": h("a11822822e4879f2a41b510c1f9b"),
    "CRED_I": h(
        """58f13081ee3081a1a003020102020462319ea0300506032b6570301d311b301906035504030c12454448
        4f4320526f6f742045643235353139301e170d3232303331363038323430305a170d3239313233313233
        303030305a30223120301e06035504030c174544484f4320496e69746961746f72204564323535313930
        2a300506032b6570032100ed06a8ae61a829ba5fa54525c9d07f48dd44a302f43e0f23d8cc20b7308514
        1e300506032b6570034100521241d8b3a770996bcfc9b9ead4e7e0a1c0db353a3bdf2910b39275ae48b7
        56015981850d27db6734e37f67212267dd05eeff27b9e7a813fa574b72a00b430b"""
    ),
    "CRED_R": h(
        """58f13081ee3081a1a003020102020462319ec4300506032b6570301d311b301906035504030c12454448
        4f4320526f6f742045643235353139301e170d3232303331363038323433365a170d3239313233313233
        303030305a30223120301e06035504030c174544484f4320526573706f6e646572204564323535313930
        2a300506032b6570032100a1db47b95184854ad12a0c1a354e418aace33aa0f2c662c00b3ac55de92f93
        59300506032b6570034100b723bc01eab0928e8b2b6c98de19cc3823d46e7d6987b032478fecfaf14537
        a1af14cc8be829c6b73044101837eb4abc949565d86dce51cfae52ab82c152cb02"""
    ),
    "message_1": h("0000582031f82c7b5b9cbbf0f194d913cc12ef1532d328ef32632a4881a1c0701e237f042d"),
    "message_2": h(
        """5872dc88d2d51da5ed67fc4616356bc8ca74ef9ebe8b387e623a360ba480b9b29d1cbc26dd270fe9c02c
        44ce3934794b1cc62ba22f05459f8d358c8d12275ac42c5f96ded5f13cc9084e5b201889a45e5a60a556
        2dc118619c3daa2fd9f4c9f4d6edad109dd4edf95962aafbaf9ab3f4a1f6b98f"""
    ),
    "message_3": h(
        """585825c345884aaaeb22c527f9b1d2b6787207e0163c69b62a0d43928150427203c31674e4514ea6e383
        b566eb29763efeb0afa518776ae1c65f856d84bf32af3a7836970466dcb71f76745d39d3025e7703e0c0
        32ebad51947c"""
    ),
    "message_4": h("484f0edee366e5c883"),
    # §2.5
    "TH_4": h("0eb868f263cf3555dccd396dd8dec29d3750d599be42d5a41a5a37c896f294ac"),
    "PRK_4e3m": h("d584ac2e5dad5a77d14b53ebe72ef1d5daa8860d399373bf2c240afa7ba804da"),
    "PRK_out": h("b744cb7d8a87cc0447c3350e165b250dab12ec453325abb922b30307e5c368f0"),
    # §2.6
    "PRK_exporter": h("2aaec8fc4ab3bc3295def6b551051a2fa561424db301fa84f642f5578a6df51a"),
    "OSCORE_Master_Secret": h("1e1c6beac3a8a1cac435de7e2f9ae7ff"),
    "OSCORE_Master_Salt": h("ce7ab844c0106d73"),
}

TRACE_2 = {
    # §3.2: the first message_1, with SUITES_I 6 only, and the Responder's error
    "message_1_first": h(
        "03065820741a13d7ba048fbb615e94386aa3b61bea5b3d8f65f32620b749bee8d278efa90e"
    ),
    "error": h("0202"),  # ERR_CODE 2, SUITES_R 2
    # §3.3: the keys (ephemeral X, Y; static DH SK_I, SK_R)
    "X": h("368ec1f69aeb659ba37d5a8d45b21bdc0299dceaa8ef235f3ca42ce3530f9525"),
    "G_X": h("8af6f430ebe18d34184017a9a11bf511c8dff8f834730b96c1b7c8dbca2fc3b6"),
    "Y": h("e2f4126777205e853b437d6eaca1e1f753cdcc3e2c69fa884b0a1a640977e418"),
    "G_Y": h("419701d7f00a26c2dc587a36dd752549f33763c893422c8ea0f955a13a4ff5d5"),
    "SK_I": h("fb13adeb6518cee5f88417660841142e830a81fe334380a953406a1305e8706b"),
    "SK_R": h("72cc4761dbd4c78f758931aa589d348d1ef874a7e303ede2f140dcf3e6aa4aac"),
    "C_I": h("37"),  # -24
    "C_R": h("27"),  # -8
    "ID_CRED_I": h("a104412b"),
    "ID_CRED_R": h("a1044132"),
    "CRED_I": h(
        """a2027734322d35302d33312d46462d45462d33372d33322d333908a101a5010202412b2001215820ac75
        e9ece3e50bfc8ed60399889522405c47bf16df96660a41298cb4307f7eb62258206e5de611388a4b8a82
        11334ac7d37ecb52a387d257e6db3c2a93df21ff3affc8"""
    ),
    "CRED_R": h(
        """a2026b6578616d706c652e65647508a101a501020241322001215820bbc34960526ea4d32e940cad2a23
        4148ddc21791a12afbcbac93622046dd44f02258204519e257236b2a0ce2023f0931f1f386ca7afda64f
        cde0108c224c51eabf6072"""
    ),
    "message_1": h(
        "0382060258208af6f430ebe18d34184017a9a11bf511c8dff8f834730b96c1b7c8dbca2fc3b637"
    ),
    # §3.4
    "H_message_1": h("ca02cabda5a8902749b42f711050bb4dbd52153e87527594b39f50cdf019888c"),
    "G_XY": h("2f0cb7e860ba538fbf5c8bded009f6259b4b628fe1eb7dbe9378e5ecf7a824ba"),
    "TH_2": h("356efd53771425e008f3fe3a86c83ff4c6b16e57028ff39d5236c182b202084b"),
    "PRK_2e": h("5aa0d69f3e3d1e0c479f0b8a486690c9802630c3466b1dc92371c982563170b5"),
    "SALT_3e2m": h("af4e103a47cb3cf32570d5c25ad27732bd8d8178e9a69d061c31a27f8e3ca926"),
    "PRK_3e2m": h("0ca3d3398296b3c03900987620c11f6fce70781c1d1219720f9ec08c122d8434"),
    "MAC_2": h("0943305c899f5c54"),
    "PLAINTEXT_2": h("2732480943305c899f5c54"),
    "KEYSTREAM_2": h("bf50e9e7bad0bb68173399"),
    "message_2": h(
        """582b419701d7f00a26c2dc587a36dd752549f33763c893422c8ea0f955a13a4ff5d59862a1eef9e0e7e1
        886fcd"""
    ),
    # §3.5
    "TH_3": h("adaf67a78a4bcc91e018f8882762a722000b2507039df0bc1bbf0c161bb3155c"),
    "SALT_4e3m": h("cfddf9515a7e46e7b4dbff31cbd56cd04ba332250de9ea5de1caf9f6d13914a7"),
    "PRK_4e3m": h("81cc8a298e357044e3c466bb5c0a1e507e01d49238aeba138df94635407c0ff7"),
    "MAC_3": h("623c91df41e34c2f"),
    "PLAINTEXT_3": h("2b48623c91df41e34c2f"),
    "message_3": h("52e562097bc417dd5919485ac7891ffd90a9fc"),
    # §3.6
    "TH_4": h("c902b1e3a4326c93c5551f5f3aa6c5ecc0246806765612e52b5d99e6059d6b6e"),
    "K_4": h("d3c77872b6eeb508911bdbd308b2e6a0"),
    "IV_4": h("04ff0f44456e96e217853c3601"),
    "message_4": h("4828c966b7ca304f83"),
    "PRK_out": h("2c71afc1a9338a940bb3529ca734b886f30d1aba0b4dc51beeaeabdfea9ecbf8"),
    # §3.7
    "PRK_exporter": h("e14d06699cee248c5a04bf9227bbcd4ce394de7dcb56db43555474171e6446db"),
    "OSCORE_Master_Secret": h("f9868f6a3aca78a05d1485b35030b162"),
    "OSCORE_Master_Salt": h("ada24c7dbfc85eeb"),
}
