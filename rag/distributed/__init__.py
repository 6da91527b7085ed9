"""Running the build and the server on Ray (the optional ``[ray]`` extra).

Nothing here imports Ray at module level: without the extra every other command works, and
``--ray`` fails with one line naming the extra (rag.distributed.cluster.require_ray).
"""
