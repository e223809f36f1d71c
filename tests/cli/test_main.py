"""The CLI shell: help works, and library errors become one line on stderr with exit status 2."""

import pytest
import typer

from creditsim.cli import main, run_app
from creditsim.errors import DataError


def _app_raising(exc: BaseException) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def boom() -> None:
        raise exc

    @app.command()
    def fine() -> None:
        typer.echo("ok")

    return app


def test_help_lists_command_groups(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    assert "creditsim" in capsys.readouterr().out.lower()


def test_creditsim_error_is_one_line_exit_2(capsys):
    with pytest.raises(SystemExit) as e:
        run_app(_app_raising(DataError("loan tape: column 'x' is bad")), ["boom"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "column 'x' is bad" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1


def test_keyboard_interrupt_exits_130(capsys):
    with pytest.raises(SystemExit) as e:
        run_app(_app_raising(KeyboardInterrupt()), ["boom"])
    assert e.value.code == 130


def test_unknown_option_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        run_app(_app_raising(DataError("x")), ["fine", "--nope"])
    assert e.value.code == 2


def test_success_exits_zero(capsys):
    with pytest.raises(SystemExit) as e:
        run_app(_app_raising(DataError("x")), ["fine"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == "ok"


def test_error_text_with_brackets_is_printed_verbatim(capsys):
    with pytest.raises(SystemExit):
        run_app(_app_raising(DataError("cpr must be in [0, 1], got [nan]")), ["boom"])
    assert "got [nan]" in capsys.readouterr().err


def test_no_help_page_shows_a_value_placeholder_on_a_flag(run_cli, capsys):
    """On/off flags take no value: typer's ``<bool>`` placeholder read as if ``--excel true`` were the
    syntax. Every command's help, the groups' too, shows none; value options keep theirs."""
    import typer

    from creditsim.cli import app

    def paths(command, prefix):
        yield prefix
        for name, sub in getattr(command, "commands", {}).items():
            yield from paths(sub, [*prefix, name])

    pages = []
    for path in paths(typer.main.get_command(app), []):
        assert run_cli([*path, "--help"]) == 0, path
        pages.append((path, capsys.readouterr().out))
    assert len(pages) > 20
    assert not [p for p, text in pages if "<bool>" in text]
    # help pages are read in a terminal: no reStructuredText roles or literals from the docstrings, no Markdown
    # backticks from the option help (a backtick shows as itself there)
    assert not [p for p, text in pages if ":func:" in text or ":mod:" in text or ":class:" in text or "`" in text]
    assert "<int>" in dict((" ".join(p), t) for p, t in pages)["simulate"]


def test_help_paragraphs_flow_as_paragraphs(run_cli, capsys):
    """typer 0.29 joins the line breaks of a docstring's first paragraph only: later paragraphs printed with
    the source's breaks as ragged half lines. Every help paragraph is one line of text before rich wraps it."""
    import typer

    from creditsim.cli import _reflow_help, app

    command = typer.main.get_command(app)
    _reflow_help(command)

    def helps(cmd):
        yield cmd.help or ""
        for sub in getattr(cmd, "commands", {}).values():
            yield from helps(sub)

    texts = list(helps(command))
    assert len(texts) > 20 and sum("\n\n" in t for t in texts) > 3  # several multi-paragraph pages
    assert not [t for t in texts for p in t.split("\n\n") if "\n" in p and not p.startswith("\b")]
    assert run_cli(["train", "trajectory", "--help"]) == 0
    assert "chain is the\n" not in capsys.readouterr().out  # a source line break, before
