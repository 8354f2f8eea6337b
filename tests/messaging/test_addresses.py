"""describe_remote: how a peer's address appears in errors and logs."""

from coapkit.messaging.addresses import describe_remote


def test_ipv4_and_ipv6():
    assert describe_remote(("192.0.2.1", 5683)) == "192.0.2.1:5683"
    assert describe_remote(("2001:db8::1", 5683, 0, 0)) == "[2001:db8::1]:5683"


def test_ipv4_mapped_shown_as_ipv4():
    # a dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; people typed a.b.c.d
    assert describe_remote(("::ffff:127.0.0.1", 5683, 0, 0)) == "127.0.0.1:5683"


def test_other_remotes():
    assert describe_remote("sim-peer") == "'sim-peer'"
