"""Checkers for histories recorded by the chaos harness (issue #15, "Jepsen on one machine").

This package owns the pure half of the harness: the operation record and its JSONL
form (``history``), a linearizability checker for versioned registers with a
shrinker for failing histories (``linearizability``), and a session checker for
plain reads (``sessions``). Nothing here opens a socket, starts a thread, reads a
clock or touches the disk, except ``history``'s reader and writer, which take the
path or file they are given. The harness that runs real nodes, injects faults and
records the events lives elsewhere and calls these functions on what it recorded.
"""
