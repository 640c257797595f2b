"""zkctl as a subprocess, against real nodes: commands, output, exit codes."""

import argparse
import json
import subprocess
import time

import pytest

from tests.integration.cluster import (
    REPO,
    ZKCTL,
    Ensemble,
    NodeProcess,
    free_port,
    wait_for,
    write_config,
    write_ensemble,
    zkctl,
)

pytestmark = pytest.mark.timeout(120)


def ctl(node, *args):
    return zkctl("--hosts", node.client_endpoint, *args)


def test_znode_commands_round_trip(node):
    assert ctl(node, "create", "/cfg/db", "postgres://a", "--makepath").stdout.strip() == "/cfg/db"
    assert ctl(node, "get", "/cfg/db").stdout == "postgres://a\n"
    out = ctl(node, "set", "/cfg/db", "postgres://b")
    assert out.returncode == 0 and out.stdout.startswith("version 1 ")
    assert ctl(node, "get", "/cfg/db").stdout == "postgres://b\n"
    assert ctl(node, "ls", "/cfg").stdout.split() == ["db"]
    stat = json.loads(ctl(node, "stat", "/cfg/db", "--json").stdout)
    assert stat["version"] == 1 and stat["dataLength"] == len("postgres://b")
    tree = ctl(node, "tree", "/").stdout.splitlines()
    assert tree == ["/", "  cfg", "    db"]
    assert ctl(node, "create", "/cfg/q-", "--sequence").stdout.strip() == "/cfg/q-0000000001"
    assert ctl(node, "delete", "/cfg", "-r").returncode == 0
    assert ctl(node, "ls", "/").stdout == ""


def test_errors_exit_1_with_one_line(node):
    out = ctl(node, "get", "/nope")
    assert out.returncode == 1
    assert out.stderr.strip() == "zkctl: NoNodeError: node does not exist: /nope"
    ctl(node, "create", "/v", "x")
    out = ctl(node, "set", "/v", "y", "--version", "5")
    assert out.returncode == 1 and "BadVersionError" in out.stderr
    out = ctl(node, "create", "/a//b")
    assert out.returncode == 1 and "BadArgumentsError" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
    # Not a path at all: refused before anything is sent, as bad usage.
    out = ctl(node, "create", "bad")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert one_error_line(out) == ("zkctl create: error: argument path: 'bad' is not a znode "
                                   "path (it must start with '/') (see 'zkctl create --help')")


def test_status_json_has_the_documented_keys(node):
    ctl(node, "create", "/s", "1")
    rows = json.loads(ctl(node, "status", "--json").stdout)
    assert len(rows) == 1
    row = rows[0]
    for key in ("node", "role", "term", "commit_index", "applied_zxid", "lag"):
        assert key in row
    assert row["node"] == 1 and row["role"] == "leader" and row["lag"] == 0
    assert row["applied_zxid"] & 0xFFFFFFFF == row["commit_index"] >= 1
    assert ctl(node, "leader").stdout.strip() == "1"


def test_status_shows_one_tree_digest_on_every_node_at_one_zxid(tmp_path):
    ensemble = Ensemble(tmp_path).start()
    conf = ["--conf", str(tmp_path), "--timeout", "2"]
    try:
        assert zkctl(*conf, "create", "/cfg", "a").returncode == 0
        for i in range(20):
            assert zkctl(*conf, "create", f"/cfg/k{i}", str(i)).returncode == 0
        for node in ensemble.nodes.values():  # each node has applied every write
            assert zkctl("--hosts", node.client_endpoint, "sync", "/").returncode == 0

        def at_one_zxid():
            rows = json.loads(zkctl(*conf, "status", "-w", "json").stdout)
            return rows if len({r["applied_zxid"] for r in rows}) == 1 else None

        rows = wait_for(at_one_zxid, 20, "every node at one zxid", interval=0.1)
        digests = {r["digest"] for r in rows}
        assert len(digests) == 1 and all(len(d) == 16 for d in digests)
        assert all(r["digest_zxid"] == r["applied_zxid"] for r in rows)
        table = zkctl(*conf, "status").stdout.splitlines()
        assert "digest" in table[0]
        assert sum(rows[0]["digest"] in line for line in table[1:]) == 3
        # The same tree, at the same zxid, as a backup sees it.
        backup = json.loads(zkctl(*conf, "backup", str(tmp_path / "b.snap"), "-w", "json").stdout)
        assert (backup["zxid"], backup["digest"]) == (rows[0]["applied_zxid"], rows[0]["digest"])
        # Left out on request: a big tree is costly to hash.
        plain = json.loads(zkctl(*conf, "status", "--no-digest", "-w", "json").stdout)
        assert all("digest" not in r for r in plain)
        assert "digest" not in zkctl(*conf, "status", "--no-digest").stdout
    finally:
        ensemble.stop()


