"""Connect strings are checked up front, with one line naming the bad item; a
kazoo chroot suffix is taken by Client (and by parse_connect_string) only."""

import pytest

from zkactors.client import Client, parse_connect_string, parse_hosts

pytestmark = pytest.mark.timeout(10)


def test_host_port_and_tcp_urls_become_endpoints():
    assert parse_hosts("tcp://127.0.0.1:2181, 127.0.0.1:2182,,localhost:9") == [
        "tcp://127.0.0.1:2181", "tcp://127.0.0.1:2182", "tcp://localhost:9"]


@pytest.mark.parametrize("hosts", ["foo", "http://x:1", ",", "", "127.0.0.1:0",
                                   "127.0.0.1:65536", ":2181", "tcp://a:b",
                                   "a:1/app,b:2", "http://x:1/app", "a:1/app/", "a:1/a//b",
                                   "a:1/a/..", "a:1/a/./b", "a:1/a\x01"])
def test_anything_else_is_refused_naming_it(hosts):
    with pytest.raises(ValueError, match="hosts: ") as info:
        parse_connect_string(hosts)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="hosts: "):
        parse_hosts(hosts)
    with pytest.raises(ValueError, match="hosts: "):  # by the client too, before any thread
        Client(hosts)


@pytest.mark.parametrize("hosts, endpoints, chroot", [
    ("127.0.0.1:2181,127.0.0.1:2182/app", ["tcp://127.0.0.1:2181", "tcp://127.0.0.1:2182"],
     "/app"),
    ("tcp://a:1/app/sub", ["tcp://a:1"], "/app/sub"),
    ("a:1,tcp://b:2/x ", ["tcp://a:1", "tcp://b:2"], "/x"),
    ("a:1/app,", ["tcp://a:1"], "/app"),
    ("a:1/", ["tcp://a:1"], ""),  # a bare "/" is no chroot (as in ZooKeeper)
    ("a:1", ["tcp://a:1"], ""),
])
def test_a_chroot_follows_the_last_host(hosts, endpoints, chroot):
    assert parse_connect_string(hosts) == (endpoints, chroot)
    client = Client(hosts)
    assert (client.hosts, client.chroot) == (endpoints, chroot)


def test_a_malformed_chroot_is_named_with_the_reason():
    with pytest.raises(ValueError, match=r"chroot '/app/' is not a valid znode path: .*end"):
        Client("127.0.0.1:2181/app/")
    with pytest.raises(ValueError, match=r"chroot '/a//b' .*empty node name"):
        parse_connect_string("127.0.0.1:2181/a//b")
    with pytest.raises(ValueError, match="chroot goes after the last host"):
        parse_connect_string("a:1/app,b:2")


def test_parse_hosts_refuses_a_chroot_it_could_not_honour():
    # Callers of parse_hosts (zkctl --hosts) have nowhere to put a chroot.
    with pytest.raises(ValueError, match="a chroot suffix is not supported here"):
        parse_hosts("127.0.0.1:2181/app")
    assert parse_hosts("127.0.0.1:2181/") == ["tcp://127.0.0.1:2181"]


def test_paths_go_under_the_chroot_and_come_back_without_it():
    client = Client("127.0.0.1:2181/app")
    full, back = client._full, client.unchroot
    assert [full(p) for p in ("/", "/x", "/x/y")] == ["/app", "/app/x", "/app/x/y"]
    assert full("/", trailing=True) == "/app/"  # a sequential create's prefix
    assert full("relative") == "relative"  # left for the node to refuse
    assert [back(p) for p in ("/app", "/app/x", "/app/x/y")] == ["/", "/x", "/x/y"]
    assert back("/apple") == "/apple"  # not under the chroot: kept whole
    plain = Client("127.0.0.1:2181")
    assert plain.chroot == "" and plain._full("/x") == "/x" and plain.unchroot("/x") == "/x"
