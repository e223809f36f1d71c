"""The execution backends: task order, progress, argument checks, and the private dask cluster's start,
worker environment and shut-down."""

from __future__ import annotations

import os
import threading
from functools import partial
from importlib import import_module

import pytest

from creditsim.errors import ConfigError
from creditsim.risk.backends import _FORK_SERVER, DaskBackend, LocalBackend, make_backend, run_chunks


def _square(context: int, task: int) -> int:
    return context * task * task


def _worker_threads() -> tuple[str | None, int]:
    import numba

    return os.environ.get("NUMBA_NUM_THREADS"), numba.get_num_threads()


def _has_simulate() -> bool:
    import sys

    return "creditsim.risk.simulate" in sys.modules


def _torch_threads(context: object, task: object) -> int:
    import torch

    return torch.get_num_threads()


def _where(context: object, task: int) -> tuple[int, int, int]:
    import torch

    return task, os.getpid(), torch.get_num_threads()


_THREAD_VARS = ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                "MALLOC_TRIM_THRESHOLD_", "PYTHONHASHSEED")


def test_local_backend_keeps_task_order_and_reports_progress():
    done: list[int] = []
    out = run_chunks(LocalBackend(), _square, 2, [3, 1, 2], [30, 10, 20], on_done=done.append)
    assert out == [18, 2, 8] and done == [30, 10, 20]
    seen: list[tuple[int, int]] = []
    out = run_chunks(LocalBackend(), _square, 2, [3, 1, 2], [30, 10, 20], collect=lambda i, r: seen.append((i, r)))
    assert out == [None] * 3 and seen == [(0, 18), (1, 2), (2, 8)]
    with pytest.raises(ConfigError, match="3 tasks but 2 sizes"):
        run_chunks(LocalBackend(), _square, 2, [3, 1, 2], [30, 10])
    with pytest.raises(ConfigError, match="client is only used with backend='dask'"):
        make_backend("local", client=object())
    with pytest.raises(ConfigError, match="backend must be one of"):
        make_backend("spark")


def _slow_square(context: float, task: int) -> tuple[int, int, str]:
    """``(task ** 2, torch threads, thread name)``; later tasks finish first (they sleep less)."""
    import time

    import torch

    time.sleep(context * (5 - task))
    if task == 7:
        raise ValueError("chunk 7 failed")
    return task * task, torch.get_num_threads(), threading.current_thread().name


def _fail_late_first(context: object, task: int) -> int:
    """Tasks 0 and 1 fail; task 0 fails last."""
    import time

    time.sleep(0.3 if task == 0 else 0.0)
    if task < 2:
        raise ValueError(f"chunk {task} failed")
    return task


def test_on_threads_the_error_raised_is_the_first_failing_chunk_in_task_order():
    """Chunk 1 fails first, chunk 0 later: the error is chunk 0's, as one thread would raise it."""
    with pytest.raises(ValueError, match="chunk 0 failed"):
        LocalBackend(threads=2).map(_fail_late_first, None, [0, 1, 2, 3], [1] * 4)
    with pytest.raises(ValueError, match="chunk 0 failed"):
        LocalBackend(threads=1).map(_fail_late_first, None, [0, 1, 2, 3], [1] * 4)
    # collect's error on a chunk before the first failing one comes first, as on one thread
    def refuse(i: int, result: object) -> None:
        raise RuntimeError(f"collect refused task {i}")

    for threads in (1, 2):
        with pytest.raises(RuntimeError, match="collect refused task 0"):
            LocalBackend(threads=threads).map(_fail_late_first, None, [2, 1, 0], [1] * 3, collect=refuse)