def test_status_reports_a_down_node(tmp_path):
    config = write_config(tmp_path)
    out = zkctl("--conf", str(tmp_path), "--timeout", "1", "status", "--json")
    assert out.returncode == 0
    assert json.loads(out.stdout)[0]["role"] == "down"
    out = zkctl("--conf", str(tmp_path), "--timeout", "1", "status")
    assert out.returncode == 1 and " down " in out.stdout
    assert config.exists()


def test_up_and_down_manage_the_ensemble_of_a_conf_dir(tmp_path):
    config = write_config(tmp_path)
    up = zkctl("--conf", str(tmp_path), "up")
    assert up.returncode == 0, up.stderr
    assert "node 1 serving at" in up.stdout
    pid_file = tmp_path / "data1" / "zknode.pid"
    pid = int(pid_file.read_text())
    try:
        again = zkctl("--conf", str(tmp_path), "up")
        assert f"already running (pid {pid})" in again.stdout
        assert zkctl("--conf", str(tmp_path), "create", "/up", "1").returncode == 0
    finally:
        down = zkctl("--conf", str(tmp_path), "down")
    assert down.returncode == 0 and f"node 1 stopped (pid {pid})" in down.stdout
    assert not pid_file.exists()
    assert (tmp_path / "data1" / "zknode.log").exists()
    # The data survives a down/up cycle.
    assert zkctl("--conf", str(tmp_path), "up").returncode == 0
    try:
        assert zkctl("--conf", str(tmp_path), "get", "/up").stdout == "1\n"
    finally:
        zkctl("--conf", str(tmp_path), "down")
    assert config.exists()


def test_bench_prints_json_figures(node):
    out = ctl(node, "bench", "-w", "json", "--seconds", "0.5", "--seq-ops", "50", "--clients", "4",
              "--inflight", "2", "--procs", "1")
    assert out.returncode == 0, out.stderr
    results = {r["workload"]: r for r in json.loads(out.stdout)}
    assert set(results) == {"seq", "write", "read"}
    for r in results.values():
        assert r["ops"] > 0 and r["ops_per_s"] > 0 and r["p50_ms"] > 0
    assert results["write"]["failed"] == 0 and results["read"]["failed"] == 0


def test_bad_config_is_one_line_naming_file_section_key(tmp_path):
    config = write_config(tmp_path, extra="[limits]\nmax_data_bytes = lots\n")
    node = NodeProcess(config)
    node.start(wait=False)
    assert node.proc.wait(20) == 2
    lines = node.log().strip().splitlines()
    assert len(lines) == 1
    assert "node1.ini" in lines[0] and "[limits]" in lines[0] and "max_data_bytes" in lines[0]


def test_sessions_end_when_clients_stop(node):
    from tests.integration.cluster import wait_for

    for _ in range(3):
        assert ctl(node, "ls", "/").returncode == 0

    def clients():
        return json.loads(ctl(node, "status", "--json").stdout)[0]["clients"]

    # Only the status call's own session remains.
    wait_for(lambda: clients() == 1, 10, "finished zkctl sessions to be gone")


