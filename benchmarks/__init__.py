"""Benchmarks for career-rag: `make bench` (python -m benchmarks.run) writes RESULTS.md."""
