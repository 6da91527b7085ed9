"""``python -m rag`` runs the same command line as the ``rag`` script."""

import sys

from rag.cli import main

if __name__ == "__main__":
    sys.exit(main())