@pytest.mark.parametrize("args, message", [
    (["--hosts", "foo"], "'foo' is not HOST:PORT or tcp://HOST:PORT"),
    (["--hosts", "http://127.0.0.1:2181"], "is not HOST:PORT or tcp://HOST:PORT"),
    (["--hosts", ","], "no endpoints in ','"),
    (["--hosts", "127.0.0.1:2181/app"], "a chroot suffix is not supported"),
    (["--timeout", "-1"], "must be more than 0"),
    (["--timeout", "soon"], "'soon' is not a number of seconds"),
])
def test_bad_global_options_are_refused_at_once_without_a_traceback(args, message):
    result = zkctl(*args, "ls", "/", timeout=10)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("zkctl: error: argument") and message in last


def test_version():
    result = zkctl("--version")
    assert result.returncode == 0 and result.stdout.startswith("zkctl ")


# ------------------------------------------------------------ part 4 of #11
def ctl_bytes(node, *args, stdin=b""):
    """zkctl with bytes in and out (argv items may be bytes: not UTF-8)."""
    return subprocess.run([*ZKCTL, "--hosts", node.client_endpoint, *args], input=stdin,
                          capture_output=True, timeout=60, cwd=REPO, check=False)


def one_error_line(result) -> str:
    stderr = result.stderr if isinstance(result.stderr, str) else result.stderr.decode()
    assert "Traceback" not in stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    return lines[0]


def test_values_come_from_argv_bytes_stdin_or_a_file(node, tmp_path):
    # Bytes that are not UTF-8 are stored exactly as given on the command line.
    assert ctl_bytes(node, "create", "/bin", b"\xff\xfe\x01A").returncode == 0
    assert ctl_bytes(node, "get", "/bin", "--format", "raw").stdout == b"\xff\xfe\x01A"
    # '-' reads stdin, every byte of it.
    payload = bytes(range(256)) * 4
    assert ctl_bytes(node, "create", "/piped", "-", stdin=payload).returncode == 0
    assert ctl_bytes(node, "get", "/piped", "--format", "raw").stdout == payload
    assert ctl_bytes(node, "set", "/piped", "-", stdin=b"second\n").returncode == 0
    assert ctl_bytes(node, "get", "/piped", "--format", "raw").stdout == b"second\n"
    # --file reads a file.
    source = tmp_path / "value.bin"
    source.write_bytes(b"\x00\x01from a file")
    assert ctl_bytes(node, "set", "/bin", "--file", str(source)).returncode == 0
    assert ctl_bytes(node, "get", "/bin", "--format", "raw").stdout == b"\x00\x01from a file"
    assert ctl_bytes(node, "create", "/f", "--file", str(source)).returncode == 0
    assert ctl_bytes(node, "get", "/f", "--format", "hex").stdout == b"0001" + \
        b"from a file".hex().encode() + b"\n"
    # A bare create makes an empty node, as zkCli does: stdin is read only for '-'.
    assert ctl_bytes(node, "create", "/bare", stdin=b"hello\n").returncode == 0
    assert ctl_bytes(node, "get", "/bare", "--format", "raw").stdout == b""
    # What cannot work is refused in one line.
    missing = ctl_bytes(node, "set", "/bin")
    assert missing.returncode == 2 and "a value is needed" in one_error_line(missing)
    both = ctl_bytes(node, "set", "/bin", "v", "--file", str(source))
    assert both.returncode == 2 and "not both" in one_error_line(both)
    unreadable = ctl_bytes(node, "set", "/bin", "--file", str(tmp_path / "nope"))
    assert unreadable.returncode == 1
    assert one_error_line(unreadable).endswith("nope': No such file or directory")


