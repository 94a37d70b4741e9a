"""
L{avatard.networks}: networks as C{--allow} and C{--proxy-from} name them,
and the keys per-client rules count clients under.
"""

from __future__ import annotations

from ipaddress import IPv4Network, IPv6Network

from twisted.trial.unittest import SynchronousTestCase

from avatard.networks import LOOPBACK, NetworkError, Networks, clientAddress, clientKey, parseNetwork


class ParseNetworkTests(SynchronousTestCase):
    def test_cidr(self) -> None:
        """
        IPv4 and IPv6 networks in CIDR notation are read as written.
        """
        self.assertEqual(parseNetwork("192.0.2.0/24"), IPv4Network("192.0.2.0/24"))
        self.assertEqual(parseNetwork("2001:db8::/32"), IPv6Network("2001:db8::/32"))
        self.assertEqual(parseNetwork(" 10.0.0.0/8 "), IPv4Network("10.0.0.0/8"))

    def test_oneAddress(self) -> None:
        """
        An address alone is the network of that one address.
        """
        self.assertEqual(parseNetwork("192.0.2.7"), IPv4Network("192.0.2.7/32"))
        self.assertEqual(parseNetwork("::1"), IPv6Network("::1/128"))

    def test_mapped(self) -> None:
        """
        An IPv4-mapped IPv6 network is the IPv4 network it maps.
        """
        self.assertEqual(parseNetwork("::ffff:192.0.2.0/120"), IPv4Network("192.0.2.0/24"))
        self.assertEqual(parseNetwork("::ffff:192.0.2.9"), IPv4Network("192.0.2.9/32"))

    def test_hostBits(self) -> None:
        """
        A network with bits set past its prefix is refused, suggesting the
        network meant.
        """
        with self.assertRaises(NetworkError) as e:
            parseNetwork("10.1.2.3/8")
        self.assertEqual(
            str(e.exception), "'10.1.2.3/8' has bits set past its prefix: did you mean 10.0.0.0/8?"
        )

    def test_malformed(self) -> None:
        """
        Anything that is not a network is refused with one sentence naming it.
        """
        for text in ("", "10.0.0.0/33", "256.0.0.0/8", "example.com", "10.0.0.0/-1", "2001:db8::/129"):
            with self.assertRaises(NetworkError) as e:
                parseNetwork(text)
            self.assertEqual(
                str(e.exception), f"{text!r} is not an IP network (as 192.0.2.0/24 or 2001:db8::/32)"
            )


class NetworksTests(SynchronousTestCase):
    def test_ipv4(self) -> None:
        """
        IPv4 addresses are in the IPv4 networks that hold them, and no other.
        """
        networks = Networks.parse(["192.0.2.0/24", "10.0.0.0/8"])
        self.assertIn("192.0.2.255", networks)
        self.assertIn("10.200.1.1", networks)
        self.assertNotIn("192.0.3.0", networks)
        self.assertNotIn("11.0.0.1", networks)

    def test_ipv6(self) -> None:
        """
        IPv6 addresses are in the IPv6 networks that hold them, and no other.
        """
        networks = Networks.parse(["2001:db8::/32"])
        self.assertIn("2001:db8:ffff::1", networks)
        self.assertNotIn("2001:db9::1", networks)
        self.assertNotIn("::1", networks)

    def test_mappedJudgedAsIPv4(self) -> None:
        """
        An IPv4-mapped IPv6 address, as a dual-stack listener gives an IPv4
        client's, is judged as the IPv4 address it is.
        """
        networks = Networks.parse(["192.0.2.0/24"])
        self.assertIn("::ffff:192.0.2.7", networks)
        self.assertNotIn("::ffff:198.51.100.7", networks)
        self.assertNotIn("::ffff:192.0.2.7", Networks.parse(["::/0"]))
        self.assertIn("192.0.2.7", Networks.parse(["::ffff:192.0.2.0/120"]))

    def test_familiesApart(self) -> None:
        """
        An IPv4 network holds no IPv6 address and the reverse.
        """
        self.assertNotIn("::1", Networks.parse(["0.0.0.0/0"]))
        self.assertNotIn("127.0.0.1", Networks.parse(["::/0"]))

    def test_notAnAddress(self) -> None:
        """
        Anything that is not an IP address is in no network.
        """
        networks = Networks.parse(["0.0.0.0/0", "::/0"])
        self.assertNotIn("unix", networks)
        self.assertNotIn(None, networks)
        for text in ("", "127.1", "1.2.3.4.5", "256.0.0.1", "1.2.3.4 ", "\u0661.2.3.4", "1.2.3.4\x00"):
            self.assertNotIn(text, networks)

    def test_ipv4Edges(self) -> None:
        """
        An IPv4 network holds exactly the addresses from its first to its
        last, whatever its prefix.
        """
        networks = Networks.parse(["192.0.2.64/26", "10.0.0.0/32", "203.0.113.9"])
        self.assertEqual(
            [text in networks for text in ("192.0.2.63", "192.0.2.64", "192.0.2.127", "192.0.2.128")],
            [False, True, True, False],
        )
        self.assertIn("10.0.0.0", networks)
        self.assertNotIn("10.0.0.1", networks)
        self.assertIn("203.0.113.9", networks)
        self.assertNotIn("203.0.113.8", networks)
        self.assertIn("255.255.255.255", Networks.parse(["0.0.0.0/0"]))

    def test_parseNamesTheBadOne(self) -> None:
        """
        L{Networks.parse} refuses the first network it cannot read, by name.
        """
        with self.assertRaises(NetworkError) as e:
            Networks.parse(["10.0.0.0/8", "10.0.0/8x"])
        self.assertIn("'10.0.0/8x'", str(e.exception))

    def test_loopback(self) -> None:
        """
        L{LOOPBACK} holds the IPv4 and IPv6 loopback addresses, mapped ones
        too, and nothing else.
        """
        for host in ("127.0.0.1", "127.1.2.3", "::1", "::ffff:127.0.0.1"):
            self.assertIn(host, LOOPBACK)
        for host in ("192.0.2.1", "::2", "10.0.0.1"):
            self.assertNotIn(host, LOOPBACK)
        self.assertEqual(str(LOOPBACK), "127.0.0.0/8, ::1/128")


class ClientTests(SynchronousTestCase):
    def test_clientAddress(self) -> None:
        """
        Addresses are read, IPv4-mapped ones as IPv4; anything else is L{None}.
        """
        self.assertEqual(str(clientAddress("::ffff:192.0.2.1")), "192.0.2.1")
        self.assertEqual(str(clientAddress("2001:db8::1")), "2001:db8::1")
        self.assertIsNone(clientAddress("unix"))

    def test_clientKey(self) -> None:
        """
        IPv4 clients are counted per address, IPv4-mapped ones as IPv4, IPv6
        ones per /64.
        """
        self.assertEqual(clientKey("192.0.2.1"), "192.0.2.1")
        self.assertEqual(clientKey("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(clientKey("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64")
        self.assertEqual(clientKey("2001:db8:1:2::ffff"), clientKey("2001:db8:1:2:aaaa::1"))
        self.assertNotEqual(clientKey("2001:db8:1:2::1"), clientKey("2001:db8:1:3::1"))
        self.assertEqual(clientKey("unix"), "unix")
