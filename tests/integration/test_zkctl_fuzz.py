"""zkctl never shows a traceback: every subcommand, every argument, fed missing,
malformed, non-UTF-8, empty and huge values, against a real node.

The subcommands and their arguments are read from zkctl's own parser, so a new
command or option is fuzzed without anyone adding it here (and a positional this
file does not know how to fill makes the test fail until it does).

The cases run in-process (``zkctl.main``) inside one worker subprocess: fast, and
zkctl's logging set-up and stdout/stderr swaps stay out of the pytest process. A
handful of real subprocess runs pass bytes that are not UTF-8 in argv.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import pytest

from tests.integration.cluster import REPO, ZKCTL, NodeProcess, free_port, write_config
from zkactors.cli.zkctl import _parser
from zkactors.client import Client

pytestmark = pytest.mark.timeout(180)

HUGE = 1 << 20  # characters: 1 MiB, more than a node takes as a path or a value
#: How each kind of bad input looks; ``("huge", prefix)`` is expanded by the worker.
BAD = {
    "empty": "",
    "malformed": "\n-x/../",
    "non-utf8": "\udcff\udcfe",  # how Python hands over argv bytes 0xff 0xfe
    "huge": ("huge", ""),
}
#: What a valid positional looks like, by its name (``{command}`` is filled in).
#: (Files are relative to the worker's scratch directory, its cwd.)
VALID_POSITIONAL = {"path": "/fz-{command}", "value": "v", "file": "fz-{command}.snap",
                    "cmd": "true", "data_dir": "fz-{command}-data"}
#: Extra arguments that keep a command small while its other arguments are fuzzed.
#: (create: a sequence node, so that each case makes a new one rather than fail
#: on the node that exists.)
BASE_ARGS = {"bench": ["--workloads", "seq", "--seq-ops", "1"], "create": ["-s"]}
#: Commands that run until Ctrl-C: every case for them must be refused.
UNTIL_INTERRUPTED = {"watch"}


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = _parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def takes_value(action: argparse.Action) -> bool:
    return bool(action.option_strings) and action.nargs != 0  # not a flag, --help, --version


def build_cases(endpoint: str, empty_conf: str) -> list[dict]:
    """Every case: its label, argv (``("huge", prefix)`` items expanded later), and
    whether it must be refused."""
    cases = []

    def case(label: str, argv: list, must_fail: bool) -> None:
        command = label.split()[0] if label.split()[0] in commands else None
        cases.append({"label": label, "argv": argv, "must_fail": must_fail,
                      "command": command})

    commands = subcommands()

    # The command itself.
    case("no command", [], True)
    for kind, bad in BAD.items():
        case(f"command {kind}", [bad], True)
    # Global options, on a command that needs them right.
    for action in _parser()._actions:
        if not takes_value(action):
            continue
        option = action.option_strings[-1]
        others = [] if option == "--hosts" else ["--hosts", endpoint]
        if option == "--conf":
            others = []
        case(f"{option} missing", [*others, "ls", "/", option], True)
        for kind, bad in BAD.items():
            case(f"{option} {kind}", [*others, option, bad, "ls", "/"], True)
    # Every subcommand: its positionals, then its options.
    prefix = ["--hosts", endpoint, "--conf", empty_conf, "--timeout", "5"]
    for command, parser in commands.items():
        forever = command in UNTIL_INTERRUPTED
        positionals = [a for a in parser._actions if not a.option_strings]
        unknown = [a.dest for a in positionals if a.dest not in VALID_POSITIONAL]
        assert not unknown, f"zkctl {command}: add valid values for {unknown} to VALID_POSITIONAL"
        valid = [VALID_POSITIONAL[a.dest].format(command=command) for a in positionals]
        # An optional positional is left out while options are fuzzed: set's VALUE
        # would otherwise turn every --file case into "not both".
        needed = [value for a, value in zip(positionals, valid, strict=True) if a.nargs is None]
        base = BASE_ARGS.get(command, [])
        required = any(a.nargs is None for a in positionals)
        if required:
            case(f"{command} missing", [*prefix, command, *base], True)
        elif not forever:
            case(f"{command} bare", [*prefix, command, *valid, *base], False)
        for i, action in enumerate(positionals):
            values = dict(BAD)
            if action.dest == "path":
                values["huge"] = ("huge", "/")  # a path, but far too long
                values["relative"] = "fz/relative"
            for kind, bad in values.items():
                argv = [*prefix, command, *valid[:i], bad, *valid[i + 1:], *base]
                case(f"{command} {action.dest} {kind}", argv,
                     must_fail=forever or action.dest == "path")
        for action in parser._actions:
            if not takes_value(action):
                continue
            option = action.option_strings[-1]
            case(f"{command} {option} missing", [*prefix, command, *needed, *base, option], True)
            for kind, bad in BAD.items():
                # Every option of ours takes a number, a choice, a zxid, a file or a
                # workload list: none of these values is one.
                case(f"{command} {option} {kind}",
                     [*prefix, command, *needed, *base, option, bad], True)
    return cases


def worker() -> None:
    """Run the cases read (as JSON) from stdin with ``zkctl.main``, each with its
    own stdin, stdout and stderr; write ``[returncode, stdout, stderr]`` per case
    as JSON to the file named in argv. A case still running after 30 s is
    reported as hung (and ends the run)."""
    import io
    import threading
    import traceback

    from zkactors.cli.zkctl import main

    cases = json.load(sys.stdin)
    results = []
    real_stderr = sys.stderr
    for spec in cases:
        argv = [item if isinstance(item, str) else item[1] + "x" * HUGE for item in spec["argv"]]
        print(f"case: {spec['label']}", file=real_stderr, flush=True)
        out, err = io.BytesIO(), io.BytesIO()
        sys.stdin = io.TextIOWrapper(io.BytesIO(b""), encoding="utf-8")
        sys.stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
        sys.stderr = io.TextIOWrapper(err, encoding="utf-8", errors="backslashreplace",
                                      write_through=True)
        outcome: list = []

        def run(argv=argv, outcome=outcome) -> None:
            try:
                outcome.append(main(argv))
            except SystemExit as exit_:  # argparse: usage errors, --help
                outcome.append(exit_.code if isinstance(exit_.code, int) else 2)
            except BaseException:  # noqa: BLE001 - exactly what this test looks for
                sys.stderr.write(traceback.format_exc())
                outcome.append("raised")

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        thread.join(30)
        sys.stdout.flush()
        sys.stderr.flush()
        code = outcome[0] if outcome else "hung"
        results.append([code, out.getvalue().decode("utf-8", "backslashreplace"),
                        err.getvalue().decode("utf-8", "backslashreplace")])
        if code == "hung":
            break
    sys.stdout, sys.stderr = sys.__stdout__, real_stderr
    with open(sys.argv[1], "w") as f:
        json.dump(results, f)


def check(label: str, must_fail: bool, code, stdout: str, stderr: str) -> list[str]:
    """What is wrong with one outcome (nothing, for a good one)."""
    problems = []
    lines = stderr.strip().splitlines()
    if code not in (0, 1, 2):
        problems.append(f"exit code {code!r}")
    if "Traceback" in stderr or "Traceback" in stdout:
        problems.append("a traceback")
    if "internal error" in stderr:
        problems.append("an unexpected exception (the last-resort handler)")
    if must_fail and code == 0:
        problems.append("accepted")
    if code != 0 and (len(lines) != 1 or not lines[0].startswith("zkctl")):
        problems.append(f"{len(lines)} stderr lines, not one 'zkctl…' line")
    if len(lines) > 1 and code == 0:
        problems.append(f"{len(lines)} stderr lines on success")
    if any(len(line) > 1000 for line in lines):
        problems.append("an error line of more than 1000 characters")
    if problems:
        return [f"{label}: {', '.join(problems)}; exit {code!r}; stderr: {stderr[:500]!r}"]
    return []


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory):
    node = NodeProcess(write_config(tmp_path_factory.mktemp("fuzz"))).start()
    try:
        with Client(node.client_endpoint, request_timeout=10.0) as client:
            for command in subcommands():
                client.create(f"/fz-{command}", b"v")
        yield node
    finally:
        node.stop()


def test_every_subcommand_survives_bad_arguments_in_one_line(fuzz_node, tmp_path):
    empty_conf = tmp_path / "empty-conf"
    empty_conf.mkdir()
    cases = build_cases(fuzz_node.client_endpoint, str(empty_conf))
    assert {spec["command"] for spec in cases} - {None} == set(subcommands())
    results_path = tmp_path / "results.json"
    scratch = tmp_path / "cwd"  # whatever a case writes (a backup file …) lands here
    scratch.mkdir()
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", "from tests.integration.test_zkctl_fuzz import worker; worker()",
         str(results_path)],
        input=json.dumps(cases), capture_output=True, text=True, cwd=scratch, timeout=150,
        env={**os.environ, "PYTHONPATH": str(REPO)}, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(results_path.read_text())
    assert len(results) == len(cases), f"stopped at: {cases[len(results) - 1]['label']}"
    problems = []
    for spec, (code, stdout, stderr) in zip(cases, results, strict=True):
        problems += check(spec["label"], spec["must_fail"], code, stdout, stderr)
    assert not problems, "\n".join(problems)
    # Sanity: the valid cases did run against the node, and the bad ones were refused.
    codes = [code for code, _, _ in results]
    assert codes.count(0) >= 5 and codes.count(2) > len(cases) // 2
    print(f"{len(cases)} cases in {time.monotonic() - started:.1f} s")


def test_argv_bytes_that_are_not_utf8(fuzz_node, tmp_path):
    """Real argv bytes, through the real entry point (bin/zkctl)."""
    hosts = [b"--hosts", fuzz_node.client_endpoint.encode()]
    missing_dir = os.fsencode(tempfile.gettempdir()) + b"/zkctl-fuzz-\xff\xfe"
    runs = {
        "command": ([b"\xff\xfe"], 2),
        "path": ([*hosts, b"get", b"/fz-get/\xff\xfe"], 2),
        "watch path": ([*hosts, b"watch", b"\xff"], 2),
        "value (valid: stored as given)": ([*hosts, b"create", b"/fz-bytes", b"\xff\xfe"], 0),
        "--file": ([*hosts, b"set", b"/fz-set", b"--file", missing_dir], 1),
        "--hosts": ([b"--hosts", b"\xff:1", b"ls"], 2),
        "--conf": ([b"--conf", missing_dir, b"status"], 2),
        "--timeout": ([*hosts, b"--timeout", b"\xff", b"ls"], 2),
        "dead endpoint": ([b"--hosts", f"127.0.0.1:{free_port()}".encode(), b"ls"], 1),
    }
    procs = {label: subprocess.Popen([*ZKCTL, *argv], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=REPO)
             for label, (argv, _) in runs.items()}
    problems = []
    for label, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        expected = runs[label][1]
        text = stderr.decode("utf-8", "backslashreplace")
        problems += check(label, expected != 0, proc.returncode,
                          stdout.decode("utf-8", "backslashreplace"), text)
        if proc.returncode != expected:
            problems.append(f"{label}: exit {proc.returncode}, expected {expected}: {text!r}")
        # A refused argument is named, escaped (\xff), never as a raw byte.
        named = expected == 2 and b"\xff" in b"".join(runs[label][0]) and "--conf" not in label
        if named and "\\xff" not in text:
            problems.append(f"{label}: the bad bytes are not shown escaped: {text!r}")
    assert not problems, "\n".join(problems)
    get = subprocess.run([*ZKCTL, *hosts, "get", "/fz-bytes", "--format", "hex"],
                         capture_output=True, timeout=60, cwd=REPO, check=False)
    assert get.stdout == b"fffe\n"
