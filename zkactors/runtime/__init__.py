"""The imperative shell: threads, ZeroMQ sockets, the clock and the disk."""