def test_get_formats_show_binary_values_unambiguously(node):
    ctl_bytes(node, "create", "/text", "héllo\nworld".encode())
    ctl_bytes(node, "create", "/bin", b"\xff\xfe")
    # auto: text as it is; bytes that are not UTF-8 in hex, with a note on stderr.
    assert ctl(node, "get", "/text").stdout == "héllo\nworld\n"
    auto = ctl(node, "get", "/bin")
    assert auto.returncode == 0 and auto.stdout == "fffe\n"
    assert "not UTF-8 (2 bytes), shown in hex" in one_error_line(auto)
    assert ctl(node, "get", "/text", "--format", "hex").stdout == \
        "héllo\nworld".encode().hex() + "\n"
    assert ctl(node, "get", "/text", "--format", "utf8").stdout == "héllo\nworld\n"
    bad = ctl(node, "get", "/bin", "--format", "utf8")
    assert bad.returncode == 1 and bad.stdout == ""
    assert one_error_line(bad) == ("zkctl: /bin: the value is not valid UTF-8 (byte 0xff at "
                                   "offset 0); use --format hex or --format raw")
    # JSON says which encoding it used.
    assert json.loads(ctl(node, "get", "/bin", "-w", "json").stdout) == {
        "path": "/bin", "value": "fffe", "encoding": "hex"}
    assert json.loads(ctl(node, "get", "/text", "-w", "json").stdout) == {
        "path": "/text", "value": "héllo\nworld", "encoding": "utf8"}
    refused = ctl(node, "get", "/bin", "--format", "raw", "-s")
    assert refused.returncode == 2 and "--format raw" in one_error_line(refused)


def test_tree_shows_text_or_hex_never_python_reprs(node):
    ctl_bytes(node, "create", "/t/text", b"a \"quoted\"\nline", "--makepath")
    ctl_bytes(node, "create", "/t/bin", "-", stdin=b"\x00\xff")
    ctl_bytes(node, "create", "/t/looks-hex", b"0x00ff")
    ctl_bytes(node, "create", "/t/long", b"x" * 500)
    out = ctl(node, "tree", "/t", "--values")
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        '/t = ""',
        "  bin = 0x00ff",
        '  long = "' + "x" * 60 + '" … (500 bytes)',
        '  looks-hex = "0x00ff"',
        '  text = "a \\"quoted\\"\\nline"',
    ]
    assert "b'" not in out.stdout and 'b"' not in out.stdout
    records = json.loads(ctl(node, "tree", "/t", "--values", "-w", "json").stdout)
    assert records[0] == {"path": "/t", "value": "", "encoding": "utf8"}
    assert {"path": "/t/bin", "value": "00ff", "encoding": "hex"} in records
    assert [r["path"] for r in json.loads(ctl(node, "tree", "/t", "-w", "json").stdout)] == [
        "/t", "/t/bin", "/t/long", "/t/looks-hex", "/t/text"]


def test_stat_times_are_readable_and_json_keeps_the_numbers(node):
    import datetime

    ctl(node, "create", "/s", "v")
    raw = json.loads(ctl(node, "stat", "/s", "-w", "json").stdout)
    assert json.loads(ctl(node, "stat", "/s", "--json").stdout) == raw
    table = dict(line.split(None, 1) for line in ctl(node, "stat", "/s").stdout.splitlines())
    assert list(table) == list(raw)
    for name in ("ctime", "mtime"):
        shown = datetime.datetime.fromisoformat(table[name])
        assert shown.tzinfo is not None
        assert round(shown.timestamp() * 1000) == raw[name]
    assert table["mzxid"] == hex(raw["mzxid"]) and table["ephemeralOwner"] == "0x0"
    assert table["dataLength"] == "1"


def test_get_s_and_ls_s_print_the_stat_after_as_zkcli(node):
    ctl(node, "create", "/g/child", "value", "--makepath")
    out = ctl(node, "get", "/g/child", "-s").stdout.splitlines()
    assert out[0] == "value" and out[1].startswith("czxid ") and out[-1].startswith("pzxid ")
    assert len(out) == 12
    listing = ctl(node, "ls", "/g", "-s").stdout.splitlines()
    assert listing[0] == "child" and "numChildren     1" in listing
    record = json.loads(ctl(node, "ls", "/g", "-s", "-w", "json").stdout)
    assert record["children"] == ["child"] and record["stat"]["numChildren"] == 1
    record = json.loads(ctl(node, "get", "/g/child", "-s", "-w", "json").stdout)
    assert record["value"] == "value" and record["stat"]["dataLength"] == 5


