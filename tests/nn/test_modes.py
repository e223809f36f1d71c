"""eval_modes: every submodule in eval mode inside the block, each module's own mode back after."""

from __future__ import annotations

import pytest
import torch

from creditsim.nn.modes import eval_modes


def _model() -> torch.nn.Module:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Dropout(0.5), torch.nn.Linear(2, 1))
    model[2].eval()  # a submodule the caller froze in eval mode
    return model


def test_eval_inside_and_each_modules_mode_back_after_even_on_error():
    a, b = _model(), _model()
    before = [m.training for m in (*a.modules(), *b.modules())]
    assert before.count(False) == 2
    with pytest.raises(RuntimeError, match="inside"):
        with eval_modes([a, b]):
            assert not any(m.training for m in (*a.modules(), *b.modules()))
            raise RuntimeError("inside")
    assert [m.training for m in (*a.modules(), *b.modules())] == before


def test_models_already_in_eval_mode_are_not_written():
    """Threads generating inside one block must not see flags flip: nothing is written when nothing trains."""
    model = _model().eval()

    class Watch(torch.nn.Module):
        writes = 0

        def __setattr__(self, name, value):
            if name == "training":
                type(self).writes += 1
            super().__setattr__(name, value)

    watched = Watch().eval()
    Watch.writes = 0
    with eval_modes([model, watched]):
        pass
    assert Watch.writes == 0 and not any(m.training for m in model.modules())
