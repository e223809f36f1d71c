"""Imported last by the dask backend's fork server: Python's own SIGINT handler back (see
:mod:`creditsim.risk._fork_server_begin`). CPython's server then ignores SIGINT itself and gives each
process it forks the handler it found here."""

import signal

signal.signal(signal.SIGINT, signal.default_int_handler)
