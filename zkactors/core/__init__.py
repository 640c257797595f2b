"""Pure, deterministic cores: no I/O, no clock, no threads. Callers pass time and zxids in."""
