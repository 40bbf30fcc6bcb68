"""Id lists for the id-upload endpoints, cleaned and streamed as a text/csv body.

A cluster upload is one id per line. A tag upload is two columns, ``id,value``.
Before sending, each row is cleaned: a UTF-8 byte order mark at the start is
removed, CRLF and CR line ends become LF, surrounding whitespace is stripped and
blank lines are dropped. Repeated ids are dropped too, keeping the first row of
each id, because TA matches each id to one user and a tag gives a user one value.
Detecting repeats keeps a set of every distinct id sent, so memory grows with the
number of distinct ids: 97 bytes per 11-character id, measured with tracemalloc
over 1,000,000 ids on CPython 3.11.

A file source is checked for valid UTF-8 from start to end before each pass, so
an invalid file fails before any request (`IdFileEncodingError` for an open-file
source). An open file that changes during the upload can still fail while its
body is being sent, which raises `IdFileCutShortError`, a `TAWriteUncertainError`.
"""

import codecs
import io
import os
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import IO, BinaryIO, Self

import anyio.to_thread
from pydantic import BaseModel, Field

from ta_cohort_mcp.client.errors import TAUsageError, TAWriteUncertainError
from ta_cohort_mcp.models import ImportResult

# Text read from a file per worker-thread call, and body bytes per sent chunk.
READ_SIZE_HINT = 256 * 1024
CHUNK_SIZE = 64 * 1024

_BOM = "\ufeff"


class IdFileEncodingError(TAUsageError):
    """An id file that is not valid UTF-8, found before any of it was sent."""

    def __init__(self, source_name: str, byte_offset: int, line_number: int) -> None:
        super().__init__(
            f"id file {source_name!r} is not valid UTF-8 at byte offset "
            f"{byte_offset} (line {line_number}); nothing was sent. Save it as "
            "UTF-8 and upload again"
        )
        self.source_name = source_name
        self.byte_offset = byte_offset
        self.line_number = line_number


class IdFileCutShortError(TAWriteUncertainError):
    """Invalid UTF-8 found in an id file after its request body had started.

    The file passed the UTF-8 check and then changed, so the request body ended
    early, after `bytes_sent` bytes. A server should not apply a body cut short,
    but whether it did is not known.
    """

    def __init__(self, cause: IdFileEncodingError, *, bytes_sent: int) -> None:
        check_hint = (
            "read the cluster with user-cluster-detail and compare usersNum with "
            "the upload before sending it again"
        )
        super().__init__(
            f"id file {cause.source_name!r} is not valid UTF-8 at byte offset "
            f"{cause.byte_offset} (line {cause.line_number}). It changed after the "
            f"UTF-8 check, while its upload was being sent, so the request body was "
            f"cut short after {bytes_sent} bytes and may or may not have been "
            f"applied. Save the file as UTF-8; to check, {check_hint}",
            check_hint=check_hint,
        )
        self.source_name = cause.source_name
        self.byte_offset = cause.byte_offset
        self.line_number = cause.line_number
        self.bytes_sent = bytes_sent


class UploadOutcome(BaseModel):
    """Counts of an id upload (rows read, dropped and sent) and the result from TA."""

    rows_read: int = Field(description="Lines read, blank lines included.")
    rows_sent: int = Field(description="Rows sent after cleaning.")
    blank_dropped: int = Field(description="Blank lines dropped.")
    duplicates_dropped: int = Field(description="Rows dropped for repeating an id.")
    missing_id_dropped: int = Field(
        default=0, description="Tag rows dropped for having a value but no id."
    )
    bytes_sent: int = Field(description="Size of the text/csv body in bytes.")
    result: ImportResult | None = Field(
        default=None,
        description="Counts TA returned; None when TA returned no object (modify).",
    )


