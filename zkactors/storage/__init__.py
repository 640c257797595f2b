"""Durable storage for a zkactors node: the write-ahead log (``wal``) and, later, snapshots.

Everything in this package does real file I/O and is used only by the runtime
layer; the pure core never imports it.
"""
