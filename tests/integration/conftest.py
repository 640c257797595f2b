import pytest

from tests.integration.cluster import NodeProcess, write_config
from zkactors.client import Client


@pytest.fixture
def node(tmp_path):
    """A single running node with fsync on, stopped (by PID) after the test."""
    proc = NodeProcess(write_config(tmp_path)).start()
    yield proc
    proc.stop()


@pytest.fixture
def client(node):
    c = Client(node.client_endpoint, request_timeout=10.0)
    c.start(timeout=10)
    yield c
    c.stop()
