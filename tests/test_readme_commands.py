"""README.md runs as written: every ``creditsim`` command of its bash blocks and every statement of its
python blocks, in README order, from a temporary directory (a user's working directory, not the
checkout), through the console script's entry point ``creditsim.cli.main`` in process.

The commands are read from README.md itself (``\\`` continuations joined, ``# comments`` dropped, the
words split by ``shlex`` as a shell would), so a command added to or changed in the README is run here
without touching this file. Where a command does not run exactly as written, a list below says so, with
the reason; a command entry must match exactly one README command and a statement entry at least one
statement (a stale or ambiguous entry fails, and so does a bash line that is neither a creditsim command
nor listed in OTHER_LINES):

- PARSE_ONLY / PY_PARSE_ONLY: minutes of work or the network. The command is parsed as written against
  the CLI -- click's ``make_context`` on the typer-built command: every option exists, every value
  converts, required arguments are there, and its input files exist at that point of the README -- but
  not run; a statement's calls are bound to the signatures of the functions they call. A cheaper run of
  the same thing lives in the test named in the reason.
- SCALED (and every ``cs.simulate`` of the python blocks): Monte Carlo runs of 1,000 to 10,000 scenarios
  (6 s to 2.5 min each on 2 cores) run as written with the scenario count capped at SIM_CAP; the test
  checks that the cap was reached, i.e. that the run went through ``simulate``.
- OWN_FILES / own objects: what the README names as the reader's own data (``my_panel.parquet``, ...),
  made here from ``creditsim data synth`` before the README's commands run.

After each command that runs, the files its output options name exist.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import importlib
import inspect
import re
import shlex
import shutil
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

#: scenarios a SCALED run (and every python-block simulate) is capped at
SIM_CAP = 64

#: command prefix -> why it is parsed, not run
PARSE_ONLY: dict[str, str] = {
    "creditsim data fetch": "downloads from FRED (network); tests/datasets/test_restricted.py fetches from a stub",
    "creditsim reverse-stress": "~2 min (4 starts x 15 iterations, 2,000 Monte Carlo draws); "
                                "tests/cli/test_reverse_cli.py runs it on 300 loans",
    "creditsim train macro": "~20 min of training; tests/test_checkpoints_and_training.py trains 2 epochs",
    "creditsim train transitions --model transformer": "the reader's own panel must lie inside the macro history's "
                                                        "months; tests/transitions/test_panel_train.py trains one "
                                                        "on a 2022-23 panel and simulates with it",
    "creditsim train trajectory": "the reader's own panel (inside the macro history's months); "
                                  "tests/loans/test_panel_train.py trains one and simulates with it",
    "creditsim eval macro": "~11 min (5 seeds x 1,000 paths x 3 generators); tests/macro/test_evaluate.py runs "
                            "60 paths, 1 seed",
    "creditsim eval transitions --panel uci": "~2.5 min (9 contestants on 30,000 accounts, the trajectory model "
                                              "alone 80 s); tests/cli/test_eval_transitions_cli.py runs a subset",
    "creditsim eval transitions --panel sp": "15 s (9 contestants, 200 bootstrap replicates), a sixth of this file's "
                                             "budget; tests/cli/test_eval_transitions_cli.py runs --panel sp with 4",
}

#: command prefix -> why its scenario count is capped at SIM_CAP (everything else runs as written)
SCALED: dict[str, str] = {
    "creditsim simulate --tape data/loans.parquet --deal ex/example_clo.yaml --n-sims 10000":
        "10,000 scenarios on 10,000 loans: ~2.5 min",
    "creditsim simulate --tape data/loans.parquet --deal ex/example_clo.yaml --config":
        "the run config's 2,000 scenarios on 10,000 loans: ~35 s",
    "creditsim simulate --tape ex/loans_example.parquet --deal ex/example_clo.yaml --macro":
        "10,000 scenarios (the default) on 2,000 loans: ~1 min",
    "creditsim simulate --tape ex/loans_example.parquet --deal ex/example_clo.yaml --rating-pd":
        "10,000 scenarios (the default) on 2,000 loans: ~1 min",
    "creditsim simulate --tape data/loans.parquet --deal ex/example_clo.yaml --transition-model":
        "10,000 scenarios (the default) on 10,000 loans: ~2.5 min",
}

#: bash lines that are not creditsim commands -> where they are covered
OTHER_LINES: dict[str, str] = {
    "make demo": "builds a venv; tests/test_demo.py runs creditsim.demo",
    "make test": "the suite itself",
}

#: the reader's own files the README names -> the file of a small `data synth` run standing in for it
OWN_FILES: dict[str, str] = {"my_panel.parquet": "panel.parquet", "my_tape.parquet": "loans.parquet"}

#: parameters that name what a command writes (checked to exist afterwards); other paths are inputs
OUTPUT_PARAMS = frozenset({"out", "output", "plot", "html", "csv", "excel", "pdf"})

#: python statement prefix -> why it is only checked against the signatures it calls
PY_PARSE_ONLY: dict[str, str] = {
    "rs = cs.reverse_stress(": "~2 min, as the CLI's reverse-stress; tests/risk/test_reverse_stress.py",
    "rs.": "the result of reverse_stress above",
    "tt = cs.fit_transitions(": "trains a TransitionTransformer (~10 s to minutes); tests/transitions/test_panel_train.py",
    "traj = cs.fit_transitions(": "trains a LoanTrajectoryModel (minutes on a large panel); tests/loans/test_panel_train.py",
    "sized = cs.size_tranches(": "~50 s of sizing and Monte Carlo checks; tests/risk/test_sizing.py",
    "sized.": "the result of size_tranches above",
    'res = cs.simulate(loans, deal, n_simulations=100_000, backend="dask"':
        "needs a dask scheduler at tcp://scheduler:8786 (network); tests/risk/test_simulate.py runs "
        "backend='dask' on a LocalCluster",
}


# ---------------------------------------------------------------- reading the README
def bash_lines(text: str) -> list[list[str]]:
    """The command lines of the ```bash blocks of ``text`` as shell words: ``\\``-continuations joined,
    ``# comments`` dropped, quotes removed (``shlex``, as a shell splits them)."""
    lines = []
    for block in re.findall(r"^```bash\n(.*?)^```", text, re.S | re.M):
        for line in block.replace("\\\n", " ").splitlines():
            words = shlex.split(line, comments=True)
            if words:
                lines.append(words)
    return lines


def python_blocks(text: str) -> list[str]:
    """The source of each ```python block of ``text``, in order."""
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def statements(block: str) -> list[tuple[str, ast.Module]]:
    """``(source, one-statement module)`` of each top-level statement of ``block``."""
    return [(ast.get_source_segment(block, s) or "", ast.Module([s], type_ignores=[])) for s in ast.parse(block).body]


def matches(keys: typing.Iterable[str], texts: list[str]) -> dict[str, list[int]]:
    """For each key, the indices of the ``texts`` it is a prefix of."""
    return {k: [i for i, t in enumerate(texts) if t.startswith(k)] for k in keys}


def check_listed_once(table: dict[str, str], texts: list[str], what: str) -> None:
    """Each key of ``table`` is the prefix of exactly one of ``texts`` (no stale, no ambiguous entry)."""
    for key, hits in matches(table, texts).items():
        assert len(hits) == 1, (f"{what} entry {key!r} matches {len(hits)} README lines "
                                f"{[texts[i] for i in hits]}; it must name exactly one")


@pytest.fixture(scope="module")
def readme() -> str:
    return README.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def commands(readme: str) -> list[list[str]]:
    """The README's creditsim commands, as words (``creditsim`` first)."""
    return [w for w in bash_lines(readme) if w[0] == "creditsim"]


