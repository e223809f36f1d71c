"""One-page PDF summary (creditsim.risk.summary_pdf): one A4 landscape page that shows the library's own
numbers, the same bytes for the same run, written atomically, one-line errors; `report --pdf` and
`simulate --pdf`.

The page text is read back from the PDF itself (no pdftotext here): matplotlib embeds text with a Type 3
font whose character codes are the characters, so the strings of the page's content stream are the text
drawn (split where a glyph outside Latin-1 -- an en dash, a ligature -- is drawn on its own).
"""

from __future__ import annotations

import re
import signal
import threading
import zlib
from pathlib import Path

import numpy as np
import pytest

from creditsim.errors import ConfigError
from creditsim.fileio import FAULT_ENV
from creditsim.risk.results import SimulationResults, TrancheResult
from creditsim.risk.summary_pdf import write_summary_pdf


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, small_deal_yaml) -> Path:
    """A small real run written by `creditsim simulate ... --pdf` (200 scenarios: enough for a 99 % tail)."""
    from creditsim.cli import main
    from creditsim.transitions.synthetic import LoanTapeGenerator

    root = tmp_path_factory.mktemp("summary")
    loans, _ = LoanTapeGenerator(150, 1, random_seed=3).generate()
    tape = root / "loans.parquet"
    loans.to_parquet(tape)
    deal = root / "deal.yaml"
    deal.write_text(small_deal_yaml("Summary CLO", ("Senior", "Mezz", "Junior", "Equity")))
    out = root / "run"
    with pytest.raises(SystemExit) as e:
        main(["simulate", "--tape", str(tape), "--deal", str(deal), "--n-sims", "200", "--macro", "synthetic",
              "--engine", "markov", "--seed", "7", "--horizon", "18", "--chunk-size", "100", "--out", str(out),
              "--pdf"])
    assert e.value.code == 0
    return out


# ---------------------------------------------------------------- reading a PDF back
def _unescape(s: bytes) -> bytes:
    return re.sub(rb"\\([0-7]{1,3}|.)", lambda m: bytes([int(m.group(1), 8)]) if m.group(1)[:1].isdigit()
                  else m.group(1), s, flags=re.S)


def page_texts(pdf: bytes) -> list[str]:
    """The strings drawn on the page, one per text-showing operator (Tj / TJ), in drawing order."""
    texts = []
    # The end-of-line before "endstream" is left to the inflater (unused data after the stream's end):
    # a compressed stream may itself end in a "\r" byte (about 2 % of pages), which a pattern taking
    # "\r?\n" off the end would cut, dropping that whole stream's text.
    for m in re.finditer(rb"stream\r?\n(.*?)endstream", pdf, re.S):
        inflater = zlib.decompressobj()
        try:
            content = inflater.decompress(m.group(1))
        except zlib.error:
            continue
        if not inflater.eof:
            continue
        for t in re.finditer(rb"\[((?:\\.|[^\\\]])*)\]\s*TJ|\(((?:\\.|[^\\)])*)\)\s*Tj", content, re.S):
            parts = re.findall(rb"\(((?:\\.|[^\\)])*)\)", t.group(1)) if t.group(1) is not None else [t.group(2)]
            texts.append(b"".join(_unescape(p) for p in parts).decode("latin-1"))
    return texts


def n_pages(pdf: bytes) -> int:
    return len(re.findall(rb"/Type\s*/Page\b(?!s)", pdf))


def _in_order(expected: list[str], row: list[str]) -> bool:
    """Whether ``expected`` are cells of ``row`` in this order (other cells may lie between them)."""
    it = iter(row)
    return all(any(cell == x for cell in it) for x in expected)


def _pct(v: float) -> str:
    return f"{v * 100:.2f}%"


