"""The live view's page (``/ui``): one self-contained HTML document, no build step
and nothing fetched from elsewhere. It opens ``/ui/events`` (server-sent events,
zkactors.runtime.live) and redraws as messages arrive: the members as boxes,
each with its role, term, commit and applied indexes and a bar of how far it
lags the leader's commit; the leader changes with what explains each; the
latest changes of the tree.

For tests and scripts, ``<body data-leader="N" data-term="T">`` always holds the
leader the page shows (empty while there is none)."""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>zkactors — live view</title>
<style>
  body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .2em; }
  .sub { color: #666; margin-bottom: 1em; }
  #members { display: flex; gap: 1em; flex-wrap: wrap; }
  .member { border: 2px solid #bbb; border-radius: 8px; padding: .7em 1em; min-width: 13em; }
  .member.leader { border-color: #1a7f37; background: #eefbf0; }
  .member.candidate { border-color: #bf8700; background: #fff8e5; }
  .member.down { border-color: #cf222e; background: #fff0f0; color: #888; }
  .member h2 { font-size: 1.1em; margin: 0 0 .3em; }
  .role { font-weight: bold; text-transform: uppercase; font-size: .85em; }
  .bar { height: 8px; background: #eee; border-radius: 4px; margin-top: .4em; }
  .bar div { height: 8px; background: #d1242f; border-radius: 4px; }
  table { border-collapse: collapse; margin-top: .3em; }
  td { padding: .1em .6em .1em 0; vertical-align: top; }
  #changes td:nth-child(-n+2), #events td:nth-child(-n+2) { white-space: nowrap; }
  .cols { display: flex; gap: 3em; margin-top: 1.5em; flex-wrap: wrap; }
  .cols > div { flex: 1; min-width: 20em; }
  h3 { font-size: 1em; margin: 0 0 .3em; }
  .muted { color: #888; }
</style>
</head>
<body data-leader="" data-term="">
<h1>zkactors ensemble</h1>
<div class="sub">Served by node <span id="me"></span>; every member is asked a few
times a second. <span id="conn" class="muted">connecting…</span></div>
<div id="members"></div>
<div class="cols">
  <div><h3>Leader changes</h3><table id="changes"></table></div>
  <div><h3>Watch events</h3><table id="events"></table></div>
</div>
<script>
"use strict";
const members = document.getElementById("members");
const changes = document.getElementById("changes");
const events = document.getElementById("events");
const conn = document.getElementById("conn");
document.getElementById("me").textContent = "__NODE__";

function time(at) { return new Date(at * 1000).toLocaleTimeString(); }
function cell(row, text, cls) {
  const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls;
}
function prepend(table, cells, keep) {
  const row = table.insertRow(0);
  cells.forEach(([text, cls]) => cell(row, text, cls));
  while (table.rows.length > keep) table.deleteRow(-1);
}

function drawState(state) {
  const most = Math.max(1, ...state.members.map(m => m.behind || 0));
  members.replaceChildren(...state.members.map(m => {
    const box = document.createElement("div");
    box.className = "member " + m.role;
    box.id = "member-" + m.node;
    const title = document.createElement("h2");
    title.textContent = "n" + m.node + " ";
    const role = document.createElement("span");
    role.className = "role"; role.textContent = m.role;
    title.append(role);
    const table = document.createElement("table");
    const rows = m.role === "down" ? [["", m.error || "no answer"]] : [
      ["term", m.term], ["commit", m.commit_index], ["applied", m.applied_index],
      ["behind", m.behind + " entries"]];
    rows.forEach(([k, v]) => { const r = table.insertRow(); cell(r, k, "muted"); cell(r, v); });
    const bar = document.createElement("div");
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = (m.role === "down" ? 0 : 100 * (m.behind || 0) / most) + "%";
    bar.append(fill);
    box.append(title, table, bar);
    return box;
  }));
  const leader = state.members.find(m => m.node === state.leader);
  document.body.dataset.leader = leader ? leader.node : "";
  document.body.dataset.term = leader ? leader.term : "";
}

const source = new EventSource("/ui/events");
source.onopen = () => { conn.textContent = "live"; };
source.onerror = () => { conn.textContent = "reconnecting…"; };
source.onmessage = (message) => {
  const data = JSON.parse(message.data);
  if (data.type === "state") drawState(data);
  else if (data.type === "change")
    prepend(changes, [[time(data.at), "muted"], [data.text], [data.reason, "muted"]], 20);
  else if (data.type === "watch")
    prepend(events, [[time(data.at), "muted"], [data.kind], [data.path]], 20);
};
</script>
</body>
</html>
"""
