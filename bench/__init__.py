"""Benchmarks: run with `make bench`; each writes JSON to bench/results/."""
