"""Execution backends: run scenario chunks locally or as dask.distributed tasks.

A backend maps one picklable, module-level function over a list of chunk tasks and returns the chunk
results *in task order*, calling ``on_done(n_scenarios)`` as each chunk finishes (for the progress bar).
With ``collect``, each result is handed to ``collect(task_index, result)`` as it arrives (in the caller's
process) and the list holds what ``collect`` returned instead: the caller can copy a chunk into its
whole-run arrays while the other chunks still run, and let the chunk go.
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

import concurrent.futures
import multiprocessing
import os
import sys
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from creditsim.errors import ConfigError

__all__ = ["BACKENDS", "LOCAL_CHUNK_THREADS_MAX", "ChunkFn", "CollectFn", "ProgressFn", "run_chunks", "LocalBackend",
           "DaskBackend", "make_backend"]

BACKENDS: tuple[str, ...] = ("local", "dask")

ChunkFn = Callable[[Any, Any], Any]
ProgressFn = Callable[[int], None]
CollectFn = Callable[[int, Any], Any]


#: most chunks a local run keeps in flight on threads: each holds a chunk's working set besides the cohort
#: matrices, whose budget the chunks share (~0.1 GiB more per thread for a 10,000-loan book at 60 months),
#: and each chunk's month loop takes the GIL between its kernels (measured on 2 cores only); a dask
#: cluster is the way past it
LOCAL_CHUNK_THREADS_MAX = 8


class LocalBackend:
    """Run chunks in this process.

    With ``threads`` 1, or a single chunk, the chunks run one after the other on the calling thread, with
    the caller's torch thread count (which the Markov engine's fused kernel and the trajectory engine's
    scenario groups use inside the chunk). With ``threads`` > 1 and several chunks, up to ``threads``
    chunks run side by side on Python threads, each with one torch thread, as the workers of a dask
    cluster run them: the chunks' kernels, torch and numpy release the GIL, so whole chunks overlap, and
    nothing is split finer than a chunk (2 cores, 2,000 loans: 1.7-1.9x the one-thread wall, against
    1.23-1.27x from the kernel's own threads). Every draw is keyed by scenario, so the results are the
    same bits either way; ``collect`` and ``on_done`` run on the calling thread, as chunks finish. A
    failing chunk stops the run: chunks not yet started are dropped, running ones end, and the error
    raised is that of the first failing chunk in task order, as on one thread.

    Args:
        threads: chunks in flight at once (>= 1; :data:`LOCAL_CHUNK_THREADS_MAX` at most).
    """

    name = "local"

    def __init__(self, threads: int = 1):
        if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
            raise ConfigError(f"threads must be an integer >= 1, got {threads!r}")
        self.threads = min(threads, LOCAL_CHUNK_THREADS_MAX)

    def map(self, fn: ChunkFn, context: Any, tasks: Sequence[Any], sizes: Sequence[int],
            on_done: ProgressFn | None = None, collect: CollectFn | None = None) -> list[Any]:
        if min(self.threads, len(tasks)) > 1:
            return self._map_threads(fn, context, tasks, sizes, on_done, collect)
        out = []
        for i, (task, size) in enumerate(zip(tasks, sizes)):
            result = fn(context, task)
            out.append(result if collect is None else collect(i, result))
            if on_done is not None:
                on_done(size)
        return out

    def _map_threads(self, fn: ChunkFn, context: Any, tasks: Sequence[Any], sizes: Sequence[int],
                     on_done: ProgressFn | None, collect: CollectFn | None) -> list[Any]:
        from creditsim.threads import serial_torch

        out: list[Any] = [None] * len(tasks)
        # the pool is sized to the chunks in flight: a finished chunk's thread takes the next task
        with serial_torch(), concurrent.futures.ThreadPoolExecutor(min(self.threads, len(tasks)),
                                                                   thread_name_prefix="creditsim-chunk") as pool:
            index = {pool.submit(fn, context, task): i for i, task in enumerate(tasks)}
            handed: set[int] = set()  # chunks given to collect / on_done

            def hand(i: int, fut: concurrent.futures.Future) -> None:
                out[i] = fut.result() if collect is None else collect(i, fut.result())
                handed.add(i)
                if on_done is not None:
                    on_done(sizes[i])

            chunk_failed = False
            try:
                for fut in concurrent.futures.as_completed(index):
                    if fut.exception() is not None:  # (done: no wait) raised below, on the calling thread
                        chunk_failed = True
                        break
                    hand(index[fut], fut)
            except BaseException:  # collect's, on_done's or the caller's (Ctrl-C): raised as it is
                _drop_the_rest(index)
                raise
            if chunk_failed:
                _drop_the_rest(index)
                # the pool starts chunks in task order, so every chunk before the first failing one has run;
                # those not yet handed over go to collect first, as on one thread (its error would come first)
                futures = list(index)
                first = min(i for i, fut in enumerate(futures) if not fut.cancelled() and fut.exception() is not None)
                for i in range(first):
                    if i not in handed:
                        hand(i, futures[i])
                raise futures[first].exception()
        return out

    def close(self) -> None:
        """Nothing to release."""


def _drop_the_rest(futures: dict[concurrent.futures.Future, int]) -> None:
    """Drop the chunks not yet started and wait for the running ones to end."""
    for fut in futures:
        fut.cancel()
    concurrent.futures.wait(futures)


class DaskBackend:
    """Run chunks as dask.distributed tasks.

    Args:
        client: an existing ``dask.distributed.Client``; when None a ``LocalCluster`` with
            ``n_workers`` single-threaded worker processes is started on a background thread at once
            (:meth:`map` waits for it; a failure to start is raised there) and shut down by :meth:`close`.
        n_workers: workers of the private LocalCluster.
        processes: worker processes (True) or threads (False) for the private LocalCluster.
        warm_up: a picklable no-argument function each worker of the private cluster runs once it has
            started (before :meth:`map` runs a chunk), e.g. importing the chunk function's module.
        preload: modules (names) the private cluster's worker processes import once, before they start:
            they are forked from a ``multiprocessing`` fork server that imported them (and
            ``distributed``), instead of each spawned process importing them anew.

    Starting the private cluster costs ~3 s on two cores, mostly the workers' imports (torch, numba and
    creditsim: ~2.5 s of CPU each when they were spawned). Two things keep that from the run's wall:

    - **One import, kept.** On Linux, where dask's start method is left at its default ("spawn"), the
      workers fork from ``multiprocessing``'s fork server, which imports ``preload`` once and stays up
      while this process lives (~0.4 GiB resident, shared copy-on-write with its children). A second
      private cluster in the same process has its workers at once: on two cores, 6,000 scenarios of
      2,000 loans took 5.2-6.1 s the second time against 8.4-9.2 s spawning. The server is started
      with this process's own environment, before the nanny writes its pre-spawn variables here, so
      other users of it (a forkserver ``Pool``) do not get them; the workers get those variables, and
      this process's variables as they are when each cluster starts, right after the fork (added or
      overwritten: one deleted here since the server started stays in the workers). What the
      server had imported before they are set keeps its own count: a chunk's one thread is
      :func:`_one_thread_chunk`'s one torch thread (also the fused kernel's), and BLAS is held to one
      thread in each worker it starts (:func:`_worker_start`). The server keeps the code it imported: after
      editing creditsim's source in a long session, restart the process. A fork server already running
      (started by the caller) is used as it is, preloads and all; a worker the nanny restarts
      (``client.restart``, a worker that died) is spawned. Off Linux, or with a start method of your
      own, the workers are started as dask starts them (:data:`_FORK_SERVER`).
    - **The caller works meanwhile.** The fork server's imports take one core; :meth:`map` runs chunks
      on the other, in this process, in task order, with one torch thread, while the cluster starts,
      and the moment it is up every chunk not yet begun goes to it (the chunk in hand here finishes
      beside the workers). Which process ran a chunk changes nothing: its draws are keyed by scenario.
      :meth:`map` still returns only once the start has ended (and raises its error, if any).
    """

    name = "dask"

    def __init__(self, client: Any | None = None, n_workers: int = 2, processes: bool = True,
                 warm_up: Callable[[], Any] | None = None, preload: Sequence[str] = ()):
        try:
            from dask.distributed import Client

            if client is None:
                import threadpoolctl  # noqa: F401  (the private cluster's workers: _worker_start)
        except ImportError:  # pragma: no cover - dask is a declared extra
            raise ConfigError("backend='dask' needs dask.distributed (and threadpoolctl for a private cluster): "
                              "pip install 'creditsim[distributed]'") from None
        self._owned = client is None
        self._processes = processes and client is None
        self._closed = False
        self._cluster: Any = None
        self._failure: BaseException | None = None
        self._starting: threading.Thread | None = None
        self._spawn_undo: tuple[dict[str, str | None], dict[str, Any]] | None = None  # (_undo_spawn_environ's)
        if client is None:
            # The private cluster starts on a thread: the workers' imports take ~3 s, which the caller spends
            # drawing the macro paths and running the first chunks meanwhile (map).
            self.client = None
            # not a daemon: an interpreter that exits mid-start waits for it rather than killing the spawn.
            # Starting from a thread while the caller works is safe with "spawn" and with the fork server
            # (a process of its own, started by exec, whose children copy its single thread); "fork" would
            # copy the caller's threads' state.
            self._starting = threading.Thread(target=self._start_cluster,
                                              args=(n_workers, processes, warm_up, tuple(preload)),
                                              name="creditsim-dask-start", daemon=False)
            self._starting.start()
        else:
            if not isinstance(client, Client):
                raise ConfigError(f"client must be a dask.distributed.Client, got {type(client).__name__}")
            self.client = client

    def _start_cluster(self, n_workers: int, processes: bool, warm_up: Callable[[], Any] | None,
                       preload: tuple[str, ...]) -> None:
        """Start the private LocalCluster and its client (on :attr:`_starting`); a failure is kept for
        :meth:`_ready` to raise on the caller's thread."""
        import dask
        from dask.distributed import Client, LocalCluster

        method = dask.config.get("distributed.worker.multiprocessing-method")
        fork_server = processes and _FORK_SERVER and method == "spawn"  # dask's default; a choice of yours stays
        if fork_server:
            method = "forkserver"

        # The nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536 by default, which makes glibc hand
        # memory back to the OS after every large free: our chunks allocate and free tens of MB per month,
        # and the trimming cost ~1.75x CPU per worker. Keep the rest of the default environment (one
        # BLAS/OpenMP thread per worker). The nanny writes these (and its PYTHONHASHSEED) into this process's
        # os.environ before it spawns (distributed 2026.8) and leaves them there: they are put back after the
        # start (_undo_spawn_environ), and again after each map and at close, since a worker the nanny
        # restarts (client.restart, a worker that died) writes them again.
        spawn_env = {k: v for k, v in dask.config.get("distributed.nanny.pre-spawn-environ", {}).items()
                     if k != "MALLOC_TRIM_THRESHOLD_"}
        # One numba thread per worker, set inside the worker only (nanny.environ): numba's default (one per
        # core) let the fused kernel run two threads per single-threaded worker (numba's OpenMP layer shares
        # libgomp with torch, so the count the engine reads could say 2), four threads on two cores, and a
        # chunk took 1.6x the CPU time of a plain one-thread process (2,000 scenarios: 5.0 s against 3.2 s).
        # It takes effect where the worker imports numba after the nanny applied it: not in a worker forked
        # from a fork server that preloaded creditsim, nor where a __main__ that imports numba at the top is
        # re-imported first. The guarantee is _one_thread_chunk's one torch thread, which is the fused
        # kernel's thread count.
        worker_env = {**dask.config.get("distributed.nanny.environ", {}), "NUMBA_NUM_THREADS": "1"}
        if fork_server:
            # A forked worker has its server's environment, this process's as it was when the server started
            # (perhaps a run ago), and never sees pre-spawn variables. So this process's variables as they are
            # now, then the pre-spawn ones, go into the worker's environment right after the fork (before it
            # unpickles any chunk code), and the nanny writes nothing into this process but its PYTHONHASHSEED.
            now = {k: v for k, v in os.environ.items() if k not in spawn_env and k != "PYTHONHASHSEED"}
            worker_env = {**now, **spawn_env, **worker_env}
            spawn_env = {}
        before = {k: os.environ.get(k) for k in (*spawn_env, "PYTHONHASHSEED")}
        self._spawn_undo = (before, spawn_env)
        try:
            if fork_server:
                _start_fork_server(preload)
            with dask.config.set({"distributed.nanny.pre-spawn-environ": spawn_env,
                                  "distributed.nanny.environ": worker_env,
                                  "distributed.worker.multiprocessing-method": method}):
                self._cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=processes,
                                             dashboard_address=None)
            self.client = Client(self._cluster)
            if processes:  # one BLAS thread (a forked worker loaded BLAS before the nanny could say so), warm-up
                self.client.run(_worker_start, warm_up)
            elif warm_up is not None:
                self.client.run(warm_up)
        except BaseException as exc:  # re-raised by _ready on the caller's thread
            self._failure = exc
        finally:
            self._undo_spawn_environ()

    def _undo_spawn_environ(self) -> None:
        """Put back the variables the nannies wrote into this process, and only those still holding the
        nanny's value: a variable the caller set meanwhile keeps the caller's value (unless it is the
        nanny's value too). Best effort: a nanny restarting its worker while this runs may write them
        again afterwards (the next map or close puts them back) or find them put back before its
        worker starts (that worker then keeps the one-thread guarantee of _one_thread_chunk only)."""
        if self._spawn_undo is None:
            return
        before, spawn_env = self._spawn_undo
        written = {k: str(v) for k, v in spawn_env.items()}
        for nanny in list(getattr(self._cluster, "workers", {}).values()):  # the event loop may change it
            written.update({k: str(v) for k, v in (getattr(nanny, "pre_spawn_env", None) or {}).items()})
        for k, old in before.items():
            now = os.environ.get(k)
            if k not in written or now != written[k] or now == old:
                continue
            if old is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = old

    def _ready(self) -> Any:
        """The client, once the private cluster (if any) has started."""
        if self._closed:
            raise ConfigError("this dask backend is closed; make a new one (creditsim.risk.backends.make_backend)")
        if self._starting is not None:
            self._starting.join()
            self._starting = None
        if self._failure is not None:
            raise self._failure
        return self.client

    def map(self, fn: ChunkFn, context: Any, tasks: Sequence[Any], sizes: Sequence[int],
            on_done: ProgressFn | None = None, collect: CollectFn | None = None) -> list[Any]:
        from dask.distributed import as_completed

        if self._closed:
            raise ConfigError("this dask backend is closed; make a new one (creditsim.risk.backends.make_backend)")
        results: list[Any] = [None] * len(tasks)
        if self._starting is not None:
            # the chunks run here fill the context's caches while the cluster's copy is made on other threads:
            # worker processes get the context as it is now, pickled on this thread before any chunk runs
            # (thread workers share the live object, as LocalBackend's threads do)
            hand = _Handover(self, fn, _Snapshot(context) if self._processes else context, tasks)
            self._run_while_starting(hand, fn, context, tasks, sizes, on_done, collect, results)
            futures, index = hand.futures, hand.index
        else:
            futures, index = self._submit(self._ready(), fn, context, tasks, 0)
        try:
            for fut in as_completed(futures):
                i = index[fut.key]
                result = fut.result()  # re-raises the worker's exception (CreditSimError included)
                fut.release()  # the worker may free its copy now (a run's results would otherwise stay twice)
                results[i] = result if collect is None else collect(i, result)
                if on_done is not None:
                    on_done(sizes[i])
        except BaseException:
            self.client.cancel(futures)  # all of them: a finished or failed future's data would stay on the cluster
            raise
        finally:
            self._undo_spawn_environ()  # a worker restarted meanwhile wrote the nanny's variables again
        return results

    def _submit(self, client: Any, fn: ChunkFn, context: Any, tasks: Sequence[Any],
                first: int) -> tuple[list[Any], dict[str, int]]:
        """Submit ``tasks[first:]`` to the cluster: their futures and each one's task index."""
        if first >= len(tasks):
            return [], {}
        # hash=False: a key of its own per map; a content key is shared by two maps of an equal context, and the
        # first map's release of it could cancel the second's chunks ("lost dependencies")
        ctx = client.scatter(context, broadcast=True, hash=False)
        name = getattr(fn, "__name__", "chunk")  # the tasks keep the chunk function's name (dashboards, logs)
        futures = [client.submit(_one_thread_chunk, fn, ctx, tasks[i], key=f"{name}-{uuid.uuid4().hex}")
                   for i in range(first, len(tasks))]
        return futures, {f.key: first + k for k, f in enumerate(futures)}

    def _run_while_starting(self, hand: "_Handover", fn: ChunkFn, context: Any, tasks: Sequence[Any],
                            sizes: Sequence[int], on_done: ProgressFn | None, collect: CollectFn | None,
                            results: list[Any]) -> None:
        """While the private cluster starts, run chunks here, in task order, with one torch thread (as a
        worker runs them); ``hand`` gives the cluster the chunks not yet begun the moment it is up. Returns
        once the start has ended and the rest is submitted (the start's error raised here, as before);
        a chunk that fails here is raised after the start has ended (the nanny's variables put back) and
        anything submitted is cancelled."""
        from creditsim.threads import serial_torch

        try:
            with serial_torch():
                while (i := hand.claim()) is not None:
                    result = fn(context, tasks[i])
                    results[i] = result if collect is None else collect(i, result)
                    if on_done is not None:
                        on_done(sizes[i])
        except BaseException:
            hand.drop()
            hand.finished.wait()
            self._starting = None  # (ended: the hand-over thread joined it) a next map runs nothing here
            if hand.futures:
                self.client.cancel(hand.futures)
            raise
        hand.finished.wait()
        self._ready()  # the start's own error, if it failed
        if hand.error is not None:
            raise hand.error

    def close(self) -> None:
        """Shut the private cluster down on a thread (~0.6 s that the caller's results need not wait
        for); it is not a daemon, so the interpreter waits for it before exiting. A client passed in is
        left open. Closing twice does nothing; :meth:`map` after closing is refused."""
        if self._closed:
            return
        self._closed = True
        if self._starting is None:  # (a start still running puts them back itself when it ends)
            self._undo_spawn_environ()
        if self._owned:
            threading.Thread(target=self._shut_down, name="creditsim-dask-close", daemon=False).start()

    def _shut_down(self) -> None:
        starting = self._starting
        if starting is not None:  # a start that failed left its error with the caller (map); close what exists
            starting.join()
        try:
            if self.client is not None:
                self.client.close()
        finally:
            if self._cluster is not None:
                self._cluster.close()


