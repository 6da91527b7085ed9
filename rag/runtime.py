"""Process-wide switches that an entry point sets for itself; importing ``rag`` sets none.

The library never changes ``os.environ``, signal handlers or warning filters on import: a
program that imports it keeps its own. The ``rag`` command, the server runner, ``app_factory``
and the Ray workers call :func:`configure_process` before torch, FAISS or the tokenizers load.
"""

from __future__ import annotations

import os
import signal
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

# Each is set only when the environment does not already say otherwise.
PROCESS_ENV: dict[str, str] = {
    # The bundled model loads from its package by path; these also keep any other model name
    # from reaching for a hub at run time.
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    # The tokenizers' own thread pool competes with the server's threads and warns after a fork.
    "TOKENIZERS_PARALLELISM": "false",
    # torch and FAISS each bring an OpenMP runtime whose idle threads spin after every parallel
    # region; two spinning pools on a busy machine starve each other (benchmarks/README.md).
    # Read when the runtime loads, so it must be set before either library is imported.
    "OMP_WAIT_POLICY": "PASSIVE",
    # The weight-loading progress bar tells a user nothing they can act on.
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}


def configure_process() -> None:
    """Set the offline and thread switches for this process, keeping any explicit value."""
    for name, value in PROCESS_ENV.items():
        os.environ.setdefault(name, value)
    # A rename warning raised inside sentence-transformers' own model loading: nothing to act on.
    warnings.filterwarnings(
        "ignore", message=".*get_sentence_embedding_dimension.*", category=FutureWarning
    )


@contextmanager
def interruptible(*signals: signal.Signals) -> Iterator[None]:
    """Make SIGINT (and the given signals) raise KeyboardInterrupt inside the block."""
    # A process started with SIGINT ignored (`cmd &` from a shell without job control, and
    # every child of such a process) never gets Python's KeyboardInterrupt handler, so Ctrl-C
    # would do nothing; a command whose documented way to stop is Ctrl-C installs it itself.
    if threading.current_thread() is not threading.main_thread():
        yield  # only the main thread may set handlers, and only it receives KeyboardInterrupt
        return
    previous = {}
    for sig in (signal.SIGINT, *signals):
        previous[sig] = signal.signal(sig, signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
