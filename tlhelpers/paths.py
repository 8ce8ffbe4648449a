"""Where the kit finds its data, caches and weights, and how it checks files.

Notebooks and tests call these instead of relative paths, so a notebook runs
the same under JupyterLab (kernel in ``notebooks/``), papermill (caller's
folder) and pytest.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "atomic_write",
    "cache_dir",
    "CACHE_ENV",
    "CacheRebuiltWarning",
    "data_dir",
    "DATA_ENV",
    "download_allowed",
    "DOWNLOAD_ENV",
    "DownloadNotAllowedError",
    "HashMismatchError",
    "repo_root",
    "require_download",
    "sha256sum",
    "verify_file",
    "read_text_file",
]

#: Environment variable that points the kit at another ``data/`` folder.
DATA_ENV = "TLHELPERS_DATA"
#: Environment variable for the cache folder (unpacked datasets, features).
CACHE_ENV = "TLHELPERS_CACHE"
#: Environment variable that allows downloads (``1``/``true``/``yes``).
DOWNLOAD_ENV = "TLHELPERS_ALLOW_DOWNLOAD"


def repo_root() -> Path | None:
    """The repository root (the folder holding ``tlhelpers/`` and ``data/``), if any."""
    here = Path(__file__).resolve().parent.parent
    if (here / "data").is_dir() and (here / "tlhelpers").is_dir():
        return here
    return None


def data_dir() -> Path:
    """The kit's ``data/`` folder: ``$TLHELPERS_DATA`` or ``<repo>/data``."""
    env = os.environ.get(DATA_ENV)
    if env:
        return Path(env).expanduser().resolve()
    root = repo_root()
    if root is None:
        raise FileNotFoundError(
            "Cannot find the kit's data/ folder. Run from a clone of the repository "
            f"(pip install -e .) or set {DATA_ENV} to the data/ folder."
        )
    return root / "data"


def cache_dir(*parts: str) -> Path:
    """A writable cache folder: ``$TLHELPERS_CACHE`` or ``~/.cache/tlhelpers``, created."""
    base = os.environ.get(CACHE_ENV) or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "tlhelpers"
    )
    path = Path(base).expanduser().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def download_allowed(allow_download: bool = False) -> bool:
    """True if the caller or ``$TLHELPERS_ALLOW_DOWNLOAD`` permits network downloads."""
    if allow_download:
        return True
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


class DownloadNotAllowedError(RuntimeError):
    """Raised at once, instead of touching the network, when a download is not permitted."""


def require_download(what: str, allow_download: bool) -> None:
    """Raise :class:`DownloadNotAllowedError` unless downloads are allowed.

    The message says how to allow them, so offline users never wait on a network call.
    """
    if not download_allowed(allow_download):
        raise DownloadNotAllowedError(
            f"{what} is not available offline and downloads are off. "
            f"Pass allow_download=True or set {DOWNLOAD_ENV}=1 (needs internet), "
            "or use one of the offline datasets/backbones listed in book/reference/data.md."
        )


class HashMismatchError(ValueError):
    """A file exists but its sha256 differs from the published one (altered or corrupt)."""


def read_text_file(path: str | Path, what: str, error: type[ValueError] = ValueError) -> str:
    """The UTF-8 text of a file the user named (a leading BOM is dropped).

    A missing file, a folder, a file that cannot be read or is not UTF-8 raises ``error``
    naming ``what`` and ``path`` (``"--params file p.json is not UTF-8 text (byte 18: ...)"``).
    """
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist.") from None
    except OSError as err:  # a folder, no permission
        raise error(f"{what} {path} cannot be read: {err.strerror}.") from None
    except UnicodeDecodeError as err:
        raise error(
            f"{what} {path} is not UTF-8 text (byte {err.start}: {err.reason}); save it as UTF-8."
        ) from None


def sha256sum(path: str | Path, chunk: int = 1 << 20) -> str:
    """The hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify_file(path: str | Path, expected_sha256: str) -> Path:
    """Return ``path`` if its sha256 matches, else raise :class:`HashMismatchError`."""
    path = Path(path)
    got = sha256sum(path)
    if got != expected_sha256:
        raise HashMismatchError(
            f"Refusing to load {path}: sha256 {got} does not match the expected "
            f"{expected_sha256}. The file is altered or corrupt; delete it and get it again."
        )
    return path


class CacheRebuiltWarning(UserWarning):
    """A cached derived file (unpacked data, features) failed its check and was rebuilt.

    The message names the file and what was wrong with it.
    """


@contextmanager
def atomic_write(path: str | Path) -> Iterator[Path]:
    """Write ``path`` atomically: yield a temporary path in the same folder, then rename.

    ``with atomic_write(p) as tmp: torch.save(obj, tmp)``. The rename (``os.replace``) is
    atomic within a folder, so readers see the old file or the complete new one, never a
    half-written one. On any error the temporary file is removed, and an ``OSError``
    (e.g. ``[Errno 28]`` on a full disk) is re-raised with ``path`` in its message.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException as err:
        tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and str(path) not in str(err):
            reason = err.strerror or str(err)
            raise OSError(err.errno, f"{reason} (while writing {path})") from err
        raise
