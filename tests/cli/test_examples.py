"""`creditsim examples --out DIR`: the shipped examples land in a folder a pip user can work from,
and the exported run configuration and narrative run as they are."""

from __future__ import annotations

from creditsim.examples import list_examples


def test_examples_are_exported_and_run_from_another_directory(tmp_path, monkeypatch, capsys, run_cli,
                                                              one_line_error) -> None:
    out = tmp_path / "ex"
    assert run_cli(["examples", "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == list_examples()
    assert {"run_config.yaml", "story_rates_shock.yaml", "loans_example.parquet", "example_clo.yaml",
            "loans_bsl.parquet", "bsl_clo.yaml"} <= set(list_examples())
    capsys.readouterr()
    # a second export refuses to overwrite, --force does
    assert run_cli(["examples", "--out", str(out)]) == 2
    assert "already exist; pass --force" in one_line_error()
    assert run_cli(["examples", "--out", str(out), "--force"]) == 0
    # the first suggestion needs no fetched data (synthetic macro); it runs as printed (fewer scenarios here)
    printed = capsys.readouterr().out.replace("\n", " ")
    suggestion = printed.split("try: ")[1].split(" then,")[0].split()
    assert suggestion[:2] == ["creditsim", "simulate"] and "synthetic" in suggestion
    suggestion[suggestion.index("--n-sims") + 1] = "16"
    assert run_cli([*suggestion[1:], "--horizon", "12", "--out", str(tmp_path / "runs" / "try")]) == 0
    # the exported files run as written, from elsewhere: the run config and the narrative
    monkeypatch.chdir(tmp_path)
    code = run_cli(["simulate", "--tape", "ex/loans_example.parquet", "--deal", "ex/example_clo.yaml",
                    "--config", "ex/run_config.yaml", "--macro", "ex/story_rates_shock.yaml",
                    "--n-sims", "16", "--horizon", "24", "--out", "runs/first"])
    assert code == 0
    from creditsim.risk.results import SimulationResults

    run = SimulationResults.load(tmp_path / "runs" / "first")
    assert run.n_sims == 16 and (run.scenarios == 2).all()  # the story's scenario labels every path

