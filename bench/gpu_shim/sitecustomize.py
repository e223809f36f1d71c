"""Loaded by bench/gpu_check.sh only (PYTHONPATH): the GPU image's numba-cuda still registers an overload for
``numpy.row_stack``, which numpy 2.5 removed, so its first kernel compile fails (seen 2026-12-04). Restore the
alias (``row_stack`` was always ``vstack``) until the image's numba-cuda is updated. Not part of the library:
without it, creditsim.loans.fused_cuda.available() reports the failure and the engine keeps its torch step."""

import numpy as np

if not hasattr(np, "row_stack"):
    np.row_stack = np.vstack
