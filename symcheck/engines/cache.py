"""Closed forms kept between cases (in memory) and between runs, on disk in `.symcheck_cache/` (as
pytest keeps `.pytest_cache/`).

A closed form does not depend on the tensor values, only on the program, its input shapes and
dtypes, and what it is differentiated with respect to: derived once, it serves every later point,
case and run. So does the verdict of its probe-shape proof. Entries are pickles, and a pickle can
run code when it is read: each entry is signed (HMAC-SHA256) with a key kept in the user's private
folder (~/.cache/symcheck, 0700), and an entry whose signature does not verify is never unpickled
(it is deleted). Without a private folder there is no cache.

Entries are keyed by everything that decides them: the program's text, input types, output step,
wrt, and a fingerprint of symcheck's own source and the versions of Python, SymPy, SymEngine and
numpy; any change there is another key, so nothing stale is read. The folder is used only where
`SYMCHECK_CACHE_DIR` names it (the CLI sets it; `--no-cache` and `--cache-clear`). In memory, the
last `MEMORY_ENTRIES` are kept for the process (a test session calling assert_gradients again and
again). `SYMCHECK_NO_CACHE` (set, not 0) turns both off: everything is derived again.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import pickle
import platform
import secrets
import shutil
import tempfile
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from symcheck.language.ir import Program
from symcheck.language.parser import private_cache_folder

T = TypeVar("T")

CACHE_ENV = "SYMCHECK_CACHE_DIR"
NO_CACHE_ENV = "SYMCHECK_NO_CACHE"
MEMORY_ENTRIES = 512
# What was made faster than this is made again rather than stored (reading a file costs about this);
# above it, an entry is stored where reading it back (timed once, when it is stored) is faster.
WORTH_STORING_SECONDS = 0.001
FOLDER_NAME = ".symcheck_cache"
MAX_ENTRY_BYTES = 8 * 2**20  # a larger closed form is derived again rather than stored
_SIGNATURE_BYTES = 32

_README = """# symcheck cache

