"""``python -m benchmarks.ablations``: score every variant and write benchmarks/ABLATIONS.md."""

from benchmarks.ablations.report import main

main()