class IdSource:
    """Ids to upload: a list of ids, a list of (id, value) pairs, or a file.

    Build one with `from_ids`, `from_pairs`, `from_file` or `from_open_file`. A
    source can be read more than once, one pass after another, so the client can
    send it again after a connection that failed before any byte was sent.
    """

    def __init__(
        self,
        *,
        rows: Sequence[str] | None,
        path: Path | None,
        with_values: bool,
        description: str,
        handle: BinaryIO | None = None,
        name: str = "",
    ) -> None:
        self._rows = rows
        self._path = path
        self._handle = handle
        self._name = name
        self.with_values = with_values
        self.description = description

    def __repr__(self) -> str:
        return f"IdSource({self.description}, with_values={self.with_values})"

    @classmethod
    def from_ids(cls, ids: Sequence[str]) -> Self:
        """Build a cluster upload from ids, one row each.

        Raises:
            TAUsageError: `ids` is a single string, or an id contains a line break.
        """
        if isinstance(ids, str | bytes):
            raise TAUsageError(
                "ids must be a list of ids, not one string; for a file of ids use "
                "IdSource.from_file(path)"
            )
        for index, value in enumerate(ids):
            _check_cell(value, f"ids[{index}]", allow_comma=True)
        return cls(
            rows=ids, path=None, with_values=False, description=f"{len(ids)} ids"
        )

    @classmethod
    def from_pairs(cls, pairs: Sequence[tuple[str, str | None]]) -> Self:
        """Build a tag upload from (id, tag value) pairs; a value of None is empty.

        Raises:
            TAUsageError: an id contains a comma, or a cell contains a line break.
        """
        rows = []
        for index, (user_id, value) in enumerate(pairs):
            _check_cell(user_id, f"pairs[{index}][0]", allow_comma=False)
            value = "" if value is None else value
            _check_cell(value, f"pairs[{index}][1]", allow_comma=True)
            rows.append(f"{user_id.strip()},{value.strip()}")
        return cls(
            rows=rows, path=None, with_values=True, description=f"{len(rows)} pairs"
        )

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], *, with_values: bool = False
    ) -> Self:
        """Build an upload from a UTF-8 text file: one id per line, or ``id,value``.

        With `with_values`, each line is split at its first comma into the id and
        the tag value. A line without a comma gets an empty value.

        Raises:
            TAUsageError: the path does not exist or is not a file.
        """
        file_path = Path(path)
        if not file_path.is_file():
            state = "is not a file" if file_path.exists() else "does not exist"
            raise TAUsageError(f"id file {str(file_path)!r} {state}; give a file path")
        return cls(
            rows=None,
            path=file_path,
            with_values=with_values,
            description=f"file {file_path.name!r}",
        )

    @classmethod
    def from_open_file(
        cls, handle: BinaryIO, *, with_values: bool = False, name: str
    ) -> Self:
        """Build an upload that reads an already open binary file from its start.

        Each pass seeks `handle` to 0 and reads it to the end. The source never
        opens, reopens or closes a file, so the caller keeps `handle` open until
        the upload returns and closes it afterwards. `name` names the file in
        messages. Rows are cleaned and split as in `from_file`.

        Raises:
            TAUsageError: `handle` is a text file, or is not readable and seekable.
        """
        if isinstance(handle, io.TextIOBase):
            raise TAUsageError(
                f"id file {name!r} is open in text mode; open it in binary mode "
                "('rb') for IdSource.from_open_file"
            )
        if not (handle.readable() and handle.seekable()):
            raise TAUsageError(
                f"id file {name!r} must be readable and seekable, as a regular file "
                "opened with 'rb' is"
            )
        return cls(
            rows=None,
            path=None,
            with_values=with_values,
            description=f"file {name!r}",
            handle=handle,
            name=name,
        )

    async def lines(self) -> AsyncGenerator[str, None]:
        """Yield the raw rows, line ends removed, before cleaning."""
        if self._rows is not None:
            for row in self._rows:
                yield row
            return
        if self._handle is not None:
            async for line in _read_open_file(self._handle, self._name):
                yield line
            return
        assert self._path is not None
        async for line in _read_lines(self._path):
            yield line


def _check_cell(value: object, where: str, *, allow_comma: bool) -> None:
    if not isinstance(value, str):
        raise TAUsageError(f"{where} must be a string; got {type(value).__name__}")
    inner = value.strip()
    if "\n" in inner or "\r" in inner:
        raise TAUsageError(f"{where} contains a line break; give one id per entry")
    if not allow_comma and "," in inner:
        raise TAUsageError(
            f"{where} contains a comma, which separates the id from the tag value"
        )