# ---------------------------------------------------------------- the page
def test_simulate_pdf_puts_a_valid_one_page_a4_landscape_summary_in_the_run(run_dir):
    pdf = (run_dir / "summary.pdf").read_bytes()
    assert pdf.startswith(b"%PDF-") and pdf.rstrip().endswith(b"%%EOF")
    assert n_pages(pdf) == 1
    box = re.search(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", pdf)
    assert box and (float(box.group(1)), float(box.group(2))) == pytest.approx((841.68, 595.44), abs=0.5)
    assert b"CreationDate" not in pdf
    texts = page_texts(pdf)
    settings = SimulationResults.load(run_dir).settings
    headline = " | ".join(texts)
    for part in ("Summary CLO", "deal.yaml", "loans.parquet (150 loans)", f"Cut-off: {settings['cutoff'][:7]}",
                 "200 simulations over 18 months", "Seed: 7", "Macro: synthetic",
                 f"Run: {settings['created'][:10]}"):
        assert part in headline, part


def test_page_shows_the_library_numbers_row_by_row(run_dir, tmp_path):
    r = SimulationResults.load(run_dir)
    texts = page_texts(write_summary_pdf(r, tmp_path / "s.pdf").read_bytes())
    risk = r.risk_table()
    # headline and pool row: EL, VaR 99 %, CVaR 99 % of the risk table (200 scenarios: the tail is shown)
    pool = texts.index("Pool")
    assert texts[pool + 2: pool + 5] == [_pct(risk.loc[k, "all"]) for k in ("expected_loss", "var_99", "cvar_99")]
    scenarios = [c for c in risk.columns if c != "all"]
    assert len(scenarios) > 1
    assert texts[pool + 5: pool + 5 + len(scenarios)] == [_pct(risk.loc["expected_loss", c]) for c in scenarios]
    table = r.tranche_table()
    starts = [texts.index(t.name) for t in r.tranche_results] + [texts.index("Scenarios")]
    for t, start, stop in zip(r.tranche_results, starts[:-1], starts[1:]):
        row = texts[start:stop]
        expected = [_pct(t.expected_loss), _pct(t.var(0.99)), _pct(t.cvar(0.99)), _pct(t.pd),
                    f"{t.mean_wal:.2f}", f"{t.median_irr * 100:.1f}%"]
        by_type = table[table["tranche"] == t.name].set_index("scenario")["expected_loss"]
        expected += [_pct(by_type[c]) for c in scenarios]
        small = [v for v in (t.expected_loss, t.pd) if 0 < v < 5e-5]
        assert not small, "pick a run whose tranche numbers are not below the page's 0.01% resolution"
        assert _in_order(expected, row), (t.name, expected, row)  # on the tranche's row, in column order
    # human labels only: no snake_case key anywhere on the page
    assert not [x for x in texts if re.search(r"[a-z]_[a-z]", x)]
    for label in ("EL", "VaR", "CVaR", "99%", "WAL", "(years)", "Scenarios", "Adverse", "Loss over 18 months"):
        assert label in texts, label


def test_same_run_same_bytes_whatever_the_callers_matplotlib_state(run_dir, tmp_path):
    import matplotlib
    import matplotlib.pyplot as plt

    r = SimulationResults.load(run_dir)
    figures = plt.get_fignums()
    before = dict(matplotlib.rcParams)
    a = write_summary_pdf(r, tmp_path / "a.pdf").read_bytes()
    with matplotlib.rc_context({"font.size": 20, "pdf.fonttype": 42, "lines.linewidth": 5}):
        b = write_summary_pdf(r, tmp_path / "b.pdf").read_bytes()
    assert a == b
    assert plt.get_fignums() == figures  # no pyplot figure was opened
    assert dict(matplotlib.rcParams) == before  # the page's settings do not leak
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pdf", "b.pdf"]


def test_a_run_without_tranches_or_cashflows_renders_the_pool_and_says_so(tmp_path):
    rng = np.random.default_rng(0)
    r = SimulationResults(rng.beta(1, 20, 12), [], settings={"seed": 1})
    texts = page_texts(write_summary_pdf(r, tmp_path / "pool.pdf").read_bytes())
    assert n_pages((tmp_path / "pool.pdf").read_bytes()) == 1
    page = " ".join(texts)
    assert "This run holds no tranche results: the pool only." in page
    assert "no breakdown by scenario type" in page
    assert "The run kept no pool cashflows by month (or no pool par):" in page
    assert "VaR / CVaR 99% not shown: under 100 effective scenarios" in page
    pool = texts.index("Pool")
    assert texts[pool + 1] == _pct(r.expected_loss)
    assert _pct(r.var_99) not in texts  # 12 scenarios: no 99 % tail, as the risk table
    assert "Deal: not recorded" in page


def test_bad_inputs_are_one_line_config_errors(run_dir, tmp_path):
    r = SimulationResults.load(run_dir)
    (tmp_path / "adir.pdf").mkdir()
    cases = [((r, tmp_path / "adir.pdf"), {}, "is a directory"),
             ((r, tmp_path / "summary.png"), {}, "does not end in .pdf"),
             (({"losses": [0.1]}, tmp_path / "s.pdf"), {}, "expected a SimulationResults"),
             ((r, tmp_path / "s.pdf"), {"title": 3}, "title must be text"),
             ((r, None), {}, "must be a file path")]
    for args, kw, match in cases:
        with pytest.raises(ConfigError, match=match) as e:
            write_summary_pdf(*args, **kw)
        assert "\n" not in str(e.value)
    assert [p.name for p in tmp_path.iterdir()] == ["adir.pdf"]


def test_an_interrupted_write_leaves_the_previous_file_and_no_partial_one(run_dir, tmp_path, monkeypatch):
    from matplotlib.figure import Figure

    if threading.current_thread() is not threading.main_thread():
        pytest.skip("the fault point interrupts with SIGINT, which only the main thread receives")
    r = SimulationResults.load(run_dir)
    target = tmp_path / "summary.pdf"
    target.write_bytes(b"the previous summary")
    # Ctrl-C once the page is in the temporary file, before it is renamed into place
    monkeypatch.setenv(FAULT_ENV, "write_pdf")
    monkeypatch.setenv("CREDITSIM_FAULT_SIGNAL", "INT")
    old = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background shell may ignore SIGINT
    try:
        with pytest.raises(KeyboardInterrupt):
            write_summary_pdf(r, target)
    finally:
        signal.signal(signal.SIGINT, old)
    assert target.read_bytes() == b"the previous summary"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.pdf"]
    monkeypatch.delenv(FAULT_ENV)
    # a writer that fails half-way: nothing half-written appears
    real = Figure.savefig

    def half(self, fname, **kw):
        Path(fname).write_bytes(b"%PDF-1.4 half")
        raise OSError("disk full")

    monkeypatch.setattr(Figure, "savefig", half)
    with pytest.raises(OSError, match="disk full"):
        write_summary_pdf(r, tmp_path / "new.pdf")
    assert [p.name for p in tmp_path.iterdir()] == ["summary.pdf"]
    monkeypatch.setattr(Figure, "savefig", real)
    assert n_pages(write_summary_pdf(r, target).read_bytes()) == 1


# ---------------------------------------------------------------- CLI
def test_report_pdf_alone_or_beside_the_html(run_dir, tmp_path, monkeypatch, capsys, run_cli):
    monkeypatch.chdir(tmp_path)
    assert run_cli(["report", str(run_dir), "--pdf", "out/summary.pdf", "--title", "Q3 committee"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no report.html when only --pdf is asked for
    pdf = (tmp_path / "out" / "summary.pdf").read_bytes()
    assert n_pages(pdf) == 1 and "Q3 committee" in page_texts(pdf)
    assert "summary written to" in capsys.readouterr().out
    assert run_cli(["report", str(run_dir), "-o", "r.html", "--pdf", "s.pdf"]) == 0
    assert (tmp_path / "r.html").is_file() and n_pages((tmp_path / "s.pdf").read_bytes()) == 1


@pytest.mark.parametrize("target, match", [("adir", "is a directory"), ("summary.png", "does not end in .pdf")])
def test_report_pdf_bad_target_is_one_line_exit_2(run_dir, tmp_path, capsys, run_cli, one_line_error, target, match):
    (tmp_path / "adir").mkdir()
    assert run_cli(["report", str(run_dir), "--pdf", str(tmp_path / target)]) == 2
    err = one_line_error()
    assert "--pdf" in err and match in err
    assert [p.name for p in tmp_path.iterdir()] == ["adir"]


def test_summary_of_a_weighted_run_uses_the_weights():
    """Weighted scenarios: the page's numbers are the weighted ones of the tables (checked on a tiny run)."""
    import tempfile

    n = 400
    rng = np.random.default_rng(5)
    losses = rng.beta(1, 20, n)
    w = rng.uniform(0.2, 2.0, n)
    tr = [TrancheResult("Note", 90.0, np.clip(losses * 2 - 0.05, 0, 1), 0.05 - losses, np.full(n, 2.0))]
    r = SimulationResults(losses, tr, scenarios=rng.integers(0, 2, n), weights=w, initial_balance=100.0)
    with tempfile.TemporaryDirectory() as d:
        texts = page_texts(write_summary_pdf(r, Path(d) / "w.pdf").read_bytes())
    pool = texts.index("Pool")
    assert texts[pool + 2] == _pct(r.risk_table().loc["expected_loss", "all"])
    assert r.risk_table().loc["expected_loss", "all"] != pytest.approx(losses.mean(), rel=1e-6)
    assert _pct(r.tranche("Note").expected_loss) in texts[texts.index("Note"):]


def test_dollar_signs_in_names_are_text_not_mathtext(run_dir, tmp_path):
    """matplotlib would read "US$ 300m and US$ 200m" as mathtext (italics, the $ gone)."""
    r = SimulationResults.load(run_dir)
    title = "US$ 300m and US$ 200m notes CLO"
    texts = page_texts(write_summary_pdf(r, tmp_path / "d.pdf", title=title).read_bytes())
    assert title in texts, [t for t in texts if "US" in t]
