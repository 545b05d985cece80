"""Benchmarks: scripts that print figures beside a peer or a floor; no test asserts on them."""
