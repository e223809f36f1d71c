"""Fixtures shared by the CLI tests."""

from __future__ import annotations

import pytest


@pytest.fixture()
def simulate_inputs(tmp_path, small_deal_yaml):
    """``make(n_loans) -> (tape, deal)``: a synthetic tape written to parquet and a small CLO deal file, the
    inputs of a ``creditsim simulate`` run."""

    def make(n_loans: int):
        from creditsim.transitions.synthetic import LoanTapeGenerator

        loans, _ = LoanTapeGenerator(n_loans, 1, random_seed=3).generate()
        tape = tmp_path / "loans.parquet"
        loans.to_parquet(tape)
        deal = tmp_path / "deal.yaml"
        deal.write_text(small_deal_yaml("Test CLO"))
        return tape, deal

    return make
