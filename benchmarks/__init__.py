"""Benchmarks for career-rag: `make bench` (python -m benchmarks.run) writes RESULTS.md."""

from rag.runtime import configure_process

# Each benchmark is an entry point: it runs with the offline and thread switches the `rag`
# command and the server set for themselves (OMP_WAIT_POLICY before FAISS or torch loads).
configure_process()
