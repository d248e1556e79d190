"""Import errors say what is wrong and where (file, line or row, field), so a person can fix the file."""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class RowError:
    file: str
    line: int | None
    field: str | None
    reason: str
    unit: str = "line"
    """"line" for text formats (JSONL, CSV), "row" for columnar ones (Parquet, HF datasets)."""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f", {self.unit} {self.line}"
        if self.field:
            where += f", field '{self.field}'"
        return f"{where}: {self.reason}"


class RowProblem(Exception):
    """Raised while parsing one row; the reader adds the file and line."""

    def __init__(self, field: str | None, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


class ImportFailed(Exception):
    """The import wrote nothing; `errors` lists what was wrong (the first is the headline)."""

    def __init__(self, errors: list[RowError], hint: str = "", *, total: int | None = None) -> None:
        self.errors = errors
        self.hint = hint
        self.total = max(total or 0, len(errors))
        """Rows with errors, when `errors` lists only the first of them."""
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = str(self.errors[0])
        if self.total > 1:
            text += f" (and {self.total - 1:,} more rows with errors)"
        if self.hint:
            text += f"; {self.hint}"
        return text

    def as_dict(self) -> dict:
        return {"detail": self.message, "errors": [asdict(e) for e in self.errors[:100]]}
