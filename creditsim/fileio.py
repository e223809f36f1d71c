"""The one place that writes output files: atomic replacement and spreadsheet-safe text.

Every file creditsim writes (tapes, panels, deal YAML, Excel workbooks, PNG plots, HTML reports,
checkpoints) goes through :func:`atomic_write`: the content is written to a temporary sibling and moved
into place with :func:`os.replace`, so a reader never sees a half-written file and an interrupted run
leaves the previous file (or nothing). Text bound for a spreadsheet goes through
:func:`escape_excel_text` so that no cell is evaluated as a formula.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import pandas as pd

from creditsim.errors import ConfigError

__all__ = [
    "umask_mode", "atomic_write", "escape_excel_text", "escape_frame", "FORMULA_PREFIXES",
    "RESULT_MARKER", "FAULT_ENV", "fault_point", "check_output_target", "is_our_result_dir",
    "recover_result_dir", "make_temp_dir", "replace_result_dir",
]

#: value of the ``"producer"`` field in a result directory's ``meta.json``. Only a directory whose
#: meta.json carries it -- and which holds nothing but the files that meta.json lists -- is ever replaced.
RESULT_MARKER = "creditsim"

#: TEST HOOK: ``CREDITSIM_FAULT_POINT=<name>`` makes :func:`fault_point` ``<name>`` send this process
#: the signal named by ``CREDITSIM_FAULT_SIGNAL`` (``INT`` default, or ``KILL``). Used only by
#: tests/test_fault_injection.py to interrupt a run at a known instant; unset in normal use.
FAULT_ENV = "CREDITSIM_FAULT_POINT"

# temp / backup siblings of a result directory: ``.<name>.creditsim-<tmp|bak>-<pid>-<random>``
_SIBLING_TAG = ".creditsim-"


#: leading characters that make a spreadsheet evaluate a text cell (CSV/formula injection)
FORMULA_PREFIXES: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r")


def umask_mode(directory: bool = False) -> int:
    """Permissions a plain ``open``/``mkdir`` would give under the current umask.

    ``mkstemp``/``mkdtemp`` create 0600/0700, which would leave results unreadable to colleagues
    after the rename.
    """
    mask = os.umask(0)
    os.umask(mask)
    return (0o777 if directory else 0o666) & ~mask


def atomic_write(path: str | os.PathLike[str], write: Callable[[Path], object], suffix: str = ".tmp") -> Path:
    """Write a file atomically: ``write(tmp)`` fills a temporary sibling, which is moved onto ``path``.

    Args:
        path: the target file; its parent directory is created if needed.
        write: called with the temporary path (same directory, so ``os.replace`` is a rename on one
            file system); it must create / fill that file.
        suffix: ending of the temporary file name, for writers that infer the format from it.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.

    The file gets the mode a plain ``open`` would give (``0o666 & ~umask``), not mkstemp's 0600. If
    ``write`` raises (or the process is interrupted), the temporary file is removed and an existing
    file at ``path`` is left untouched.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def escape_excel_text(value: Any) -> Any:
    """Prefix text that a spreadsheet would evaluate as a formula (= + - @ tab CR) with a quote."""
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return "'" + value
    return value


def escape_frame(df: pd.DataFrame) -> pd.DataFrame:
    """Copy of ``df`` with every text cell, column label and index label passed through
    :func:`escape_excel_text`; numbers are untouched."""
    out = df.copy()
    # pandas >= 3 stores text as a string dtype, older versions as object: test "not numeric"
    for col in out.columns:
        if not pd.api.types.is_numeric_dtype(out[col]):
            out[col] = out[col].astype(object).map(escape_excel_text)
    out.columns = [escape_excel_text(c) for c in out.columns]
    if not pd.api.types.is_numeric_dtype(out.index):
        out.index = pd.Index([escape_excel_text(i) for i in out.index], name=escape_excel_text(out.index.name))
    return out


# ---------------------------------------------------------------- output targets and result directories
def fault_point(name: str) -> None:
    """Test hook (see :data:`FAULT_ENV`): signal ourselves when ``$CREDITSIM_FAULT_POINT == name``."""
    if os.environ.get(FAULT_ENV) == name:
        sig = getattr(signal, "SIG" + os.environ.get("CREDITSIM_FAULT_SIGNAL", "INT").upper())
        os.kill(os.getpid(), sig)
        time.sleep(5)  # SIGINT is delivered between bytecodes; give it a chance before we go on


def _result_meta(directory: Path) -> dict[str, Any] | None:
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def is_our_result_dir(directory: Path) -> bool:
    """True when ``directory`` is a result written by creditsim: its meta.json has
    ``"producer": "creditsim"`` and it holds only meta.json and the files meta.json lists."""
    meta = _result_meta(directory)
    if meta is None or meta.get("producer") != RESULT_MARKER or not isinstance(meta.get("files"), list):
        return False
    allowed = set(meta["files"]) | {"meta.json"}
    return all(p.name in allowed and p.is_file() and not p.is_symlink() for p in directory.iterdir())


