"""Imported first by the fork server the dask backend starts (:func:`creditsim.risk.backends._start_fork_server`).

A Ctrl-C in a terminal reaches the whole process group, the fork server included; CPython's server ignores
SIGINT only once its preloads are imported (torch, numba and creditsim: ~3 s). One that dies mid-import is
still taken for alive by ``forkserver.ensure_running`` while it exits, so a run retried at once after the
Ctrl-C failed to start its workers (``EOFError`` in ``popen_forkserver``). The server ignores SIGINT from
the start instead; :mod:`creditsim.risk.fork_server_end`, imported last, puts back the handler it found, so
the processes forked from the server take Ctrl-C as spawned ones would.
"""

import signal

#: the handler the server found (Python's, or SIG_IGN in a process started with Ctrl-C ignored): put back last
previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
