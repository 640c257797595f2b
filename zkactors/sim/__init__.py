"""Deterministic simulation of an ensemble over the pure cores (see cluster.py)."""
