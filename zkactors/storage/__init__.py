"""Durable storage for a zkactors node: the write-ahead log (``wal``), the term and vote
(``stable``) and point-in-time snapshots of the state machine (``snapshot``).

Everything in this package does real file I/O and is used only by the runtime
layer; the pure core never imports it.
"""
