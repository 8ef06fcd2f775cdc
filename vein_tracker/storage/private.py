"""Records private at rest: folders 0700 and files 0600, whatever the process umask.

Owns how the storage layer creates the folders and files that hold clinic records
(the data folder, the SQLite database, the photo store, temporary files, backups) and
the check ``vein-tracker fsck`` runs over them. The umask alone cannot be trusted: a
service started with the usual 022 would create the database readable by every local
user. So every creation here asks for the private mode and then sets it explicitly
(``mkdir``'s and ``open``'s modes are masked by the umask, ``chmod`` is not).

Folders and files that exist already are left as they are (an administrator may have
chosen otherwise on purpose); ``fsck`` reports them with the command that fixes them.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

#: Mode of every folder the storage layer creates.
DIR_MODE = 0o700
#: Mode of every file the storage layer creates.
FILE_MODE = 0o600
#: Permission bits that must be clear: anything for the group or for others.
_OPEN_BITS = stat.S_IRWXG | stat.S_IRWXO


def make_private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and its missing parents with mode 0700; return it as a Path.

    Folders that already exist keep their mode.

    Raises
    ------
    OSError
        A folder cannot be created (the caller turns this into a clinic message).
    """
    target = Path(path)
    missing: list[Path] = []
    p = target
    while not p.exists() and p != p.parent:
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        try:
            d.mkdir(mode=DIR_MODE)
        except FileExistsError:
            continue  # made meanwhile by another process: not ours to change
        d.chmod(DIR_MODE)
    if not target.is_dir():
        raise NotADirectoryError(f"{target} is not a folder")
    return target


def open_private(path: str | os.PathLike[str], *, exclusive: bool = True) -> int:
    """Open a new file for writing with mode 0600 and return its descriptor.

    Parameters
    ----------
    exclusive : bool
        Refuse an existing file (``O_EXCL``, the default); otherwise truncate it and
        set its mode to 0600.
    """
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else os.O_TRUNC)
    fd = os.open(path, flags | getattr(os, "O_CLOEXEC", 0), FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
    except OSError:
        os.close(fd)
        raise
    return fd


def create_private_file(path: str | os.PathLike[str]) -> bool:
    """Create ``path`` empty with mode 0600 unless it exists; True if created.

    SQLite gives its ``-wal``, ``-shm`` and ``-journal`` files the mode of the database
    file, so a database created this way keeps all of them private.
    """
    try:
        fd = open_private(path)
    except FileExistsError:
        return False
    os.close(fd)
    return True


def write_private(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to a new 0600 file (replacing an existing one) and fsync it."""
    fd = open_private(path, exclusive=False)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class LoosePath:
    """A folder or file of the records that the group or other users may access.

    Attributes
    ----------
    path : Path
    mode : int
        Its permission bits (e.g. ``0o644``).
    is_dir : bool
    """

    path: Path
    mode: int
    is_dir: bool

    @property
    def fix(self) -> str:
        """The shell command that makes it private."""
        return f"chmod {'700' if self.is_dir else '600'} {shlex.quote(str(self.path))}"

    def __str__(self) -> str:
        kind = "folder" if self.is_dir else "file"
        return f"{kind} {self.path} is {self.mode:04o}, open to other users: {self.fix}"


def find_loose(roots: Iterable[str | os.PathLike[str]]) -> list[LoosePath]:
    """Every folder or file under ``roots`` (the roots included) open to group or others.

    Symbolic links are not followed (their own mode means nothing); paths that do not
    exist are skipped.
    """
    found: dict[Path, LoosePath] = {}
    for root in roots:
        for path, st in _walk(Path(root)):
            if st.st_mode & _OPEN_BITS and path not in found:
                found[path] = LoosePath(path, stat.S_IMODE(st.st_mode), stat.S_ISDIR(st.st_mode))
    return sorted(found.values(), key=lambda x: str(x.path))


def make_private(loose: Iterable[LoosePath]) -> int:
    """Set each path to 0700 (folders) or 0600 (files); return how many were changed."""
    changed = 0
    for item in loose:
        with contextlib.suppress(FileNotFoundError):
            item.path.chmod(DIR_MODE if item.is_dir else FILE_MODE)
            changed += 1
    return changed


def _walk(root: Path) -> Iterator[tuple[Path, os.stat_result]]:
    try:
        st = root.lstat()
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        return
    yield root, st
    if not stat.S_ISDIR(st.st_mode):
        return
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in (*dirnames, *filenames):
            p = Path(dirpath) / name
            with contextlib.suppress(FileNotFoundError):
                st = p.lstat()
                if not stat.S_ISLNK(st.st_mode):
                    yield p, st
