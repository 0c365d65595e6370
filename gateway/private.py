"""Files under HOTLINE_DATA_DIR are private to the account running the hotline: 0700 and 0600.

The data folder holds the append-only file (password hashes, phones, addresses, notes, texts),
the spool (full numbers and bodies), Redis's log and the generated keys: nobody else on the
machine may read them, whatever the umask the hotline was started with.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
UMASK = 0o077


def tighten(path: Path) -> None:
    """Take group and others' rights off `path` (when it is ours; a foreign file is left alone)."""
    with contextlib.suppress(OSError):
        mode = path.lstat().st_mode
        if mode & 0o077 and not os.path.islink(path):
            os.chmod(path, mode & ~0o077 & 0o7777)


def private_dir(path: Path) -> Path:
    """`path` made if missing, and private (0700) either way."""
    path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    tighten(path)
    return path


def tighten_tree(path: Path) -> None:
    """`path` and everything under it made private: files written before this rule existed."""
    tighten(path)
    for folder, dirs, files in os.walk(path):
        for name in dirs + files:
            tighten(Path(folder) / name)


def open_private(path: Path, flags: int) -> int:
    """os.open of `path` creating it 0600 (an existing file is tightened)."""
    fd = os.open(path, flags | os.O_CREAT, FILE_MODE)
    with contextlib.suppress(OSError):
        mode = os.fstat(fd).st_mode
        if mode & 0o077:
            os.fchmod(fd, mode & ~0o077 & 0o7777)
    return fd
