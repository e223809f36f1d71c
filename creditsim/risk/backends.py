"""Execution backends: run scenario chunks locally or as dask.distributed tasks.

A backend maps one picklable, module-level function over a list of chunk tasks and returns the chunk
results *in task order*, calling ``on_done(n_scenarios)`` as each chunk finishes (for the progress bar).
The function receives ``(context, task)``; ``context`` (loan book, models, waterfall) is the same for
every chunk, so the dask backend scatters it to the workers once instead of pickling it per task.

Because every random draw of a chunk is keyed by (seed, global scenario id, loan block) and never by the
chunk or the worker, the order in which chunks finish is irrelevant: local and dask give identical
results for the same seed.

Pointing the dask backend at an existing cluster::

    from dask.distributed import Client
    client = Client("tcp://scheduler-host:8786")
    creditsim.simulate(loans, deal, n_simulations=100_000, backend="dask", client=client)

Workers need creditsim installed (``pip install creditsim[distributed]``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from creditsim.errors import ConfigError

__all__ = ["BACKENDS", "run_chunks", "LocalBackend", "DaskBackend", "make_backend"]

BACKENDS: tuple[str, ...] = ("local", "dask")

ChunkFn = Callable[[Any, Any], Any]
ProgressFn = Callable[[int], None]


class LocalBackend:
    """Run chunks one after the other in this process (torch may still use several threads)."""

    name = "local"

    def map(self, fn: ChunkFn, context: Any, tasks: Sequence[Any], sizes: Sequence[int],
            on_done: ProgressFn | None = None) -> list[Any]:
        out = []
        for task, size in zip(tasks, sizes):
            out.append(fn(context, task))
            if on_done is not None:
                on_done(size)
        return out

    def close(self) -> None:
        """Nothing to release."""


class DaskBackend:
    """Run chunks as dask.distributed tasks.

    Args:
        client: an existing ``dask.distributed.Client``; when None a ``LocalCluster`` with
            ``n_workers`` single-threaded worker processes is started and shut down by :meth:`close`.
        n_workers: workers of the private LocalCluster.
        processes: worker processes (True) or threads (False) for the private LocalCluster.
    """

    name = "dask"

    def __init__(self, client: Any | None = None, n_workers: int = 2, processes: bool = True):
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:  # pragma: no cover - dask is a declared extra
            raise ConfigError("backend='dask' needs dask.distributed: pip install 'creditsim[distributed]'") from None
        self._owned = client is None
        if client is None:
            import dask

            # The nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 by default, which makes glibc hand
            # memory back to the OS after every large free: our chunks allocate and free tens of MB per
            # month, and the trimming cost ~1.75x CPU per worker. Keep the rest of the default environment
            # (one BLAS/OpenMP thread per worker).
            environ = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                       if k != "MALLOC_TRIM_THRESHOLD_"}
            with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
                cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                                       dashboard_address=None)
            client = Client(cluster)
            self._cluster = cluster
        else:
            if not isinstance(client, Client):
                raise ConfigError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
            self._cluster = None
        self.client = client

    def map(self, fn: ChunkFn, context: Any, tasks: Sequence[Any], sizes: Sequence[int],
            on_done: ProgressFn | None = None) -> list[Any]:
        from dask.distributed import as_completed

        ctx = self.client.scatter(context, broadcast=True)
        futures = [self.client.submit(fn, ctx, task, pure=False) for task in tasks]
        index = {f.key: i for i, f in enumerate(futures)}
        results: list[Any] = [None] * len(futures)
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                results[i] = fut.result()  # re-raises the worker's exception (CreditSimError included)
                if on_done is not None:
                    on_done(sizes[i])
        except BaseException:
            self.client.cancel(futures)
            raise
        return results

    def close(self) -> None:
        if self._owned:
            self.client.close()
            if self._cluster is not None:
                self._cluster.close()


def make_backend(backend: str, client: Any | None = None) -> LocalBackend | DaskBackend:
    """Backend by name: ``"local"`` or ``"dask"`` (``client`` only for dask)."""
    if backend == "local":
        if client is not None:
            raise ConfigError("client is only used with backend='dask'")
        return LocalBackend()
    if backend == "dask":
        return DaskBackend(client=client)
    raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")


def run_chunks(backend: LocalBackend | DaskBackend, fn: ChunkFn, context: Any, tasks: Sequence[Any],
               sizes: Sequence[int], on_done: ProgressFn | None = None) -> list[Any]:
    """``backend.map`` with the argument checks in one place."""
    if len(tasks) != len(sizes):
        raise ConfigError(f"{len(tasks)} tasks but {len(sizes)} sizes")
    return backend.map(fn, context, tasks, sizes, on_done)
