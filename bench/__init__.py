"""Benchmarks against the real broker and Resonate server: `make bench` (see bench/README.md)."""