async def _read_lines(path: Path) -> AsyncGenerator[str, None]:
    # The whole file is checked first, so a decoding error cannot cut a request
    # body short half-way through the upload.
    # NOTE: a file that turns invalid after this check raises UnicodeDecodeError
    # mid-body, not IdFileCutShortError as a `from_open_file` source does.
    bad_line = await anyio.to_thread.run_sync(_find_invalid_utf8, path)
    if bad_line is not None:
        raise TAUsageError(
            f"id file {str(path)!r} is not valid UTF-8 near line {bad_line}; "
            "save it as UTF-8 and upload again"
        )
    # newline=None turns CRLF and CR into LF, and utf-8-sig drops a leading BOM.
    handle = await anyio.to_thread.run_sync(_open_text, path)
    try:
        while True:
            batch = await anyio.to_thread.run_sync(handle.readlines, READ_SIZE_HINT)
            if not batch:
                return
            for line in batch:
                yield line.rstrip("\n")
    finally:
        # Closed in this thread, because an await here is skipped when the
        # call is cancelled, which would leave the file open.
        handle.close()


def _open_text(path: Path) -> IO[str]:
    try:
        return path.open(encoding="utf-8-sig", newline=None)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        failure = TAUsageError(f"cannot open id file {str(path)!r}: {reason}")
    raise failure


