"""zkactors: a small coordination service in the spirit of Apache ZooKeeper."""

__version__ = "0.1.0"
