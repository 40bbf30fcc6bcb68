"""Parse a streamed text/csv id upload into a temporary CSV file, row by row.

A cluster upload has one id per line; a tag upload has two columns, the id and,
after the first comma, the tag value (which may contain more commas). Blank lines
are skipped and are not counted. A line may be CSV-quoted (`"a,b",gold`); then
its fields follow the CSV rules. The body is read chunk by chunk and never held whole, so an
upload of a million ids needs memory for one chunk only.

The output file has `row_num,id,value` rows (value empty when absent), which
`Store.save_import` loads with DuckDB's CSV reader.
"""

import codecs
import csv
import io
import logging
import os
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

# Maximum line length, in characters. A longer line is rejected as bad CSV.
MAX_LINE_CHARS = 64 * 1024


class UploadError(Exception):
    """The upload is empty, not UTF-8, or has a line of the wrong shape."""


@dataclass(frozen=True)
class SpooledUpload:
    """A parsed upload on disk; the caller deletes `path` when done."""

    path: Path
    rows: int
    empty_values: int


class _RowWriter:
    def __init__(self, stream: io.TextIOBase, *, is_tag: bool) -> None:
        self._writer = csv.writer(stream, lineterminator="\n")
        self._is_tag = is_tag
        self.line_number = 0
        self.rows = 0
        self.empty_values = 0

    def add_lines(self, lines: list[str]) -> None:
        batch: list[tuple[int, str, str]] = []
        for line in lines:
            self.line_number += 1
            text = line.rstrip("\r")
            if not text.strip():
                continue
            batch.append(self._parse(text))
        self._writer.writerows(batch)

    def _parse(self, text: str) -> tuple[int, str, str]:
        if '"' in text:
            fields = next(csv.reader([text]))
        elif self._is_tag and "," in text:
            # The value is everything after the first comma, commas included.
            fields = list(text.partition(",")[::2])
        else:
            fields = text.split(",")
        expected = 2 if self._is_tag else 1
        if len(fields) != expected:
            shape = "id,value" if self._is_tag else "one id"
            raise UploadError(
                f"line {self.line_number} has {len(fields)} columns; a "
                f"{'tag' if self._is_tag else 'cluster'} upload takes {shape} per line"
            )
        self.rows += 1
        value = fields[1].strip() if self._is_tag else ""
        if self._is_tag and not value:
            self.empty_values += 1
        return (self.rows, fields[0].strip(), value)


async def spool_upload(
    chunks: AsyncIterator[bytes], *, is_tag: bool, directory: str | None = None
) -> SpooledUpload:
    """Read an id upload from `chunks` into a temporary CSV file.

    Raises:
        UploadError: the body has no ids, is not UTF-8, or a line has the wrong
            number of columns or is longer than MAX_LINE_CHARS.
    """
    descriptor, name = tempfile.mkstemp(
        prefix="ta-sandbox-upload-", suffix=".csv", dir=directory
    )
    path = Path(name)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8", newline="") as stream:
            writer = _RowWriter(stream, is_tag=is_tag)
            await _copy_lines(chunks, writer)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    if writer.rows == 0:
        path.unlink(missing_ok=True)
        raise UploadError(
            "the upload has no ids; send one id per line"
            + (" as id,value" if is_tag else "")
            + " with Content-Type text/csv"
        )
    return SpooledUpload(path=path, rows=writer.rows, empty_values=writer.empty_values)


async def _copy_lines(chunks: AsyncIterator[bytes], writer: _RowWriter) -> None:
    # utf-8-sig drops a byte order mark at the start, as spreadsheet exports add one.
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    pending = ""
    try:
        async for chunk in chunks:
            pending += decoder.decode(chunk)
            *lines, pending = pending.split("\n")
            if len(pending) > MAX_LINE_CHARS:
                raise UploadError(
                    f"line {writer.line_number + len(lines) + 1} is longer than "
                    f"{MAX_LINE_CHARS} characters; send one id per line"
                )
            writer.add_lines(lines)
        pending += decoder.decode(b"", final=True)
    except UnicodeDecodeError as error:
        raise UploadError(
            f"the upload is not UTF-8 text ({error.reason} at byte {error.start} "
            "of a chunk); save the file as UTF-8"
        ) from None
    writer.add_lines([pending])