This folder holds closed forms derived by symcheck's symbolic engine, reused by later runs.
Delete it, or run `symcheck verify --cache-clear ...`, whenever you like: it is rebuilt as needed.
Each entry is signed with a key in your private ~/.cache/symcheck folder; entries that do not verify
are never read. Do not commit this folder to version control.
"""


_memory: OrderedDict[str, Any] = OrderedDict()  # digest -> stored form, most recent last


def worth_storing(made_in: float, read_in: float | None) -> bool:
    """Whether what took `made_in` seconds to make is worth a file: reading it back (`read_in`
    seconds, None: not timed yet) and opening the file must be faster than making it again."""
    return made_in >= WORTH_STORING_SECONDS and (read_in is None or read_in + WORTH_STORING_SECONDS < made_in)


def enabled() -> bool:
    return os.environ.get(NO_CACHE_ENV, "0") in ("", "0")


def reuse(
    kind: str,
    key: tuple,
    make: Callable[[], T],
    dump: Callable[[T], Any] = lambda value: value,
    load: Callable[[Any], T] = lambda stored: stored,
    on_disk: bool = True,
) -> T:
    """make(), or what an earlier make() of the same kind and key gave: in this process, else on
    disk (unless not `on_disk`: what is cheaper made than read). `dump` and `load` convert to and
    from what is stored (a ClosedForm keeps its program apart). What make() raises is not kept: a
    disagreement or a time-out is met again."""
    if not enabled():
        return make()
    digest = _digest(kind, key)
    if digest in _memory:
        _memory.move_to_end(digest)
        return load(_memory[digest])
    disk = active() if on_disk else None
    stored = None if disk is None else disk.get_digest(kind, digest)
    if stored is None:
        start = time.perf_counter()
        value = make()
        stored = dump(value)
        made_in = time.perf_counter() - start
        if disk is not None and worth_storing(made_in, None):
            disk.put_digest(kind, digest, stored, made_in)
    else:
        value = load(stored)
    _memory[digest] = stored
    while len(_memory) > MEMORY_ENTRIES:
        _memory.popitem(last=False)
    return value


def forget() -> None:
    """Empty the in-memory layer (tests)."""
    _memory.clear()


def _digest(kind: str, key: tuple) -> str:
    return hashlib.sha256(repr((fingerprint(), kind, key)).encode()).hexdigest()


def active() -> DiskCache | None:
    """The cache the environment names (SYMCHECK_CACHE_DIR), or None."""
    root = os.environ.get(CACHE_ENV)
    return _open(root) if root else None


@cache
def _open(root: str) -> DiskCache | None:
    key = _signing_key()
    return None if key is None else DiskCache(Path(root), key)


def clear(root: str | Path) -> None:
    """Remove the cache folder (only one that symcheck made: it holds our README)."""
    path = Path(root)
    if (path / "README.md").is_file() and (path / "README.md").read_text().startswith("# symcheck cache"):
        shutil.rmtree(path, ignore_errors=True)


def _signing_key() -> bytes | None:
    folder = private_cache_folder()
    if folder is None:
        return None
    path = Path(folder) / "cache-signing.key"
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    except OSError:
        return None
    key = secrets.token_bytes(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first
        return path.read_bytes()
    except OSError:
        return None
    with os.fdopen(fd, "wb") as f:
        f.write(key)
    return key


@cache
def fingerprint() -> str:
    """symcheck's source and the versions of what derives and evaluates closed forms."""
    import numpy
    import sympy

    try:
        import symengine

        symengine_version = symengine.__version__
    except ImportError:  # pragma: no cover - a dependency
        symengine_version = "none"
    digest = hashlib.sha256()
    for part in (platform.python_version(), sympy.__version__, symengine_version, numpy.__version__):
        digest.update(part.encode() + b"\0")
    package = Path(__file__).resolve().parents[1]
    for path in sorted(package.rglob("*.py")) + sorted(package.rglob("*.lark")):
        digest.update(str(path.relative_to(package)).encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def program_key(program: Program, wrt: Sequence[str], *extra: object) -> tuple:
    """What decides a closed form: the program as written, its input types, its output step."""
    inputs = tuple((n, d.type.shape, d.type.dtype.value) for n, d in program.inputs.items())
    return (program.source.text, inputs, len(program.steps), program.output.id, tuple(wrt), *extra)


def _loads(payload: bytes) -> Any:
    """SymPy objects unpickle by calling their class on their args, which evaluates them again:
    three times the time of building them as they were, and a product left unevaluated (factor's
    3/2*(x + 2)) comes back distributed (3*x/2 + 3). Their args are what they were built of, so
    they are rebuilt as they were (a test compares srepr)."""
    from sympy import evaluate

    with evaluate(False):
        return pickle.loads(payload)


class DiskCache:
    def __init__(self, root: Path, key: bytes) -> None:
        self.root = root
        self._key = key
        self._ready = False  # the folder made, other versions' entries removed, in this process

    def get(self, kind: str, key: tuple) -> Any | None:
        return self.get_digest(kind, _digest(kind, key))

    def _path(self, kind: str, digest: str) -> Path:
        # One folder per fingerprint: what another version of symcheck (or of SymPy...) stored is
        # never read, and is removed when this version first writes (_make_folder).
        return self.root / fingerprint()[:16] / kind / f"{digest}.pickle"

    def get_digest(self, kind: str, digest: str) -> Any | None:
        path = self._path(kind, digest)
        try:
            data = path.read_bytes()
        except OSError:
            return None
        signature, payload = data[:_SIGNATURE_BYTES], data[_SIGNATURE_BYTES:]
        expected = hmac.new(self._key, payload, hashlib.sha256).digest()
        if not hmac.compare_digest(signature, expected):
            path.unlink(missing_ok=True)  # not ours, or damaged: never unpickled
            return None
        try:
            return _loads(payload)  # signed by us, verified above
        except Exception:  # an entry of ours that no longer loads (a class moved): derive again
            path.unlink(missing_ok=True)
            return None

    def put_digest(self, kind: str, digest: str, value: Any, made_in: float = float("inf")) -> None:
        """Store value, unless it does not pickle, is too large, or reads back slower than the
        `made_in` seconds it took to make."""
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # something in it does not pickle: not cached, derived again next run
            return
        if len(payload) > MAX_ENTRY_BYTES:
            return
        start = time.perf_counter()
        try:
            _loads(payload)
        except Exception:  # it would not load back: not stored
            return
        if not worth_storing(made_in, time.perf_counter() - start):
            return
        signature = hmac.new(self._key, payload, hashlib.sha256).digest()
        path = self._path(kind, digest)
        try:
            self._make_folder()
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, temporary = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "wb") as f:
                f.write(signature + payload)
            os.replace(temporary, path)  # whole or not at all, whoever reads it meanwhile
        except OSError:  # a read-only or full disk: the run goes on without the cache
            return

    def _make_folder(self) -> None:
        if self._ready:
            return
        self._ready = True
        self.root.mkdir(parents=True, exist_ok=True)
        markers = {
            ".gitignore": "# Created by symcheck automatically.\n*\n",
            "CACHEDIR.TAG": "Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag created by symcheck.\n"
            "# For information about cache directory tags, see https://bford.info/cachedir/\n",
            "README.md": _README,
        }
        for name, text in markers.items():
            if not (self.root / name).exists():
                (self.root / name).write_text(text)
        if not (self.root / "README.md").read_text().startswith("# symcheck cache"):
            return  # a folder of that name that symcheck did not make: nothing in it is removed
        current = fingerprint()[:16]
        for old in self.root.iterdir():  # entries of other versions: never read again
            if old.is_dir() and old.name != current:
                shutil.rmtree(old, ignore_errors=True)
