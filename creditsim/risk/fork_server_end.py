"""Imported last by the dask backend's fork server: the SIGINT handler the server found is put back (see
:mod:`creditsim.risk.fork_server_begin`). CPython's server then ignores SIGINT itself and gives each
process it forks the handler it found here."""

import signal

from creditsim.risk.fork_server_begin import previous

signal.signal(signal.SIGINT, previous)
