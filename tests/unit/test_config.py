"""Tests for zkactors.config: INI file -> validated frozen dataclasses."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from zkactors.config import (
    ConfigError,
    Limits,
    Member,
    Storage,
    Timing,
    load_ensemble,
    load_node_config,
)

pytestmark = pytest.mark.timeout(30)

REPO = Path(__file__).resolve().parents[2]

BASE = """\
[node]
id = 1
data_dir = data

[member.1]
client = tcp://127.0.0.1:2181
peer = tcp://127.0.0.1:2881
election = tcp://127.0.0.1:2981
watch = tcp://127.0.0.1:2191

[member.2]
client = tcp://127.0.0.1:2182
peer = tcp://127.0.0.1:2882
election = tcp://127.0.0.1:2982
watch = tcp://127.0.0.1:2192
"""


def write(tmp_path: Path, text: str, name: str = "node.ini") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def edit(old: str, new: str) -> str:
    """BASE with ``old`` (which must occur exactly once) replaced by ``new``."""
    assert BASE.count(old) == 1, old
    return BASE.replace(old, new)


def test_shipped_node1_ini_loads_with_documented_defaults() -> None:
    cfg = load_node_config(REPO / "conf" / "node1.ini")
    assert cfg.path == str(REPO / "conf" / "node1.ini")
    assert cfg.node_id == 1
    assert cfg.data_dir == str(REPO / "data" / "node1")
    assert cfg.members == tuple(
        Member(
            n, f"tcp://127.0.0.1:218{n}", f"tcp://127.0.0.1:288{n}", f"tcp://127.0.0.1:298{n}",
            f"tcp://127.0.0.1:219{n}",
        )
        for n in (1, 2, 3)
    )
    assert cfg.me is cfg.members[0]
    assert cfg.limits == Limits(
        max_data_bytes=1048576,
        max_path_bytes=4096,
        max_inflight_per_client=1024,
        max_clients=4096,
        max_batch=1024,
    )
    assert cfg.timing == Timing(
        heartbeat_ms=50, election_timeout_ms=300, client_session_timeout_ms=10000
    )
    assert cfg.storage == Storage(fsync=True, wal_segment_bytes=67108864)
    assert cfg.log_level == "info"


def test_defaults_when_optional_sections_are_absent(tmp_path: Path) -> None:
    shipped = load_node_config(REPO / "conf" / "node1.ini")
    cfg = load_node_config(write(tmp_path, BASE))
    assert cfg.limits == shipped.limits == Limits()
    assert cfg.timing == shipped.timing == Timing()
    assert cfg.storage == shipped.storage == Storage()
    assert cfg.log_level == "info"


def test_admin_http_is_off_by_default_and_normalised(tmp_path: Path) -> None:
    assert load_node_config(write(tmp_path, BASE)).admin.http_address is None
    assert load_node_config(write(tmp_path, BASE + "[admin]\nhttp =\n")).admin.http == ""
    cfg = load_node_config(write(tmp_path, BASE + "[admin]\nhttp = http://LocalHost:08081\n"))
    assert cfg.admin.http == "localhost:8081"
    assert cfg.admin.http_address == ("localhost", 8081)
    shipped = load_node_config(REPO / "conf" / "node2.ini")
    assert shipped.admin.http == "127.0.0.1:8082"


def test_optional_keys_default_individually(tmp_path: Path) -> None:
    text = BASE + "[limits]\nmax_batch = 7\n[timing]\nelection_timeout_ms = 900\n"
    cfg = load_node_config(write(tmp_path, text))
    assert cfg.limits == dataclasses.replace(Limits(), max_batch=7)
    assert cfg.timing == dataclasses.replace(Timing(), election_timeout_ms=900)


def test_members_sorted_and_lookup(tmp_path: Path) -> None:
    text = edit("[member.1]", "[member.3]").replace("id = 1", "id = 3")
    cfg = load_node_config(write(tmp_path, text))
    assert [m.id for m in cfg.members] == [2, 3]
    assert cfg.me.id == 3
    assert cfg.member(2).client == "tcp://127.0.0.1:2182"
    with pytest.raises(KeyError):
        cfg.member(1)


def test_relative_data_dir_is_resolved_against_the_files_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf = tmp_path / "conf"
    conf.mkdir()
    write(conf, edit("data_dir = data", "data_dir = ../var/n1 ; comment"), "n1.ini")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_node_config(os.path.join("..", "conf", "n1.ini"))
    assert cfg.data_dir == str(tmp_path / "var" / "n1")
    assert cfg.path == str(conf / "n1.ini")


def test_absolute_data_dir_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "abs" / "dir"
    cfg = load_node_config(
        write(tmp_path, edit("data_dir = data", f"data_dir = {target}"))
    )
    assert cfg.data_dir == str(target)


@pytest.mark.parametrize(
    "raw, expected",
    [(w, True) for w in ("true", "yes", "on", "1", "TRUE", "Yes")]
    + [(w, False) for w in ("false", "no", "off", "0", "Off")],
)
def test_booleans(tmp_path: Path, raw: str, expected: bool) -> None:
    cfg = load_node_config(write(tmp_path, BASE + f"[storage]\nfsync = {raw}\n"))
    assert cfg.storage.fsync is expected


def test_log_level_is_case_insensitive(tmp_path: Path) -> None:
    cfg = load_node_config(write(tmp_path, BASE + "[log]\nlevel = DEBUG  # loud\n"))
    assert cfg.log_level == "debug"


def test_hostnames_are_accepted_and_normalised(tmp_path: Path) -> None:
    text = edit("tcp://127.0.0.1:2182", "tcp://Node-2.Example.org:02182")
    cfg = load_node_config(write(tmp_path, text))
    assert cfg.member(2).client == "tcp://node-2.example.org:2182"


def test_config_is_frozen(tmp_path: Path) -> None:
    cfg = load_node_config(write(tmp_path, BASE))
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.node_id = 2  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.limits.max_batch = 2  # type: ignore[misc]


def test_error_message_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "conf").mkdir()
    write(tmp_path / "conf", BASE + "[limits]\nmax_data_bytes = abc\n", "node1.ini")
    with pytest.raises(ConfigError) as info:
        load_node_config("conf/node1.ini")
    assert str(info.value) == (
        "conf/node1.ini: [limits] max_data_bytes: expected a positive integer, got 'abc'"
    )
    assert (info.value.file, info.value.section, info.value.key) == (
        "conf/node1.ini",
        "limits",
        "max_data_bytes",
    )


# (text, section, key or None for section-level problems, fragment of the problem)
ERROR_CASES = [
    pytest.param(
        BASE + "[limts]\nmax_batch = 1\n",
        "limts",
        None,
        "unknown section",
        id="unknown-section",
    ),
    pytest.param(
        BASE + "[DEFAULT]\nid = 2\n",
        "DEFAULT",
        None,
        "unknown section",
        id="default-section",
    ),
    pytest.param(
        BASE + "[limits]\nmax_dta_bytes = 1\n",
        "limits",
        "max_dta_bytes",
        "unknown key",
        id="unknown-key",
    ),
    pytest.param(
        edit("data_dir = data", "data_dir = data\nport = 1"),
        "node",
        "port",
        "unknown key",
        id="unknown-node-key",
    ),
    pytest.param(
        edit("watch = tcp://127.0.0.1:2192", "watch = tcp://127.0.0.1:2192\nx = 1"),
        "member.2",
        "x",
        "unknown key",
        id="unknown-member-key",
    ),
    pytest.param(
        BASE.replace("[node]\nid = 1\ndata_dir = data\n", ""),
        "node",
        None,
        "missing required section",
        id="missing-node-section",
    ),
    pytest.param(
        BASE[: BASE.index("[member.1]")],
        "member.N",
        None,
        "at least one member",
        id="no-members",
    ),
    pytest.param(
        edit("id = 1\n", ""), "node", "id", "missing required key", id="missing-node-id"
    ),
    pytest.param(
        edit("data_dir = data\n", ""),
        "node",
        "data_dir",
        "missing required key",
        id="missing-data-dir",
    ),
    pytest.param(
        edit("data_dir = data", "data_dir =  ; nothing"),
        "node",
        "data_dir",
        "must not be empty",
        id="empty-data-dir",
    ),
    pytest.param(
        edit("watch = tcp://127.0.0.1:2192\n", ""),
        "member.2",
        "watch",
        "missing required key",
        id="missing-member-key",
    ),
    pytest.param(
        BASE + "[limits]\nmax_data_bytes = abc\n",
        "limits",
        "max_data_bytes",
        "expected a positive integer, got 'abc'",
        id="not-an-integer",
    ),
    pytest.param(
        BASE + "[storage]\nwal_segment_bytes = 1.5\n",
        "storage",
        "wal_segment_bytes",
        "got '1.5'",
        id="float",
    ),
    pytest.param(
        BASE + "[limits]\nmax_batch = 0\n",
        "limits",
        "max_batch",
        "got '0'",
        id="zero-size",
    ),
    pytest.param(
        BASE + "[timing]\nheartbeat_ms = -5\n",
        "timing",
        "heartbeat_ms",
        "got '-5'",
        id="negative",
    ),
    pytest.param(
        BASE + "[limits]\nmax_data_bytes = 1000000000000\n",
        "limits",
        "max_data_bytes",
        "1000000000000",
        id="too-large",
    ),
    pytest.param(edit("id = 1", "id = 0"), "node", "id", "got '0'", id="node-id-zero"),
    pytest.param(
        edit("id = 1", "id = one"), "node", "id", "got 'one'", id="node-id-text"
    ),
    pytest.param(
        edit("id = 1", "id = 3"),
        "node",
        "id",
        "not one of the [member.N]",
        id="node-id-not-a-member",
    ),
    pytest.param(
        edit("[member.2]", "[member.x]"),
        "member.x",
        None,
        "suffix must be an integer",
        id="member-suffix-text",
    ),
    pytest.param(
        edit("[member.2]", "[member.0]"),
        "member.0",
        None,
        "1..",
        id="member-suffix-zero",
    ),
    pytest.param(
        edit("[member.2]", "[member.01]"),
        "member.01",
        None,
        "leading zeros",
        id="member-suffix-leading-zero",
    ),
    pytest.param(
        BASE + "[timing]\nheartbeat_ms = 500\nelection_timeout_ms = 500\n",
        "timing",
        "heartbeat_ms",
        "less than election_timeout_ms",
        id="heartbeat-equals-election",
    ),
    pytest.param(
        BASE + "[timing]\nheartbeat_ms = 600\n",
        "timing",
        "heartbeat_ms",
        "less than election_timeout_ms",
        id="heartbeat-above-default-election",
    ),
    pytest.param(
        BASE + "[storage]\nfsync = maybe\n",
        "storage",
        "fsync",
        "got 'maybe'",
        id="bad-boolean",
    ),
    pytest.param(
        BASE + "[log]\nlevel = verbose\n",
        "log",
        "level",
        "got 'verbose'",
        id="bad-log-level",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "udp://127.0.0.1:2182"),
        "member.2",
        "client",
        "tcp://HOST:PORT",
        id="not-tcp",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://127.0.0.1"),
        "member.2",
        "client",
        "tcp://HOST:PORT",
        id="no-port",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://127.0.0.1:http"),
        "member.2",
        "client",
        "port",
        id="port-not-numeric",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://127.0.0.1:0"),
        "member.2",
        "client",
        "port",
        id="port-zero",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://127.0.0.1:65536"),
        "member.2",
        "client",
        "port",
        id="port-too-large",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://*:2182"),
        "member.2",
        "client",
        "not allowed",
        id="wildcard-host",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://0.0.0.0:2182"),
        "member.2",
        "client",
        "not allowed",
        id="unspecified-host",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://300.1.1.1:2182"),
        "member.2",
        "client",
        "IPv4",
        id="bad-ipv4",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://bad_host:2182"),
        "member.2",
        "client",
        "hostname",
        id="bad-hostname",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://[::1]:2182"),
        "member.2",
        "client",
        "tcp://HOST:PORT",
        id="ipv6",
    ),
    pytest.param(
        edit("peer = tcp://127.0.0.1:2882", "peer = tcp://127.0.0.1:2182"),
        "member.2",
        "peer",
        "already used by [member.2] client",
        id="same-endpoint-within-member",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2192", "tcp://127.0.0.1:2881"),
        "member.2",
        "watch",
        "already used by [member.1] peer",
        id="same-endpoint-across-members",
    ),
    pytest.param(
        edit("tcp://127.0.0.1:2182", "tcp://LOCALHOST:2182").replace(
            "tcp://127.0.0.1:2192", "tcp://localhost:2182"
        ),
        "member.2",
        "watch",
        "already used",
        id="same-endpoint-differing-case",
    ),
    pytest.param(
        BASE + "[watch]\nheartbeat_ms = 200\nidle_heartbeat_ms = 100\n",
        "watch",
        "idle_heartbeat_ms",
        "must be at least heartbeat_ms",
        id="idle-heartbeat-faster-than-busy",
    ),
    pytest.param(
        BASE + "[watch]\nidle_heartbeat_ms = 5000\n",
        "watch",
        "idle_heartbeat_ms",
        "",
        id="idle-heartbeat-beyond-client-silence",
    ),
    pytest.param(
        BASE + "[watch]\nsubscriber_queue = 0\n",
        "watch",
        "subscriber_queue",
        "",
        id="no-subscriber-queue",
    ),
    pytest.param(
        BASE + "[limits]\nmax_batch = 1\nmax_batch = 2\n",
        "limits",
        "max_batch",
        "duplicate key",
        id="duplicate-key",
    ),
    pytest.param(
        BASE + "[member.2]\n",
        "member.2",
        None,
        "duplicate section",
        id="duplicate-section",
    ),
    pytest.param(BASE + "[limits]\nmax_path_bytes = 40000\n", "limits", "max_path_bytes",
                 "1..32768", id="path-longer-than-a-subscription-may-be"),
    pytest.param(BASE + "[admin]\nhttp = 8081\n", "admin", "http", "expected HOST:PORT",
                 id="admin-http-no-host"),
    pytest.param(BASE + "[admin]\nhttp = 127.0.0.1:0\n", "admin", "http",
                 "expected HOST:PORT", id="admin-http-port-0"),
    pytest.param(BASE + "[admin]\nhttp = 127.0.0.1:8081/metrics\n", "admin", "http",
                 "expected HOST:PORT", id="admin-http-path"),
    pytest.param(BASE + "[admin]\nport = 8081\n", "admin", "port", "unknown key",
                 id="admin-unknown-key"),
]


@pytest.mark.parametrize("text, section, key, fragment", ERROR_CASES)
def test_errors_name_file_section_and_key(
    tmp_path: Path, text: str, section: str, key: str | None, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: [{section}]")
    if key is not None:
        assert message.startswith(f"{path}: [{section}] {key}: ")
    assert fragment in message
    assert info.value.section == section
    assert info.value.key == key


@pytest.mark.parametrize(
    "text, fragment",
    [
        pytest.param("id = 1\n" + BASE, "line 1", id="key-before-any-section"),
        pytest.param(
            edit("data_dir = data", "data_dir = data\nno equals sign here"),
            "line 4",
            id="line-without-separator",
        ),
        pytest.param("[node\nid = 1\n", "line 1", id="unclosed-section-header"),
    ],
)
def test_syntax_errors_name_file_and_line(
    tmp_path: Path, text: str, fragment: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_node_config(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: ")
    assert fragment in message


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.ini"
    with pytest.raises(ConfigError, match="nope.ini: cannot read config file"):
        load_node_config(path)


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_node_config(tmp_path)  # a directory: open() fails even as root


def test_non_utf8_file(tmp_path: Path) -> None:
    path = tmp_path / "bin.ini"
    path.write_bytes(b"[node]\nid = \xff\xfe\n")
    with pytest.raises(ConfigError, match="bin.ini: not UTF-8"):
        load_node_config(path)


def _ensemble_file(node_id: int) -> str:
    return edit("id = 1", f"id = {node_id}")


def test_load_ensemble_sorts_by_node_id(tmp_path: Path) -> None:
    # File names sort the other way round from the ids.
    write(tmp_path, _ensemble_file(2), "a.ini")
    write(tmp_path, _ensemble_file(1), "b.ini")
    (tmp_path / "README.txt").write_text("not a config")
    configs = load_ensemble(tmp_path)
    assert [c.node_id for c in configs] == [1, 2]
    assert [Path(c.path).name for c in configs] == ["b.ini", "a.ini"]
    assert configs[0].cluster_fingerprint() == configs[1].cluster_fingerprint()


def test_load_ensemble_of_the_shipped_conf_dir() -> None:
    configs = load_ensemble(REPO / "conf")
    assert [c.node_id for c in configs] == sorted(c.node_id for c in configs)
    assert 1 in {c.node_id for c in configs}


def test_load_ensemble_without_ini_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no \\*.ini files"):
        load_ensemble(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        load_ensemble(tmp_path / "missing")


def test_load_ensemble_rejects_duplicate_ids(tmp_path: Path) -> None:
    write(tmp_path, _ensemble_file(1), "a.ini")
    write(tmp_path, _ensemble_file(1), "b.ini")
    with pytest.raises(ConfigError, match=r"\[node\] id: 1 is also the id in"):
        load_ensemble(tmp_path)


def test_load_ensemble_propagates_file_errors(tmp_path: Path) -> None:
    write(tmp_path, _ensemble_file(1), "a.ini")
    write(tmp_path, BASE + "[log]\nlevel = loud\n", "b.ini")
    with pytest.raises(ConfigError, match=r"b\.ini: \[log\] level"):
        load_ensemble(tmp_path)


def test_fingerprint_equal_for_equal_members(tmp_path: Path) -> None:
    a = load_node_config(write(tmp_path, BASE, "a.ini"))
    # Different node, data dir, limits and comments: the members are what count.
    other = (
        edit("id = 1", "id = 2").replace("data_dir = data", "data_dir = /elsewhere")
        + "[limits]\nmax_batch = 8 ; smaller\n"
    )
    b = load_node_config(write(tmp_path, other, "b.ini"))
    assert a.cluster_fingerprint() == b.cluster_fingerprint()
    assert a.cluster_fingerprint() == a.cluster_fingerprint()
    assert len(a.cluster_fingerprint()) == 64


def test_fingerprint_ignores_section_order_and_cosmetics(tmp_path: Path) -> None:
    first, second = BASE.split("[member.2]")
    reordered = first.replace("[member.1]", "[member.2]" + second + "\n[member.1]")
    reordered = reordered.replace("tcp://127.0.0.1:2181", "tcp://127.0.0.1:02181")
    a = load_node_config(write(tmp_path, BASE, "a.ini"))
    b = load_node_config(write(tmp_path, reordered, "b.ini"))
    assert a.members == b.members
    assert a.cluster_fingerprint() == b.cluster_fingerprint()


def test_fingerprint_differs_when_a_port_differs(tmp_path: Path) -> None:
    a = load_node_config(write(tmp_path, BASE, "a.ini"))
    b = load_node_config(
        write(tmp_path, edit("tcp://127.0.0.1:2192", "tcp://127.0.0.1:2193"), "b.ini")
    )
    assert a.cluster_fingerprint() != b.cluster_fingerprint()
