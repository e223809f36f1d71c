"""The build of the package's three optional C++ kernels; everything else about the package is in pyproject.toml.

The trajectory model's value sampler and its noise (creditsim/loans/_diffusion_chain.cpp, wrapped by
creditsim.loans.diffusion_kernel and creditsim.loans.value_noise), its attention decoding step (creditsim/nn/_attention_step.cpp, wrapped
by creditsim.nn.attention_kernel) and the feed-forward half of its blocks' decoding step
(creditsim/nn/_mlp_step.cpp, wrapped by creditsim.nn.mlp_kernel); those modules say why they are compiled
and how their numbers stay reproducible. Decision: a setup.py, not pyproject's ``[tool.setuptools]
ext-modules``, which setuptools still marks experimental and "likely to change" -- a build that a future
setuptools could break.

- ``optional=True``: where no C++ compiler builds them the install goes on and all run in torch, the
  same values to float32 rounding.
- ``-ffp-contract=off``: every multiply-add in them is an explicit fmaf, so each instruction set (picked
  at load) gives the same bits.
- ``-fno-wrapv`` undoes the ``-fwrapv`` of CPython's own flags, which kept the tile loops from vectorising
  (4.4x slower).
"""

from setuptools import Extension, setup

_FLAGS = ["-O3", "-fno-wrapv", "-ffp-contract=off", "-fno-math-errno"]
_HEADER = ["creditsim/_kernel_math.h"]


def _kernel(name: str, source: str) -> Extension:
    return Extension(name, [source], depends=_HEADER, language="c++", optional=True, extra_compile_args=_FLAGS)


setup(ext_modules=[
    _kernel("creditsim.loans._diffusion_chain", "creditsim/loans/_diffusion_chain.cpp"),
    _kernel("creditsim.nn._attention_step", "creditsim/nn/_attention_step.cpp"),
    _kernel("creditsim.nn._mlp_step", "creditsim/nn/_mlp_step.cpp"),
])