# ---------------------------------------------------------------- the CLI
def parse(argv: list[str]) -> dict[str, Any]:
    """The parameters of the command ``argv`` names (``creditsim`` left out), as click parses them; raises
    click's usage error for an unknown command or option, a value that does not convert or a missing
    required parameter. Nothing runs."""
    import typer

    from creditsim.cli import app

    cmd, name, words, parent = typer.main.get_command(app), "creditsim", list(argv), None
    while True:
        ctx = cmd.make_context(name, list(words), parent=parent)
        if not hasattr(cmd, "resolve_command"):
            return ctx.params
        # a group: the word before its remaining arguments names the sub-command
        name, cmd, words = cmd.resolve_command(ctx, words[len(words) - len(ctx.args) - 1:])
        parent = ctx


def paths_of(params: dict[str, Any], outputs: bool) -> list[Path]:
    """The path-valued parameters that name outputs (``outputs``) or inputs."""
    return [v for k, v in params.items() if isinstance(v, Path) and (k in OUTPUT_PARAMS) == outputs]


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """``(exit status, stdout + stderr)`` of the console script's entry point on ``argv``."""
    from creditsim.cli import main

    code: Any = 0
    try:
        main(list(argv))
    except SystemExit as exc:
        code = exc.code
    out = capsys.readouterr()
    return int(code or 0), out.out + out.err


