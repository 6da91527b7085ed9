"""``rag serve --ray``: the FastAPI app of rag.serve.app in Ray Serve replicas behind Serve's
HTTP proxy.

Each replica builds its own app with create_app(settings), so it loads (memory-maps) the index
itself and follows swapped indexes with the app's reload logic, exactly as one uvicorn worker
does. Serve's ingress runs the app's lifespan inside the replica (uvicorn's LifespanOn, started
after the replica's constructor, in ray.serve._private.replica), so nothing is loaded by hand;
``reconfigure``, which Serve calls before it routes to a replica, waits for the load.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from rag.config import Settings
from rag.distributed.cluster import ray_session

APP_NAME = "career-rag"
DEPLOYMENT_NAME = "RagReplica"
# Requests one replica takes at once: the app is async and batches concurrent query encodes
# (rag.serve.batching), so it gains from many in flight; Serve's default is 5.
MAX_ONGOING_REQUESTS = 64
# How long a new replica waits for its indexes before it takes requests anyway (answering 503
# with the reason, as a single server does).
READY_TIMEOUT_S = 300.0


class RagReplica:
    """One Serve replica: the app, built from the settings on the replica's own process."""

    def __init__(self, settings: dict[str, Any]) -> None:
        from rag.runtime import configure_process

        configure_process()  # a replica's process is an entry point of its own
        self.settings = Settings(**settings)

    def __serve_build_asgi_app__(self) -> Any:
        """Called by Serve after __init__; Serve then runs the app's lifespan (loads the index)."""
        from rag.serve.app import create_app

        # Not ``self.app``: Serve's ingress wrapper has a read-only property of that name.
        self.rag_app = create_app(self.settings)
        return self.rag_app

    async def reconfigure(self, config: dict[str, Any]) -> None:
        """Called by Serve after the lifespan has started and before the replica takes any
        request: wait until every collection's index is loaded (or has failed to load)."""
        # The lifespan loads indexes in the background so that uvicorn's /health answers at
        # once; here that would let Serve route requests to a new replica that answers 503.
        deadline = time.monotonic() + float(config.get("ready_timeout_s", READY_TIMEOUT_S))
        while not self.loaded() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)

    def loaded(self) -> bool:
        """Whether every collection's index is served, or has failed with a reason."""
        server = getattr(self.rag_app.state, "server", None)  # set once the lifespan runs
        if server is None:
            return False
        return all(svc.current is not None or svc.error for svc in server.services.values())


def replica_settings(settings: Settings) -> dict[str, Any]:
    """Settings a replica can rebuild anywhere: paths absolute (replicas run in Ray's own
    working directory), every field explicit so the replica's environment cannot change it."""
    data = settings.model_dump(mode="python")
    for name in ("corpus_dir", "index_dir", "data_dir"):
        data[name] = str(Path(data[name]).absolute())
    return data


def deployment_options(settings: Settings, replicas: int | None) -> dict[str, Any]:
    """Serve's deployment options: N fixed replicas, or autoscaling within the settings' bounds."""
    options: dict[str, Any] = {
        "name": DEPLOYMENT_NAME,
        "max_ongoing_requests": MAX_ONGOING_REQUESTS,
        "ray_actor_options": {"num_cpus": settings.ray_cpus_per_replica},
        # Given, so that Serve calls RagReplica.reconfigure before routing to a replica.
        "user_config": {"ready_timeout_s": READY_TIMEOUT_S},
    }
    if replicas is not None:
        options["num_replicas"] = replicas
    else:
        low, high = (
            settings.ray_min_replicas,
            max(settings.ray_min_replicas, settings.ray_max_replicas),
        )
        options["autoscaling_config"] = {"min_replicas": low, "max_replicas": high}
    return options


def build_application(settings: Settings, replicas: int | None = None) -> Any:
    """The Serve application (not yet running): the ingress deployment, bound to the settings."""
    from ray import serve

    ingress = serve.ingress()(RagReplica)
    deployment = serve.deployment(ingress, **deployment_options(settings, replicas))
    return deployment.bind(replica_settings(settings))


def deploy(settings: Settings, replicas: int | None = None) -> None:
    """Start Serve's proxy on settings.host:settings.port and deploy; returns once replicas are
    up (needs a Ray connection)."""
    from ray import serve

    serve.start(http_options={"host": settings.host, "port": settings.port})
    serve.run(build_application(settings, replicas), name=APP_NAME, route_prefix="/")


def run_serve(settings: Settings, address: str, replicas: int | None = None) -> None:
    """Deploy on the cluster at ``address`` and serve until interrupted, then take it down."""
    import time

    from ray import serve

    with ray_session(address):
        deploy(settings, replicas)
        print(
            f"Serving {settings.index_dir} on http://{settings.host}:{settings.port} with Ray Serve"
            " (Ctrl-C stops)",
            flush=True,
        )
        try:
            while True:
                time.sleep(1)
        except KeyboardInterrupt:
            pass
        finally:
            # A joined cluster outlives this command: leave nothing of ours running on it.
            serve.delete(APP_NAME)
            serve.shutdown()
