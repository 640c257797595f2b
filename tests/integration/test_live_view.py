"""The live view any node's admin endpoint serves (``/ui``): its stream, and the
page itself in a real headless Chromium, across a leader kill."""

from __future__ import annotations

import json
import os
import time
import urllib.request

import pytest

from tests.integration.browser import Browser, chromium_binary
from tests.integration.cluster import Ensemble, wait_for, zkctl

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def ensemble(tmp_path):
    group = Ensemble(tmp_path, admin=True).start()
    yield group
    group.stop()


def _events(url: str):
    """The messages of a ``/ui/events`` stream, as they come."""
    with urllib.request.urlopen(url + "/ui/events", timeout=10) as stream:
        assert stream.headers["Content-Type"] == "text/event-stream"
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data: "):
                yield json.loads(line[6:])


def test_the_stream_shows_members_a_leader_change_with_its_reason_and_watch_events(ensemble):
    leader = ensemble.wait_for_leader()
    watcher = ensemble.a_follower(leader)
    victim = ensemble.nodes[leader]
    killed_at = None
    changes, watched = [], []
    for message in _events(watcher.admin_url):
        if message["type"] == "state":
            roles = {m["node"]: m["role"] for m in message["members"]}
            assert set(roles) == set(ensemble.nodes)
            if killed_at is None and message["leader"] == leader:
                victim.kill9()
                killed_at = time.monotonic()
                from zkactors.client import Client
                with Client(ensemble.hosts) as c:
                    c.create("/seen-live", b"")
            elif killed_at is not None and message["leader"] not in (None, leader) \
                    and watched:
                assert roles[leader] == "down"
                break
        elif message["type"] == "change":
            changes.append(message)
        elif message["type"] == "watch" and message["path"] == "/seen-live":
            watched.append(message)
        assert killed_at is None or time.monotonic() - killed_at < 30, "no new leader shown"
    assert changes[0]["leader"] == leader
    assert changes[-1]["reason"] == (f"n{leader}, the leader of term {changes[0]['term']}, "
                                     "stopped answering")
    assert watched[0]["kind"] == "CREATED"
    state = json.loads(urllib.request.urlopen(watcher.admin_url + "/ui/state").read())
    assert state["leader"] == changes[-1]["leader"]


def test_zkctl_ui_prints_each_nodes_live_view_and_it_serves_the_page(ensemble):
    out = zkctl("--conf", str(ensemble.directory), "ui", "--output", "json")
    rows = json.loads(out.stdout)
    assert [row["node"] for row in rows] == sorted(ensemble.nodes)
    for row, node in zip(rows, [ensemble.nodes[n] for n in sorted(ensemble.nodes)], strict=True):
        assert row["url"] == node.admin_url + "/ui"
    table = zkctl("--conf", str(ensemble.directory), "ui").stdout.splitlines()
    assert table == [f"{row['url']}   (node {row['node']})" for row in rows]
    with urllib.request.urlopen(rows[0]["url"]) as page:
        body = page.read().decode()
    assert page.headers["Content-Type"].startswith("text/html")
    assert 'new EventSource("/ui/events")' in body


@pytest.mark.skipif(chromium_binary() is None,
                    reason="no chromium: bin/install-system-deps installs it (as root)")
def test_the_page_in_a_real_browser_shows_the_new_leader_within_two_seconds(ensemble, tmp_path):
    leader = ensemble.wait_for_leader()
    watcher = ensemble.a_follower(leader)
    browser = Browser(chromium_binary())
    try:
        browser.open(watcher.admin_url + "/ui")
        wait_for(lambda: browser.evaluate("document.body.dataset.leader") == str(leader),
                 15, "the page to show the leader")
        assert browser.evaluate(f"document.getElementById('member-{leader}').className") == \
            "member leader"
        ensemble.nodes[leader].kill9()
        killed = time.monotonic()
        wait_for(lambda: browser.evaluate("document.body.dataset.leader") not in
                 ("", str(leader)), 2.0, "the page to show a new leader within 2 s",
                 interval=0.05)
        shown_after = time.monotonic() - killed
        new = int(browser.evaluate("document.body.dataset.leader"))
        assert new == ensemble.wait_for_leader(exclude=leader)
        wait_for(lambda: browser.evaluate(
            f"document.getElementById('member-{leader}').className") == "member down",
            5, "the killed node shown down")
        assert "stopped answering" in browser.evaluate(
            "document.getElementById('changes').textContent")
        shot = tmp_path / "live-view-after-leader-kill.png"
        browser.screenshot(str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # Where a person can look at it after the run.
        keep = os.environ.get("ZKACTORS_SCREENSHOTS")
        if keep:
            os.makedirs(keep, exist_ok=True)
            (shot.parent / shot.name).replace(os.path.join(keep, shot.name))
        print(f"new leader n{new} shown {shown_after:.2f} s after the kill")
    finally:
        browser.close()
