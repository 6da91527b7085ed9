"""Finding Ray and connecting to a cluster: a local one started here, or one already running."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from rag.errors import RagError

INSTALL_HINT = "pip install 'career-rag[ray]'"


class RayMissing(RagError):
    """Ray was asked for but is not installed."""


def require_ray() -> ModuleType:
    """The ray module; raises RayMissing with the install command when it cannot be imported."""
    try:
        import ray
    except ImportError:
        raise RayMissing(f"--ray needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


@contextmanager
def ray_session(address: str = "local", num_cpus: int | None = None) -> Iterator[ModuleType]:
    """Ray connected to ``address`` ("local" starts a cluster here, "auto" joins the running
    one); disconnects (and stops a cluster it started) on exit. A connection made by the
    caller is used as it is and left open."""
    ray = require_ray()
    if ray.is_initialized():
        yield ray
        return
    if address == "local":
        # No dashboard: it is a web server on a port nobody asked to open.
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
    else:
        ray.init(address=address, log_to_driver=False)
    try:
        yield ray
    finally:
        ray.shutdown()
