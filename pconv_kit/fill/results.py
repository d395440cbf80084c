"""What :func:`~pconv_kit.fill.fill_folder` reports: one :class:`FileResult` per file, a :class:`ResultKind` each.

The ``kind`` is what a program groups or tests on (the CLI's summary table, a script that retries the files
that failed for a missing mask); ``reason`` is the sentence for a person and may change wording between
releases.
"""

from __future__ import annotations

import enum
import os
from dataclasses import asdict, dataclass, field
from typing import Any

from pconv_kit.utils.files import write_json

__all__ = ["ResultKind", "FileResult", "FillReport"]


class ResultKind(str, enum.Enum):
    """Why a file got its status: the stable category of a :class:`FileResult`.

    The value is a short phrase, so ``str(kind)`` reads well in a summary and the JSON report stays plain.

    Example:
        >>> ResultKind.MISSING_MASK.value, ResultKind.MISSING_MASK.status
        ('missing mask', 'failed')
        >>> ResultKind("output exists") is ResultKind.OUTPUT_EXISTS
        True
    """

    # done
    FILLED = "filled"
    NO_HOLES = "no holes"
    STRIP_FROM_OUTPUT = "review strip from an existing output"
    # skipped
    OUTPUT_EXISTS = "output exists"
    OUTPUT_APPEARED = "output appeared while running"
    LINKED_FOLDER = "linked folder"
    # failed
    UNSUPPORTED_FORMAT = "unsupported format"
    TOO_LARGE = "too large"
    MULTI_PAGE = "several pages"
    UNREADABLE = "unreadable image"
    MISSING_MASK = "missing mask"
    SIZE_MISMATCH = "size mismatch"
    ALL_HOLE = "all hole"
    BAD_INPUT = "unsupported image"
    OUT_OF_MEMORY = "out of memory"
    NAME_COLLISION = "output name collision"
    MODEL_ERROR = "model error"
    NOT_FINITE = "non-finite output"
    OUTPUT_MISMATCH = "existing output does not match"
    WRITE_ERROR = "write error"

    @property
    def status(self) -> str:
        """``"done"``, ``"skipped"`` or ``"failed"``."""
        return _STATUS.get(self, "failed")

    def __str__(self) -> str:
        return self.value


_STATUS = {
    ResultKind.FILLED: "done",
    ResultKind.NO_HOLES: "done",
    ResultKind.STRIP_FROM_OUTPUT: "done",
    ResultKind.OUTPUT_EXISTS: "skipped",
    ResultKind.OUTPUT_APPEARED: "skipped",
    ResultKind.LINKED_FOLDER: "skipped",
}


@dataclass
class FileResult:
    """What happened to one input file.

    Attributes:
        file: path relative to the input folder (POSIX separators).
        status: ``"done"``, ``"skipped"`` or ``"failed"``.
        reason: why it was skipped or failed (or a note such as ``"no holes; copied"``), for a person.
        output: the written file, relative to the output folder.
        mask: where the mask came from (``"--mask a.png"``, ``"masks/a.png"``, ``"sibling a_mask.png"``,
            ``"alpha"``).
        hole_ratio: fraction of hole pixels.
        warnings: non-fatal problems (mask resized, bit depth reduced, alpha dropped, ...).
        kind: the category of the outcome, for programs (:class:`ResultKind`).
    """

    file: str
    status: str
    reason: str = ""
    output: str | None = None
    mask: str | None = None
    hole_ratio: float | None = None
    warnings: list[str] = field(default_factory=list)
    kind: ResultKind = ResultKind.FILLED

    @classmethod
    def of(cls, file: str, kind: ResultKind, reason: str = "", **fields: Any) -> FileResult:
        """A row whose status follows from ``kind``.

        Example:
            >>> r = FileResult.of("a.png", ResultKind.MISSING_MASK, "no mask found")
            >>> r.status, str(r.kind)
            ('failed', 'missing mask')
        """
        return cls(file, kind.status, reason, kind=kind, **fields)


@dataclass
class FillReport:
    """The outcome of :func:`~pconv_kit.fill.fill_folder`: one :class:`FileResult` per file of this shard."""

    in_dir: str
    out_dir: str
    shard: tuple[int, int]
    results: list[FileResult]
    elapsed_s: float
    model: str = ""

    @property
    def counts(self) -> dict[str, int]:
        """Number of files per status."""
        counts = {"done": 0, "skipped": 0, "failed": 0}
        for r in self.results:
            counts[r.status] = counts.get(r.status, 0) + 1
        return counts

    @property
    def failed(self) -> list[FileResult]:
        """The failed files."""
        return [r for r in self.results if r.status == "failed"]

    @property
    def images_per_s(self) -> float:
        """Images written per second of wall time."""
        return self.counts["done"] / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable summary: options, counts, throughput and every file's row."""
        return {
            "in_dir": self.in_dir,
            "out_dir": self.out_dir,
            "model": self.model,
            "shard": list(self.shard),
            "counts": self.counts,
            "elapsed_s": round(self.elapsed_s, 3),
            "images_per_s": round(self.images_per_s, 3),
            "files": [{**asdict(r), "kind": r.kind.value} for r in self.results],
        }

    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON, atomically (creating the folder if needed)."""
        write_json(path, self.to_dict())