def _find_invalid_utf8(path: Path) -> int | None:
    """Return the number of the first line that is not valid UTF-8, or None."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line_number = 1
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as exc:
                    return line_number + chunk.count(b"\n", 0, exc.start)
                line_number += chunk.count(b"\n")
            decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return line_number
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        failure = TAUsageError(f"cannot read id file {str(path)!r}: {reason}")
    else:
        return None
    raise failure


class _Utf8Decoder:
    """Incremental UTF-8 decoder that reports the byte offset and line of an error."""

    def __init__(self, source_name: str) -> None:
        self._source_name = source_name
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._offset = 0
        self._newlines = 0

    def decode(self, data: bytes, *, final: bool = False) -> str:
        """Decode the next bytes of the file.

        Raises:
            IdFileEncodingError: the bytes so far are not valid UTF-8.
        """
        pending = self._decoder.getstate()[0]
        try:
            text = self._decoder.decode(data, final)
        except UnicodeDecodeError as exc:
            # exc.start counts from the start of pending + data. Pending bytes
            # begin a split character, so they never contain b"\n".
            offset = self._offset - len(pending) + exc.start
            line = self._newlines + (pending + data)[: exc.start].count(b"\n") + 1
            raise IdFileEncodingError(self._source_name, offset, line) from None
        self._offset += len(data)
        self._newlines += data.count(b"\n")
        return text


class _OpenFileLines:
    """Lines of an open binary file: UTF-8 decoded, CRLF and CR turned into LF."""

    def __init__(self, handle: BinaryIO, source_name: str) -> None:
        self._handle = handle
        self._decoder = _Utf8Decoder(source_name)
        # The same newline handling as open(newline=None), across chunk ends.
        self._newlines = io.IncrementalNewlineDecoder(None, translate=True)
        self._pending = ""
        self._done = False

    def read_batch(self) -> list[str] | None:
        """Read the next lines, or return None at the end of the file.

        Raises:
            IdFileEncodingError: the file is not valid UTF-8.
        """
        if self._done:
            return None
        data = self._handle.read(READ_SIZE_HINT)
        final = not data
        text = self._newlines.decode(self._decoder.decode(data, final=final), final)
        *lines, self._pending = (self._pending + text).split("\n")
        if final:
            self._done = True
            if self._pending:
                lines.append(self._pending)
        return lines


def _check_open_file_utf8(handle: BinaryIO, source_name: str) -> None:
    """Read `handle` from its start and raise IdFileEncodingError at invalid UTF-8."""
    handle.seek(0)
    decoder = _Utf8Decoder(source_name)
    while chunk := handle.read(1 << 20):
        decoder.decode(chunk)
    decoder.decode(b"", final=True)
    handle.seek(0)


async def _read_open_file(
    handle: BinaryIO, source_name: str
) -> AsyncGenerator[str, None]:
    # The whole file is checked first, so an invalid file fails before any
    # request; a file that changes after this check can still fail later.
    await anyio.to_thread.run_sync(_check_open_file_utf8, handle, source_name)
    reader = _OpenFileLines(handle, source_name)
    while True:
        batch = await anyio.to_thread.run_sync(reader.read_batch)
        if batch is None:
            return
        for line in batch:
            yield line


class UploadStream:
    """One pass over an `IdSource`: cleans rows, counts them, yields body chunks.

    `start` reads up to the first row that will be sent, so an empty source is
    rejected before any request. Counting happens while the body is streamed;
    `outcome` is complete once the body was fully sent.
    """

    def __init__(self, source: IdSource) -> None:
        self.source = source
        self.rows_read = 0
        self.blank_dropped = 0
        self.duplicates_dropped = 0
        self.missing_id_dropped = 0
        self.rows_sent = 0
        self.bytes_sent = 0
        self._seen: set[str] = set()
        self._lines = source.lines()
        self._first_row: str | None = None

    async def start(self) -> None:
        """Read up to the first row to send.

        Raises:
            TAUsageError: no row is left after cleaning.
        """
        async for line in self._lines:
            row = self._clean(line)
            if row is not None:
                self._first_row = row
                return
        await self.aclose()
        raise TAUsageError(
            f"no ids to upload in {self.source.description}: after removing blank "
            f"lines ({self.blank_dropped}) and repeated ids "
            f"({self.duplicates_dropped}) nothing is left"
        )

    async def chunks(self) -> AsyncIterator[bytes]:
        """Yield the cleaned body, LF after every row, in chunks of about 64 KiB."""
        if self._first_row is None:
            raise RuntimeError("UploadStream.start() must be awaited before chunks()")
        parts = [self._first_row]
        size = len(self._first_row)
        try:
            async for line in self._lines:
                row = self._clean(line)
                if row is None:
                    continue
                parts.append(row)
                size += len(row) + 1
                if size >= CHUNK_SIZE:
                    yield self._encode(parts)
                    parts, size = [], 0
        except IdFileEncodingError as error:
            # The request is in flight here: its headers, and maybe some chunks,
            # were sent.
            raise IdFileCutShortError(error, bytes_sent=self.bytes_sent) from error
        if parts:
            yield self._encode(parts)

    async def aclose(self) -> None:
        """Close the underlying file, if any."""
        await self._lines.aclose()

    def outcome(self, result: ImportResult | None) -> UploadOutcome:
        """Return the counts of this pass together with TA's result."""
        return UploadOutcome(
            rows_read=self.rows_read,
            rows_sent=self.rows_sent,
            blank_dropped=self.blank_dropped,
            duplicates_dropped=self.duplicates_dropped,
            missing_id_dropped=self.missing_id_dropped,
            bytes_sent=self.bytes_sent,
            result=result,
        )

    def _encode(self, rows: list[str]) -> bytes:
        chunk = ("\n".join(rows) + "\n").encode("utf-8")
        self.bytes_sent += len(chunk)
        return chunk

    def _clean(self, line: str) -> str | None:
        """Return the row to send, or None when the line is dropped (and counted)."""
        self.rows_read += 1
        if self.rows_read == 1:
            line = line.removeprefix(_BOM)
        row = line.strip()
        if not row:
            self.blank_dropped += 1
            return None
        user_id = row
        if self.source.with_values:
            user_id, _, value = row.partition(",")
            user_id = user_id.strip()
            if not user_id:
                self.missing_id_dropped += 1
                return None
            # NOTE: how TA reads an empty value ("id,") or a comma inside a value
            # is not documented; both rows are sent as they are.
            row = f"{user_id},{value.strip()}"
        if user_id in self._seen:
            self.duplicates_dropped += 1
            return None
        self._seen.add(user_id)
        self.rows_sent += 1
        return row