#: the workers fork from a fork server on Linux only, where CPython 3.14 makes it the default start method;
#: macOS keeps spawning (forking a process that loaded the system's frameworks is not safe there)
_FORK_SERVER = sys.platform.startswith("linux") and "forkserver" in multiprocessing.get_all_start_methods()


class _Snapshot:
    """A chunk context pickled when made (with dask's own pickling: pickle, cloudpickle where pickle cannot),
    unpickled once where the cluster stores it (``value``); :func:`_one_thread_chunk` hands ``value`` on."""

    def __init__(self, context: Any):
        from distributed.protocol import pickle as dask_pickle

        self._blob = dask_pickle.dumps(context)
        self.value = context

    def __getstate__(self) -> bytes:
        return self._blob

    def __setstate__(self, blob: bytes) -> None:
        from distributed.protocol import pickle as dask_pickle

        self._blob = blob
        self.value = dask_pickle.loads(blob)


class _Handover:
    """The chunks of one :meth:`DaskBackend.map` shared between the calling thread, which runs them in task
    order while the private cluster starts (:meth:`claim`), and a thread that waits for the start and then
    submits every chunk not yet claimed at once, so the workers need not wait for the caller's chunk in
    hand. ``futures`` / ``index`` are the submitted ones (set before ``finished``); ``error`` a failure to
    submit."""

    def __init__(self, backend: DaskBackend, fn: ChunkFn, context: Any, tasks: Sequence[Any]):
        self._lock = threading.Lock()
        self._next = 0
        self._n = len(tasks)
        self._handed = False
        self._dropped = False
        self.futures: list[Any] = []
        self.index: dict[str, int] = {}
        self.error: BaseException | None = None
        self.finished = threading.Event()
        starting = backend._starting
        assert starting is not None

        def hand_over() -> None:
            starting.join()
            try:
                with self._lock:
                    self._handed, first = True, self._next
                    submit = not self._dropped
                if submit and backend._failure is None and not backend._closed:
                    self.futures, self.index = backend._submit(backend.client, fn, context, tasks, first)
            except BaseException as exc:  # raised on the calling thread
                self.error = exc
            finally:
                self.finished.set()

        threading.Thread(target=hand_over, name="creditsim-dask-handover", daemon=True).start()

    def claim(self) -> int | None:
        """The next chunk for the calling thread, or None once the cluster took the rest (or none is left)."""
        with self._lock:
            if self._handed or self._next >= self._n:
                return None
            self._next += 1
            return self._next - 1

    def drop(self) -> None:
        """The map failed here (its claiming loop has ended): submit nothing, unless already submitted."""
        with self._lock:
            self._dropped = True