def test_sync_then_read(node):
    ctl(node, "create", "/synced", "1")
    out = ctl(node, "sync", "/synced")
    assert out.returncode == 0 and out.stdout == "" and out.stderr == ""
    missing = ctl(node, "sync")
    assert missing.returncode == 2 and "required: path" in one_error_line(missing)


def test_every_record_command_speaks_table_and_json(node, tmp_path):
    """Every subcommand that prints records takes -w table|json; the list comes
    from the parser, so a new command with -w is covered here too."""
    from zkactors.cli.zkctl import _parser

    ctl(node, "create", "/w", "v")
    subparsers = next(a for a in _parser()._actions
                      if isinstance(a, argparse._SubParsersAction))
    with_w = {name for name, p in subparsers.choices.items()
              if any("-w" in a.option_strings for a in p._actions)}
    assert with_w >= {"get", "set", "create", "ls", "stat", "tree", "watch", "status",
                      "leader", "bench"}
    runs = {"get": ["/w"], "set": ["/w", "v2"], "create": ["/w-", "-s"], "ls": ["/"],
            "stat": ["/w"], "tree": ["/"], "status": [], "leader": [],
            "backup": [str(tmp_path / "w.snap")]}
    # watch runs until Ctrl-C (its --json, the same option, is tested in
    # test_watches.py) and bench for seconds (test_bench_prints_json_figures);
    # health and restore need an ensemble of their own (test_backup.py), sessions
    # a session to show (test_sessions.py), verify a stopped node's data dir
    # (test_crash_matrix.py), ui a conf dir with [admin] endpoints (test_live_view.py).
    assert with_w - set(runs) == {"watch", "bench", "health", "restore", "sessions", "verify",
                                  "ui"}
    for command, args in runs.items():
        table = ctl(node, command, *args, "-w", "table")
        assert table.returncode == 0, (command, table.stderr)
        out = ctl(node, command, *args, "-w", "json")
        assert out.returncode == 0, (command, out.stderr)
        assert json.loads(out.stdout) and out.stdout != table.stdout, command


def test_status_asks_every_node_at_once_and_a_dead_one_costs_a_second(node):
    """Two dead endpoints and a live one: about a second in all, not five per dead
    node; every client status started is stopped again."""
    import threading

    from zkactors.cli import zkctl_status

    ctl(node, "create", "/elected", "")  # a single node leads once it takes writes
    dead = [f"tcp://127.0.0.1:{free_port()}" for _ in range(2)]
    hosts = ",".join([dead[0], node.client_endpoint, dead[1]])
    before = {t for t in threading.enumerate() if t.name.startswith("zkactors-client")}
    started = time.monotonic()
    rows = zkctl_status.status("unused", hosts, timeout=5.0)
    elapsed = time.monotonic() - started
    assert [row["role"] for row in rows] == ["down", "leader", "down"]
    assert [row["endpoint"] for row in rows] == [dead[0], node.client_endpoint, dead[1]]
    assert rows[0]["error"] == "Connection refused"
    assert elapsed < 2.0, f"status took {elapsed:.2f} s"
    wait_for(lambda: {t for t in threading.enumerate()
                      if t.name.startswith("zkactors-client")} <= before,
             5, "status clients' threads to end")
    # The whole command, all three nodes of a conf dir down: well under the 15 s it was.
    started = time.monotonic()
    out = zkctl("--conf", str(write_ensemble_conf(node)), "status")
    assert out.returncode == 1 and out.stdout.count(" down ") == 3
    assert time.monotonic() - started < 5.0


def test_a_command_against_dead_endpoints_fails_at_once_in_one_line():
    hosts = ",".join(f"127.0.0.1:{free_port()}" for _ in range(3))
    started = time.monotonic()
    out = zkctl("--hosts", hosts, "get", "/x")
    assert out.returncode == 1
    line = one_error_line(out)
    assert line.startswith("zkctl: no zkactors node reachable: tcp://127.0.0.1:")
    assert line.count("Connection refused") == 3
    assert time.monotonic() - started < 5.0  # not the 5 s --timeout, and no crash logged


def write_ensemble_conf(node):
    directory = node.config.parent / "dead-ensemble"
    write_ensemble(directory, size=3)
    return directory