@contextlib.contextmanager
def capped_simulations(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """``simulate`` (``creditsim.simulate`` and the module the CLI imports it from at call time) with the
    scenario count capped at SIM_CAP; yields the list of the counts asked for, one per call."""
    import creditsim
    from creditsim.risk.config import RunConfig

    module = importlib.import_module("creditsim.risk.simulate")
    real = module.simulate
    asked: list[int] = []

    @functools.wraps(real)
    def simulate(loans: Any, deal: Any, config: Any = None, **overrides: Any) -> Any:
        n = overrides.get("n_simulations", (config if isinstance(config, RunConfig) else RunConfig()).n_simulations)
        asked.append(int(n))
        return real(loans, deal, config, **{**overrides, "n_simulations": min(int(n), SIM_CAP)})

    with monkeypatch.context() as m:
        m.setattr(module, "simulate", simulate)
        m.setattr(creditsim, "simulate", simulate)
        yield asked


def make_own_files(folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The reader's own panel and tape (OWN_FILES) in ``folder``: 300 synthetic loans over 2022-2024, so a
    split at 2024-01 has months on both sides and the bundled macro history covers them."""
    argv = ["data", "synth", "--n-loans", "300", "--n-months", "36", "--cutoff", "2022-01", "--seed", "1",
            "--out", str(folder / "synth-own")]
    code, output = run(argv, capsys)
    assert code == 0, output
    for name, source in OWN_FILES.items():
        shutil.copy(folder / "synth-own" / source, folder / name)
    shutil.rmtree(folder / "synth-own")


# ---------------------------------------------------------------- the tests
def test_every_readme_line_is_run_or_listed(readme: str, commands: list[list[str]]) -> None:
    """A bash line is a creditsim command (run unless listed) or named in OTHER_LINES; every list's entry
    names exactly one README line, and no command is both parsed only and scaled."""
    texts = [" ".join(w) for w in commands]
    others = [" ".join(w) for w in bash_lines(readme) if w[0] != "creditsim"]
    assert sorted(others) == sorted(OTHER_LINES), "a bash line that is not a creditsim command: list it in OTHER_LINES"
    check_listed_once(PARSE_ONLY, texts, "PARSE_ONLY")
    check_listed_once(SCALED, texts, "SCALED")
    parsed = {i for hits in matches(PARSE_ONLY, texts).values() for i in hits}
    assert not parsed & {i for hits in matches(SCALED, texts).values() for i in hits}
    for name in OWN_FILES:
        assert name in readme, f"OWN_FILES entry {name!r} is no longer in the README"
    sources = [src for block in python_blocks(readme) for src, _ in statements(block)]
    for key, hits in matches(PY_PARSE_ONLY, sources).items():
        assert hits, f"PY_PARSE_ONLY entry {key!r} matches no README statement"


def test_a_parse_only_command_with_a_wrong_option_fails() -> None:
    """What the parse-only check catches: an unknown option, a value that does not convert, a missing
    required parameter, an unknown command."""
    assert parse(["train", "macro", "--epochs", "200", "--out", "m"])["epochs"] == 200
    for argv in (["train", "macro", "--epoch", "200", "--out", "m"], ["train", "macro", "--epochs", "many", "--out", "m"],
                 ["train", "macro", "--epochs", "200"], ["train", "macros", "--out", "m"]):
        with pytest.raises(Exception) as err:  # typer vendors click: its usage errors are not click's classes
            parse(argv)
        assert getattr(err.value, "exit_code", None) == 2, (argv, err.value)  # a usage error, as the CLI exits


def test_readme_commands_run_in_order_from_a_temp_dir(commands: list[list[str]], tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Every README command, in order, in one fresh directory: parse-only ones parsed, the others run
    (SCALED ones with the scenario cap) and their outputs present."""
    monkeypatch.chdir(tmp_path)
    make_own_files(tmp_path, capsys)
    for words in commands:
        text = " ".join(words)
        try:
            params = parse(words[1:])
        except Exception as exc:  # typer's vendored click: a usage error is not click's class
            pytest.fail(f"{text!r} does not parse: {type(exc).__name__}: {exc}")
        missing = [str(p) for p in paths_of(params, outputs=False) if not p.exists()]
        assert not missing, f"{text!r}: input {missing} does not exist at this point of the README"
        if any(text.startswith(k) for k in PARSE_ONLY):
            continue
        scaled = any(text.startswith(k) for k in SCALED)
        with capped_simulations(monkeypatch) if scaled else contextlib.nullcontext() as asked:
            code, output = run(words[1:], capsys)
        assert code == 0, f"{text!r} exited {code}:\n{output[-3000:]}"
        assert not scaled or asked, f"{text!r} is SCALED but never called simulate: the cap did not apply"
        absent = [str(p) for p in paths_of(params, outputs=True) if not p.exists()]
        assert not absent, f"{text!r} did not write {absent}"


# ---------------------------------------------------------------- the python blocks
def own_objects(folder: Path) -> dict[str, dict[str, Any]]:
    """What stands in for the reader's own objects of the python blocks, by a line of the block that uses
    them (injected just before that block: the validation block's ``pd`` is a PD vector, not pandas)."""
    from creditsim.loans.pool import LOAN_FLOWS

    rng = np.random.default_rng(0)
    flows = {k: np.round(rng.uniform(0, 1_000, (2, 3, 24)), 2) for k in LOAN_FLOWS}
    flows["loss"] = np.round(0.4 * flows["default_par"], 2)
    n = 400
    return {
        "chain = cs.fit_transitions(my_panel, my_tape)": {
            "my_panel": pd.read_parquet(folder / "my_panel.parquet"),
            "my_tape": pd.read_parquet(folder / "my_tape.parquet"), "loan_flows": flows},
        "from creditsim import validation as v": {
            "pd": rng.uniform(0.001, 0.1, n), "y": (rng.random(n) < 0.05).astype(int), "score": rng.random(n),
            "score_a": rng.random(n), "score_b": rng.random(n), "ref": rng.normal(size=500), "now": rng.normal(size=500),
            "hits": (rng.random(250) < 0.02).astype(int), "exposure_by_grade": rng.uniform(1, 10, 7),
            "counts": rng.integers(0, 50, (7, 7)), "realised": rng.uniform(0, 1, 50), "estimated": rng.uniform(0, 1, 50)},
    }


def resolve(node: ast.expr, ns: dict[str, Any], kinds: dict[str, type]) -> tuple[Any, bool]:
    """``(object, is_instance_of_class)`` a name or attribute chain stands for: a value of ``ns``, or for a
    name a skipped statement bound, the class its function is annotated to return."""
    if isinstance(node, ast.Name):
        if node.id in ns:
            return ns[node.id], False
        assert node.id in kinds, f"{node.id!r} is not defined"
        return kinds[node.id], True
    assert isinstance(node, ast.Attribute), f"cannot check {ast.unparse(node)!r} without running it"
    base, instance = resolve(node.value, ns, kinds)
    if instance:  # an attribute of a result: a method, property or dataclass field of its class
        fields = {a for k in inspect.getmro(base) for a in getattr(k, "__annotations__", {})}
        assert hasattr(base, node.attr) or node.attr in fields, f"{base.__name__} has no {node.attr!r}"
        return getattr(base, node.attr, None), False
    return getattr(base, node.attr), False


def check_call(node: ast.Call, ns: dict[str, Any], kinds: dict[str, type]) -> None:
    """The call binds to its function's signature (positional count, keyword names); keywords a creditsim
    function gathers in ``**kwargs`` are RunConfig settings there (simulate, reverse_stress, size_tranches,
    ExpectedLossPath.from_tape), so they must name RunConfig fields."""
    import dataclasses

    from creditsim.risk.config import RunConfig

    fn, _ = resolve(node.func, ns, kinds)
    method = isinstance(node.func, ast.Attribute) and inspect.isfunction(fn) and \
        isinstance(node.func.value, ast.Name) and node.func.value.id in kinds  # called on a result: self
    sig = inspect.signature(fn)
    bound = sig.bind(*[None] * (len(node.args) + method), **{k.arg: None for k in node.keywords if k.arg})
    rest = next((p.name for p in sig.parameters.values() if p.kind is p.VAR_KEYWORD), None)
    if rest in bound.arguments and getattr(inspect.unwrap(fn), "__module__", "").startswith("creditsim"):
        unknown = set(bound.arguments[rest]) - {f.name for f in dataclasses.fields(RunConfig)}
        assert not unknown, f"{ast.unparse(node.func)}: no such setting {sorted(unknown)}"


def check_without_running(tree: ast.Module, ns: dict[str, Any], kinds: dict[str, type]) -> None:
    """Every name and attribute of the statement exists and every call binds (:func:`check_call`); a name
    it assigns is recorded with the class its function is annotated to return."""
    compile(tree, "README.md", "exec")
    for node in ast.walk(tree):
        if isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Load) and not isinstance(
                getattr(node, "value", None), ast.Call):
            resolve(node, ns, kinds)
        if isinstance(node, ast.Call):
            check_call(node, ns, kinds)
    stmt = tree.body[0]
    if isinstance(stmt, ast.Assign) and isinstance(stmt.value, ast.Call) and isinstance(stmt.targets[0], ast.Name):
        fn, _ = resolve(stmt.value.func, ns, kinds)
        kinds[stmt.targets[0].id] = typing.get_type_hints(inspect.unwrap(fn))["return"]


def test_readme_python_blocks_run_in_order_from_a_temp_dir(readme: str, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The python blocks as one session, in order, in a fresh directory; ``cs.simulate`` capped at SIM_CAP
    scenarios, PY_PARSE_ONLY statements checked against the signatures they call."""
    monkeypatch.chdir(tmp_path)
    make_own_files(tmp_path, capsys)
    own = own_objects(tmp_path)
    blocks = python_blocks(readme)
    for key in own:
        assert sum(key in b for b in blocks) == 1, f"own-object marker {key!r} must be in exactly one block"
    ns: dict[str, Any] = {"__name__": "readme"}
    kinds: dict[str, type] = {}
    with capped_simulations(monkeypatch) as asked:
        for block in blocks:
            ns.update(next((objs for key, objs in own.items() if key in block), {}))
            for source, tree in statements(block):
                try:
                    if any(source.startswith(k) for k in PY_PARSE_ONLY):
                        check_without_running(tree, ns, kinds)
                    else:
                        exec(compile(tree, "README.md", "exec"), ns)  # noqa: S102 -- the README's own code
                except Exception as exc:
                    pytest.fail(f"README python statement {source!r}: {type(exc).__name__}: {exc}")
    assert asked and max(asked) > SIM_CAP  # the README's runs went through the cap
