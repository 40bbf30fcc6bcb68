"""Opening id-upload files, only from the configured upload directory.

A tool's caller chooses the path, so a path is opened only when it resolves to a
regular file inside the upload directory. Symlinks are resolved with
`os.path.realpath` before the check, so a link that leads out is rejected. The
file is opened with O_NOFOLLOW and O_NONBLOCK (a FIFO cannot block the open),
and `fstat` of the open descriptor must show a regular file with the device and
inode that `lstat` showed just before. Nothing is read before every check has
passed.

The checked file object itself goes to `IdSource.from_open_file`, which streams
it in chunks, so the bytes sent are those of the file that was checked, and no
file is read whole into memory. File size has no cap here; the client's memory
grows with the number of distinct ids (see `ta_cohort_mcp.client.upload`).
"""

import os
import stat
from pathlib import Path
from typing import BinaryIO

from ta_cohort_mcp.server.results import ToolFailure


def _rejected(message: str) -> ToolFailure:
    return ToolFailure("path_rejected", message)


def resolve_upload_path(path: str, upload_dir: Path | None) -> Path:
    """Return the real path of `path` inside `upload_dir`.

    A relative path is taken relative to `upload_dir`.

    Raises:
        ToolFailure: no upload directory is configured, or the path leads
            outside it, does not exist, or is not a regular file.
    """
    if upload_dir is None:
        raise _rejected(
            "file uploads are off: the server has no upload directory (TA_UPLOAD_DIR); "
            "send the ids inline with ids or rows"
        )
    if "\x00" in path:
        raise _rejected("path contains a NUL character; give a plain file name")
    root = Path(os.path.realpath(upload_dir))
    candidate = Path(path) if os.path.isabs(path) else root / path
    real = Path(os.path.realpath(candidate))
    if not real.is_relative_to(root):
        raise _rejected(
            f"path {path!r} is outside the upload directory; put the file under "
            f"the upload directory and give its name relative to it"
        )
    try:
        info = os.lstat(real)
    except FileNotFoundError:
        raise _rejected(
            f"path {path!r} does not exist in the upload directory"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        raise _rejected(f"path {path!r} is not a regular file ({_kind(info.st_mode)})")
    return real


def open_upload_file(real: Path) -> BinaryIO:
    """Open the regular file `real` for binary reading, and check it again once open.

    The caller closes the returned file.

    Raises:
        ToolFailure: the file cannot be opened, or changed into something else
            (a symlink, a FIFO, another file) since it was checked.
    """
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        checked = os.lstat(real)
        descriptor = os.open(real, flags)
    except OSError as error:
        raise _rejected(f"cannot open {real.name!r}: {error.strerror}") from None
    try:
        handle = os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise
    try:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _rejected(
                f"{real.name!r} is not a regular file ({_kind(info.st_mode)})"
            )
        if (info.st_dev, info.st_ino) != (checked.st_dev, checked.st_ino):
            raise _rejected(f"{real.name!r} changed while it was opened; try again")
    except BaseException:
        handle.close()
        raise
    return handle


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "not a regular file"
