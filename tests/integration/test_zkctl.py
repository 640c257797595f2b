"""zkctl as a subprocess, against real nodes: commands, output, exit codes."""

import json

import pytest

from tests.integration.cluster import NodeProcess, write_config, zkctl

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
    assert out.stderr.strip().splitlines() == [
        "zkctl create: error: argument path: 'bad' is not a znode path (it must start "
        "with '/') (see 'zkctl create --help')"]


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
    out = ctl(node, "bench", "--json", "--seconds", "0.5", "--seq-ops", "50", "--clients", "4",
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
