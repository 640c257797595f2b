"""Connect strings are checked up front, with one line naming the bad item."""

import pytest

from zkactors.client import Client, parse_hosts

pytestmark = pytest.mark.timeout(10)


def test_host_port_and_tcp_urls_become_endpoints():
    assert parse_hosts("tcp://127.0.0.1:2181, 127.0.0.1:2182,,localhost:9") == [
        "tcp://127.0.0.1:2181", "tcp://127.0.0.1:2182", "tcp://localhost:9"]


@pytest.mark.parametrize("hosts", ["foo", "http://x:1", ",", "", "127.0.0.1:0",
                                   "127.0.0.1:65536", ":2181", "tcp://a:b",
                                   "127.0.0.1:2181/app"])
def test_anything_else_is_refused_naming_it(hosts):
    with pytest.raises(ValueError, match="hosts: "):
        parse_hosts(hosts)
    with pytest.raises(ValueError):  # by the client too, before any thread starts
        Client(hosts)


def test_a_kazoo_chroot_suffix_is_refused_with_a_hint():
    with pytest.raises(ValueError, match="chroot suffix is not supported"):
        parse_hosts("127.0.0.1:2181/app")