def _start_fork_server(preload: tuple[str, ...]) -> None:
    """Start this process's ``multiprocessing`` fork server, importing ``distributed`` and ``preload``,
    unless one is running (then it is used as it is). Called before the nanny writes its pre-spawn
    variables into ``os.environ``, so the server has this process's own environment."""
    from multiprocessing import forkserver

    # Ctrl-C ignored while the server imports (a server killed mid-import broke the next start): fork_server_begin
    multiprocessing.get_context("forkserver").set_forkserver_preload(
        ["creditsim.risk.fork_server_begin", "distributed", *preload, "creditsim.risk.fork_server_end"])
    forkserver.ensure_running()


def _worker_start(warm_up: Callable[[], Any] | None) -> None:
    """First thing a private cluster's worker process runs: one BLAS thread (a worker forked from the fork
    server loaded OpenBLAS there, before the nanny's OPENBLAS_NUM_THREADS=1, and would run one per core
    beside the other worker), then ``warm_up``."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")
    if warm_up is not None:
        warm_up()


def _one_thread_chunk(fn: ChunkFn, context: Any, task: Any) -> Any:
    """A chunk on a dask worker, with one torch (and so one fused-kernel) thread: a worker's parallelism
    is its processes and task threads, and on a cluster passed in (whose workers creditsim did not start)
    the thread count the engine reads can otherwise exceed the worker's share of the cores."""
    from creditsim.threads import serial_torch

    if isinstance(context, _Snapshot):
        context = context.value
    with serial_torch():
        return fn(context, task)


def make_backend(backend: str, client: Any | None = None, warm_up: Callable[[], Any] | None = None,
                 threads: int = 1, preload: Sequence[str] = ()) -> LocalBackend | DaskBackend:
    """Backend by name: ``"local"`` or ``"dask"`` (``client``, ``warm_up`` and ``preload`` only for dask:
    see :class:`DaskBackend`; ``threads`` only for local: see :class:`LocalBackend`)."""
    if backend == "local":
        if client is not None:
            raise ConfigError("client is only used with backend='dask'")
        return LocalBackend(threads)
    if backend == "dask":
        return DaskBackend(client=client, warm_up=warm_up, preload=preload)
    raise ConfigError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")


def run_chunks(backend: LocalBackend | DaskBackend, fn: ChunkFn, context: Any, tasks: Sequence[Any],
               sizes: Sequence[int], on_done: ProgressFn | None = None,
               collect: CollectFn | None = None) -> list[Any]:
    """``backend.map`` with the argument checks in one place."""
    if len(tasks) != len(sizes):
        raise ConfigError(f"{len(tasks)} tasks but {len(sizes)} sizes")
    return backend.map(fn, context, tasks, sizes, on_done, collect)
