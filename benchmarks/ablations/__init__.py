"""Retrieval ablations: every ranking idea we tried, scored on the dev set and on our own sets.

Run ``python -m benchmarks.ablations`` (or ``make ablations``) after ``make index``; it writes
``benchmarks/ABLATIONS.md``. The first row is the shipped ``Retriever`` itself, so the table
cannot drift from what ``rag eval`` reports; every other row runs through the same code with
another fusion configuration or another ``Ranker`` (variants.py, rankers.py), so it measures
its idea rather than a copy of the pipeline.
"""

from benchmarks.ablations.lab import PREVIOUS, SHIPPED, Lab, Query, Score, VariantIndex, score

__all__ = ["PREVIOUS", "SHIPPED", "Lab", "Query", "Score", "VariantIndex", "score"]