def test_local_backend_runs_chunks_side_by_side_on_one_torch_thread_each():
    """threads > 1: chunks on Python threads, each with one torch thread; results in task order whatever
    order they finish in; collect and on_done on the calling thread; the caller's count comes back."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        seen: list[tuple[int, str]] = []
        done: list[int] = []
        out = LocalBackend(threads=2).map(_slow_square, 0.02, [0, 1, 2, 3], [5, 6, 7, 8], on_done=done.append,
                                          collect=lambda i, r: seen.append((i, threading.current_thread().name)) or r)
        assert [r[0] for r in out] == [0, 1, 4, 9]
        assert {r[1] for r in out} == {1}, "a chunk on a thread ran with more than one torch thread"
        assert {r[2] for r in out} <= {"creditsim-chunk_0", "creditsim-chunk_1"} and len({r[2] for r in out}) == 2
        assert sorted(i for i, _ in seen) == [0, 1, 2, 3] and {name for _, name in seen} == {"MainThread"}
        assert sorted(done) == [5, 6, 7, 8]
        assert torch.get_num_threads() == 2
        # one chunk, or threads=1: on the calling thread with the caller's torch count
        assert LocalBackend(threads=2).map(_slow_square, 0.0, [3], [1]) == [(9, 2, "MainThread")]
        with pytest.raises(ValueError, match="chunk 7 failed"):
            LocalBackend(threads=2).map(_slow_square, 0.0, [1, 7, 2], [1, 1, 1])
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
    for bad in (0, 1.5, True):
        with pytest.raises(ConfigError, match="threads must be an integer >= 1"):
            LocalBackend(threads=bad)
    assert LocalBackend(threads=64).threads == 8


def test_private_cluster_workers_run_chunks_on_one_thread_and_results_come_back_in_order():
    """The private LocalCluster's workers run each chunk with one torch thread, the fused kernel's thread
    count (numba's default of one per core let it run two threads in every single-threaded worker), and
    get the nanny's NUMBA_NUM_THREADS=1; chunks come back in task order."""
    env_before = {k: os.environ.get(k) for k in _THREAD_VARS}
    backend = DaskBackend(warm_up=partial(import_module, "creditsim.risk.simulate"))
    try:
        done: list[int] = []
        assert backend.map(_square, 3, list(range(6)), [1] * 6, on_done=done.append) == [3 * i * i for i in range(6)]
        assert done == [1] * 6
        env = backend.client.run(_worker_threads)
        # numba takes the variable where it is imported after the nanny set it; a worker forked from a fork
        # server that preloaded numba (another test's backend may have started it) keeps the server's count:
        # the chunk's one torch thread is the guarantee, there and on clusters passed in
        assert len(env) == 2 and all(v[0] == "1" for v in env.values()), env
        on_workers = backend.map(_where, None, [0, 1, 2], [1] * 3)
        assert all(pid != os.getpid() and threads == 1 for _, pid, threads in on_workers), on_workers
        # the warm-up ran on every worker before the first chunk
        assert all(backend.client.run(_has_simulate).values())
    finally:
        backend.close()
    closing = [t for t in threading.enumerate() if t.name == "creditsim-dask-close"]
    for t in closing:  # close returns at once; the shut-down finishes on its thread
        t.join(timeout=60)
    assert backend.client.status == "closed"
    # the workers' settings stay in the workers: this process keeps its own (numba would refuse to change
    # its thread count here once its threads run)
    assert {k: os.environ.get(k) for k in _THREAD_VARS} == env_before
    backend.close()  # a second close starts no second shut-down
    assert not [t for t in threading.enumerate() if t.name == "creditsim-dask-close"]
    with pytest.raises(ConfigError, match="this dask backend is closed"):
        backend.map(_square, 1, [1], [1])



def test_a_restarted_worker_does_not_leave_the_nannys_variables_in_this_process():
    """A nanny that restarts its worker writes its pre-spawn variables (one BLAS/OpenMP thread, its
    PYTHONHASHSEED) into this process's os.environ again: the next map puts them back, and so does close;
    a variable the caller set meanwhile keeps the caller's value."""
    env_before = {k: os.environ.get(k) for k in _THREAD_VARS}
    backend = DaskBackend()
    try:
        assert backend.map(_square, 2, [1, 2], [1, 1]) == [2, 8]
        assert {k: os.environ.get(k) for k in _THREAD_VARS} == env_before
        backend.client.restart()
        leaked = {k for k in _THREAD_VARS if os.environ.get(k) != env_before[k]}
        assert leaked, "distributed no longer writes the nanny's variables here: this guard may go"
        assert backend.map(_square, 2, [3], [1]) == [18]
        assert {k: os.environ.get(k) for k in _THREAD_VARS} == env_before
        backend.client.restart()
        mine = sorted(leaked)[0]
        os.environ[mine] = "caller's"
        backend.close()
        assert os.environ[mine] == "caller's"
        assert {k: os.environ.get(k) for k in _THREAD_VARS if k != mine} == \
            {k: v for k, v in env_before.items() if k != mine}
    finally:
        backend.close()
        for k, v in env_before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    for t in [t for t in threading.enumerate() if t.name == "creditsim-dask-close"]:
        t.join(timeout=60)

def test_the_caller_runs_the_first_chunks_while_the_private_cluster_starts():
    """map runs chunks in this process (one torch thread, task order) until the private cluster is up and
    gives the cluster the rest; the workers are forked from one fork server (they share a parent that is
    not this process), and a map on a running cluster runs nothing here."""
    import torch

    before = torch.get_num_threads()
    backend = DaskBackend(preload=("creditsim.risk.simulate",))
    try:
        first = backend.map(_where, None, list(range(4)), [1] * 4)
        assert [r[0] for r in first] == [0, 1, 2, 3]
        assert first[0][1] == os.getpid() and first[0][2] == 1, first  # the cluster was still starting
        assert torch.get_num_threads() == before
        second = backend.map(_where, None, list(range(4)), [1] * 4)
        assert [r[0] for r in second] == [0, 1, 2, 3]
        assert all(pid != os.getpid() and threads == 1 for _, pid, threads in second), second
        parents = set(backend.client.run(os.getppid).values())
        if _FORK_SERVER:
            assert len(parents) == 1 and os.getpid() not in parents, parents
    finally:
        backend.close()
    for t in [t for t in threading.enumerate() if t.name == "creditsim-dask-close"]:
        t.join(timeout=60)


def _timed(context: object, task: int) -> tuple[int, int, float, float]:
    import time

    t0 = time.time()
    time.sleep(context)  # type: ignore[arg-type]
    return task, os.getpid(), t0, time.time()


def test_the_cluster_takes_the_rest_while_the_caller_finishes_its_chunk():
    """Once the private cluster is up, the chunks not yet begun go to it at once: the workers do not wait
    for the chunk the caller has in hand."""
    backend = DaskBackend(warm_up=partial(import_module, "creditsim.threads"))  # torch: not at the first chunk
    try:
        out = backend.map(_timed, 0.8, list(range(16)), [1] * 16)  # room for a slow start on a loaded machine
    finally:
        backend.close()
    assert [r[0] for r in out] == list(range(16))
    here = [r for r in out if r[1] == os.getpid()]
    there = [r for r in out if r[1] != os.getpid()]
    assert here and there, out
    assert min(r[2] for r in there) < max(r[3] for r in here), out  # a worker began before the caller's last ended
    for t in [t for t in threading.enumerate() if t.name == "creditsim-dask-close"]:
        t.join(timeout=60)


def _remember(context: dict, task: int) -> tuple[int, list[int]]:
    import time

    context["seen"].append(task)  # a cache the chunk fills, as the engine's contractual history
    time.sleep(0.5)
    return os.getpid(), list(context["seen"])


def test_the_cluster_gets_the_context_as_it_was_before_the_callers_chunks():
    """The caller's chunks fill the context's caches while the cluster's copy is made: the copy is taken
    before they run (pickled on the calling thread), so the workers never see a half-filled one."""
    context: dict = {"seen": []}
    backend = DaskBackend(warm_up=partial(import_module, "creditsim.threads"))
    try:
        out = backend.map(_remember, context, list(range(16)), [1] * 16)
    finally:
        backend.close()
    here = {seen[-1] for pid, seen in out if pid == os.getpid()}
    assert here and len(here) < 16, out
    assert sorted(context["seen"]) == sorted(here)
    for pid, seen in out:
        if pid != os.getpid():
            assert not here & set(seen), (here, seen)  # the workers' copy holds none of the caller's tasks
    for t in [t for t in threading.enumerate() if t.name == "creditsim-dask-close"]:
        t.join(timeout=60)


def _fail_here(context: int, task: int) -> int:
    if os.getpid() == context:
        raise ValueError(f"chunk {task} failed in the caller")
    return task


def test_a_chunk_that_fails_in_the_caller_is_raised_after_the_start_ends():
    """A chunk the caller runs during the start raises as it would on a worker, once the start has ended:
    the nanny's variables are out of this process again, and nothing is left on the cluster."""
    env_before = {k: os.environ.get(k) for k in _THREAD_VARS}
    backend = DaskBackend()
    try:
        with pytest.raises(ValueError, match="chunk 0 failed in the caller"):
            backend.map(_fail_here, os.getpid(), list(range(6)), [1] * 6)
        assert {k: os.environ.get(k) for k in _THREAD_VARS} == env_before
        assert backend.client.status == "running"
        assert backend.map(_square, 2, [1, 2], [1, 1]) == [2, 8]  # the cluster is still usable
        assert all(pid != os.getpid() for _, pid, _ in backend.map(_where, None, [0, 1, 2], [1] * 3))
    finally:
        backend.close()
    for t in [t for t in threading.enumerate() if t.name == "creditsim-dask-close"]:
        t.join(timeout=60)


_FORK_SERVER_ENV_SCRIPT = """
import multiprocessing, os, sys
import dask, distributed
from creditsim.risk.backends import DaskBackend

def sigint():
    import signal
    handler = signal.getsignal(signal.SIGINT)
    return "python" if handler is signal.default_int_handler else ("ignored" if handler == signal.SIG_IGN else "other")

def report(queue):
    queue.put((os.environ.get("CREDITSIM_NANNY_MARKER"), sigint()))

def where(context, task):
    return os.environ.get("CREDITSIM_CALLER_VAR")

if __name__ == "__main__":
    marker = {**dask.config.get("distributed.nanny.pre-spawn-environ", {}), "CREDITSIM_NANNY_MARKER": "nanny"}
    out = []
    with dask.config.set({"distributed.nanny.pre-spawn-environ": marker}):
        for value in ("first", "second"):  # the second cluster forks from the server the first one started
            os.environ["CREDITSIM_CALLER_VAR"] = value
            backend = DaskBackend(preload=("creditsim.risk.simulate",))
            backend.map(where, None, [0], [1])
            out.append(sorted(set(backend.client.run(lambda: os.environ.get("CREDITSIM_CALLER_VAR")).values())))
            backend.close()
    ctx = multiprocessing.get_context("forkserver")
    queue = ctx.SimpleQueue()
    child = ctx.Process(target=report, args=(queue,))
    child.start()
    child.join(timeout=60)
    marker, child_sigint = queue.get()
    print(out, marker, child_sigint == sigint(), "CREDITSIM_NANNY_MARKER" in os.environ)
"""


@pytest.mark.skipif(not _FORK_SERVER, reason="the workers fork from a fork server on Linux only")
def test_the_fork_server_has_this_processs_environment_and_the_workers_its_current_one(tmp_path):
    """In a fresh process (this one's fork server may be up already): the server does not carry the nanny's
    pre-spawn variables to other users of it, its children take Ctrl-C as this process does, and each
    cluster's workers get this process's variables as they are when it starts, not as they were when the
    server started."""
    import subprocess
    import sys

    script = tmp_path / "fork_server_env.py"
    script.write_text(_FORK_SERVER_ENV_SCRIPT)
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip().splitlines()[-1] == "[['first'], ['second']] None True False", out.stdout


def test_a_cluster_that_fails_to_start_raises_in_map(monkeypatch):
    import dask.distributed

    def refuse(*args, **kwargs):
        raise OSError("no ports left")

    monkeypatch.setattr(dask.distributed, "LocalCluster", refuse)
    backend = DaskBackend()
    with pytest.raises(OSError, match="no ports left"):
        backend.map(_square, 1, [1], [1])
    backend.close()


def test_a_client_that_is_passed_in_stays_open():
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        backend = make_backend("dask", client=client)
        assert backend.map(_square, 1, [2, 3], [1, 1]) == [4, 9]
        # collect sees each result with its task index as it arrives; the list holds what collect returned
        seen: dict[int, int] = {}
        collect = lambda i, r: seen.setdefault(i, r) + 1  # noqa: E731
        assert backend.map(_square, 1, [2, 3, 4], [1] * 3, collect=collect) == [5, 10, 17]
        assert seen == {0: 4, 1: 9, 2: 16}
        # chunks run with one torch (fused-kernel) thread on workers creditsim did not start
        assert backend.map(_torch_threads, None, [0, 1], [1, 1]) == [1, 1]
        backend.close()
        assert client.status == "running"
        assert client.submit(_square, 1, 4).result() == 16
    with pytest.raises(ConfigError, match="client must be a dask.distributed.Client"):
        DaskBackend(client=object())


def test_simulate_closes_the_backend_when_the_macro_draw_fails(monkeypatch):
    """The backend starts before the macro paths are drawn (a private cluster starts meanwhile); a draw
    that fails still closes it."""
    import creditsim.risk.simulate as sim
    from creditsim.deal.config import WaterfallConfig
    from creditsim.errors import DataError
    from creditsim.transitions.synthetic import LoanTapeGenerator

    tape, _ = LoanTapeGenerator(50, 1, random_seed=3).generate()
    deal = WaterfallConfig(name="T", tranches=[{"name": "A", "balance": 90, "coupon": 0.05},
                                               {"name": "Equity", "balance": 10, "equity": True}])

    made: list[LocalBackend] = []

    class Recording(LocalBackend):
        closed = False

        def close(self) -> None:
            self.closed = True

    def make(backend, client=None, warm_up=None, threads=1, preload=()):
        made.append(Recording(threads))
        return made[-1]

    def broken(*args, **kwargs):
        raise DataError("macro paths: column gdp_growth is missing")

    monkeypatch.setattr(sim, "make_backend", make)
    monkeypatch.setattr(sim, "_macro_draw", broken)
    with pytest.raises(DataError, match="gdp_growth is missing"):
        sim.simulate(tape, deal, n_simulations=4, horizon=6, progress=False)
    assert len(made) == 1 and made[0].closed