def check_output_target(path: str | os.PathLike[str], kind: str, option: str) -> Path:
    """Refuse, before any work, an output path that the run could not write or must not replace.

    Args:
        path: the target (``--out`` / ``-o`` / ``--excel`` ...). Missing parent directories are
            allowed (the writers create them); the nearest existing ancestor must be a writable
            directory.
        kind: ``"file"`` (a single file, replaced atomically if it exists) or ``"result_dir"``
            (a run directory; only an empty directory or one of ours, see :func:`is_our_result_dir`,
            is replaced).
        option: the option name, used in the one-line error.

    Raises:
        ConfigError: parent missing / not a directory / not writable, or the target is a directory
            where a file is expected, a file where a directory is expected, or a foreign directory.
    """

    target = Path(path)
    if kind == "result_dir":
        recover_result_dir(target)
    parent = target.parent if str(target.parent) else Path(".")
    # writers create missing parents (runs/NAME, out/run.xlsx): check the nearest existing ancestor
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(f"{option}: parent directory {str(parent)!r} does not exist or is not a directory")
    if not _can_create_in(parent):
        raise ConfigError(f"{option}: directory {str(parent)!r} is not writable")
    if kind == "file":
        if target.is_dir():
            raise ConfigError(f"{option}: {str(target)!r} is a directory, expected a file path")
        if target.exists() and not os.access(target, os.W_OK):
            raise ConfigError(f"{option}: {str(target)!r} exists and is not writable")
        return target
    if kind != "result_dir":
        raise ValueError(f"kind must be 'file' or 'result_dir', got {kind!r}")
    if not target.exists() and not target.is_symlink():
        return target
    if target.is_symlink() or not target.is_dir():
        raise ConfigError(f"{option}: {str(target)!r} exists and is not a directory; refusing to replace it")
    if not any(target.iterdir()):
        return target
    if not is_our_result_dir(target):
        raise ConfigError(f"{option}: {str(target)!r} is not a creditsim result directory (or holds files "
                          f"creditsim did not write); refusing to replace it -- choose a new or empty directory")
    return target


def _can_create_in(directory: Path) -> bool:
    """Whether a file can be created in ``directory``: a real probe file, because ``os.access``
    ignores read-only mounts and ACLs."""
    try:
        fd, name = tempfile.mkstemp(prefix=".creditsim-probe-", dir=directory)
    except OSError:
        return False
    os.close(fd)
    os.unlink(name)
    return True


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _siblings(target: Path) -> Iterable[tuple[Path, str, int]]:
    prefix = f".{target.name}{_SIBLING_TAG}"
    if not target.parent.is_dir():
        return []
    found = []
    for p in target.parent.iterdir():
        if not p.name.startswith(prefix):
            continue
        parts = p.name[len(prefix):].split("-")
        if len(parts) >= 2 and parts[0] in ("tmp", "bak") and parts[1].isdigit():
            found.append((p, parts[0], int(parts[1])))
    return found


def recover_result_dir(target: Path) -> None:
    """Undo what a killed run left next to ``target``: a backup sibling with no ``target`` is renamed
    back (the old result comes back); every other temp/backup sibling whose owning process is dead is
    deleted. Siblings of live processes (a concurrent run) are left alone."""
    target = Path(target)
    sibs = [s for s in _siblings(target) if not _pid_alive(s[2])]
    for p, kind, _ in sibs:
        if kind == "bak" and not target.exists() and not target.is_symlink():
            os.replace(p, target)
    for p, _, _ in sibs:
        if p.exists():
            shutil.rmtree(p, ignore_errors=True)


def make_temp_dir(target: Path) -> Path:
    """Create the temporary sibling ``.<name>.creditsim-tmp-<pid>-<rand>`` that a new result is built in."""
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}{_SIBLING_TAG}tmp-{os.getpid()}-", dir=target.parent))
    os.chmod(tmp, umask_mode(directory=True))
    return tmp


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported
    (other OS, old libc, file system without it) so the caller falls back to two renames."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (22, 38, 95):  # EINVAL, ENOSYS, EOPNOTSUPP: not supported here
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_result_dir(src: Path, dst: Path) -> None:
    """Move the finished directory ``src`` onto ``dst`` without ever leaving ``dst`` empty-handed.

    On Linux an existing ``dst`` is swapped with ``src`` in one atomic ``renameat2(RENAME_EXCHANGE)``
    (``dst`` is the old result, then the new one, never absent); the old result, now at the temp
    name, is deleted (or, if killed first, by the next run's :func:`recover_result_dir`).

    Fallback (no RENAME_EXCHANGE): ``dst`` is renamed to a backup sibling
    ``.<name>.creditsim-bak-<pid>-<rand>``, ``src`` renamed in, the backup deleted. Ctrl-C between the
    renames puts the backup back at once; after SIGKILL there, the next :func:`recover_result_dir`
    (called by :func:`check_output_target`) renames it back.
    """
    if not dst.exists():
        os.replace(src, dst)
        return
    fault_point("swap")
    if _exchange(src, dst):
        fault_point("after_swap")
        shutil.rmtree(src, ignore_errors=True)
        return
    bak = Path(tempfile.mkdtemp(prefix=f".{dst.name}{_SIBLING_TAG}bak-{os.getpid()}-", dir=dst.parent))
    bak.rmdir()
    os.replace(dst, bak)
    try:
        fault_point("between_renames")
        os.replace(src, dst)
    except BaseException:
        # Ctrl-C between the renames: put the old result back now (SIGKILL: recover_result_dir)
        if not dst.exists():
            os.replace(bak, dst)
        raise
    fault_point("after_swap")
    shutil.rmtree(bak, ignore_errors=True)
