"""Command-line entry points: ``zknode`` (run one node) and ``zkctl`` (admin)."""
