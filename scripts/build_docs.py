"""Build the HTML API reference of creditsim from its docstrings, with the getting-started page, into ``site/``.

Tool (decision): pdoc (``pip install -e ".[docs]"``). It imports the package and renders what a user
sees: the lazily exported names of ``creditsim`` and its subpackages (PEP 562 ``__getattr__``,
:mod:`creditsim.lazy`) resolve exactly as ``import creditsim as cs`` resolves them, where a static
reader (mkdocstrings' griffe) cannot evaluate ``__all__ = [..., *_public]``. It is one small pure-Python
package on top of Jinja2 and Pygments (which the venv already has), needs no theme, no Node and no
network, reads the docstrings' Google sections and Sphinx roles, and builds the whole reference in ~10 s
on 2 cores. Sphinx would read the roles natively, but needs autodoc + napoleon + a Markdown parser for
the getting-started page and a page per module written by hand.

What is documented: :data:`MODULES`, the public API -- the top-level exports, every subpackage (its
``__all__``) and the ground-floor modules users meet in signatures and errors. Internal modules are not
rendered; a new subpackage must be added to :data:`MODULES` or to :data:`NOT_DOCUMENTED` with the
reason (``tests/test_docs.py`` checks). ``docs/getting-started.md`` is rendered as
``getting-started.html`` beside the module pages, every ``creditsim.*`` name in it linked to its entry.

Run from the repository root (``make docs`` does, after installing the extra)::

    python scripts/build_docs.py              # writes site/ (index.html opens the creditsim page)
    python scripts/build_docs.py --out DIR
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if __name__ == "__main__" and str(ROOT) not in sys.path:
    # run as a script: this checkout's creditsim, not another installed copy
    sys.path.insert(0, str(ROOT))

#: the pages of the reference, in navigation order
MODULES: tuple[str, ...] = (
    "creditsim",
    # ground floor: the names users meet in signatures and error messages
    "creditsim.errors", "creditsim.states", "creditsim.schema", "creditsim.io", "creditsim.examples",
    # one package per stage, then the side paths
    "creditsim.datasets", "creditsim.macro", "creditsim.transitions", "creditsim.loans", "creditsim.deal",
    "creditsim.risk", "creditsim.ratings", "creditsim.ifrs9", "creditsim.validation", "creditsim.harness",
    "creditsim.nn",
)

#: subpackages left out on purpose, with the reason
NOT_DOCUMENTED: dict[str, str] = {
    "creditsim.cli": "the command line; `creditsim --help` and each command's --help document it",
    "creditsim.pretrained": "checkpoint files only (no Python API); their loaders are documented",
}

TEMPLATES = ROOT / "docs" / "pdoc"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
DEFAULT_OUT = ROOT / "site"

# Sphinx habits pdoc's reST conversion keeps verbatim: the "~" of :class:`~a.b.C` (show "C") and the
# "::" that announces a literal block ("text::" reads "text:"), but not a directive's (".. note::",
# which pdoc renders itself).
_ROLE_TILDE = re.compile(r"(:[a-z]+:`)~")
_LITERAL_MARK = re.compile(r"^(?!\s*\.\. )(.*\S)::$", re.MULTILINE)


def sphinx_leftovers(docstring: str) -> str:
    """The docstring with the two Sphinx conventions above rewritten as pdoc reads them (a Jinja filter,
    applied before pdoc's own conversion): otherwise every page shows ``~creditsim...`` and ``draws it)::``."""
    return _LITERAL_MARK.sub(r"\1:", _ROLE_TILDE.sub(r"\1", docstring))


def build(out: Path) -> list[Path]:
    """Render :data:`MODULES` and the getting-started page into ``out`` (replaced); returns the pages."""
    import pdoc
    import pdoc.doc
    import pdoc.extract
    import pdoc.render

    import creditsim

    pdoc.render.configure(docformat="google", show_source=False, template_directory=TEMPLATES,
                          footer_text=f"creditsim {creditsim.__version__}")
    pdoc.render.env.filters["sphinx_leftovers"] = sphinx_leftovers
    if out.exists():
        if any(out.iterdir()) and not (out / "creditsim.html").is_file():
            raise SystemExit(f"{out}: not empty and not a previous build (no creditsim.html); not replacing it")
        shutil.rmtree(out)
    out.mkdir(parents=True)
    pdoc.pdoc(*MODULES, output_directory=out)
    # Module.from_name is cached: these are the objects pdoc just rendered
    all_modules = {name: pdoc.doc.Module.from_name(name) for name in pdoc.extract.walk_specs(MODULES)}
    # linkify links names relative to the page's `module`, and those of `module` itself as "#name" on the
    # same page: an empty top-level stand-in (the page sits beside creditsim.html) sends each to its page
    stand_in = pdoc.doc.Module(types.ModuleType("getting_started"))
    page = pdoc.render.env.get_template("getting-started.html.jinja2").render(
        module=stand_in, all_modules=all_modules, root_module_name="creditsim",
        edit_url=None, mtime=None, text=GETTING_STARTED.read_text(encoding="utf-8"))
    (out / "getting-started.html").write_text(page, encoding="utf-8")
    return sorted(out.rglob("*.html"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output directory, replaced (default: site/)")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    pages = build(args.out)
    size = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {args.out}: {len(pages)} pages, {size / 2**20:.1f} MiB, {time.perf_counter() - t0:.1f} s; "
          f"open {args.out / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
