"""FAQ files in and out: CSV (as Excel saves it) and JSON Lines.

Parsing turns a file into validated `FaqRow`s plus a list of errors, each with the line number a user sees in
an editor. Importing hands the valid rows to `faq_entries_upsert`, the one write path, so an import is one KB
revision and a re-import of the same file changes nothing. Exporting writes the same formats back so that
export → import is a no-op.

Formats:
- CSV: a header row naming the columns (`id`, `question`, `answer`, `category`, `tags`, `alt_questions`, and
  optionally `is_active` or `active`); `tags` and `alt_questions` are separated by `|`. Read as UTF-8 (with or
  without BOM) or, failing that, CP932, which is what Japanese Excel saves as "CSV".
  A cell that a spreadsheet would run as a formula (=, +, -, @ first) is written with a leading ' and read
  without it (see `_CSV_FORMULA_START`).
- JSONL: one JSON object per line with the same keys; `tags` and `alt_questions` are lists of strings.

Text is kept as written (no NFC): only surrounding whitespace is stripped, and line breaks inside an answer
become "\\n" (Excel writes "\\r\\n" inside cells, browsers post "\\r\\n" from textareas).
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import unicodedata
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, BinaryIO, Literal, TextIO, cast

from django.db import models, transaction
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from apps.faq.models import FaqEntry
from apps.faq.services import FaqRow, UpsertReport, faq_entries_upsert, kb_revision_current

Format = Literal["csv", "jsonl"]
FORMATS: tuple[Format, ...] = ("csv", "jsonl")
FORMAT_BY_SUFFIX: dict[str, Format] = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}


# Limits: generous for real FAQs, small enough that a pasted document or a shifted CSV column stands out.
def _model_max_length(name: str) -> int:
    return cast(models.CharField, FaqEntry._meta.get_field(name)).max_length or 0


MAX_ID_CHARS = _model_max_length("external_id")
MAX_QUESTION_CHARS = 500
MAX_ANSWER_CHARS = 5000
MAX_CATEGORY_CHARS = _model_max_length("category")
MAX_TAG_CHARS = 50
MAX_TAGS = 20
MAX_ALT_QUESTIONS = 50

LIST_SEPARATOR = "|"
CSV_COLUMNS = ("id", "question", "answer", "category", "tags", "alt_questions", "is_active")

# A CSV cell that Excel or LibreOffice would run as a formula when the file is opened: it starts with =, +, -, @
# (or their full-width forms, which Japanese Excel reads the same way). An FAQ entry can hold what a customer
# wrote (an operator makes one from a correction in one step), so `=HYPERLINK(...)` or a DDE payload must not
# reach a supervisor's spreadsheet as a live formula. Such a cell is written with a leading ' (the usual
# defence against CSV injection; Excel then shows the text, apostrophe included), and reading takes one ' off a
# cell of 's followed by one of these, so export → import still gives back exactly what was stored.
_CSV_FORMULA_START = re.compile(r"'*[=+\-@＝＋－＠]")


def _csv_cell_out(value: str) -> str:
    return "'" + value if _CSV_FORMULA_START.match(value) else value


def _csv_cell_in(value: str) -> str:
    return value[1:] if value.startswith("'") and _CSV_FORMULA_START.match(value) else value


REQUIRED_COLUMNS = ("id", "question", "answer")
COLUMN_ALIASES = {"active": "is_active"}


# --- Validation of one row -------------------------------------------------------------------------------


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _strip_answer(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\r\n", "\n").replace("\r", "\n").strip()
    return value


def _none_to(default: Any):
    # JSON null in an optional field means "not given".
    return lambda value: default if value is None else value


def _items_without_blanks(value: Any) -> Any:
    # "a||b" or a trailing "|" in a CSV cell, or "" in a JSON list, is not an item.
    if isinstance(value, list):
        return [item for item in value if not (isinstance(item, str) and not item.strip())]
    return value


def _not_blank(value: str) -> str:
    if not value:
        raise PydanticCustomError("blank", "is blank")
    return value


def _is_forbidden_char(ch: str, *, newlines_ok: bool) -> bool:
    if newlines_ok and ch in "\n\t":
        return False
    # Cc: C0/C1 controls (incl. tab/newline in one-line fields); Cs: lone surrogates from JSON "\ud800";
    # Zl/Zp: U+2028/U+2029, which some editors show as line breaks and others do not.
    return unicodedata.category(ch) in ("Cc", "Cs", "Zl", "Zp")


def _no_control_chars(*, newlines_ok: bool):
    def check(value: str) -> str:
        for position, ch in enumerate(value, 1):
            if _is_forbidden_char(ch, newlines_ok=newlines_ok):
                what = {"\n": "a line break", "\r": "a line break", "\t": "a tab"}.get(ch, "a control character")
                raise PydanticCustomError(
                    "control_character",
                    "contains {what} ({code}) at character {position}",
                    {"what": what, "code": f"U+{ord(ch):04X}", "position": position},
                )
        return value

    return check


def _no_whitespace(value: str) -> str:
    if any(ch.isspace() for ch in value):
        raise PydanticCustomError("id_whitespace", "must not contain spaces")
    return value


def _no_separator(value: str) -> str:
    # An item with "|" inside could not be written back to CSV and read as the same list.
    if LIST_SEPARATOR in value:
        raise PydanticCustomError("separator", f'must not contain "{LIST_SEPARATOR}"')
    return value


ExternalId = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(max_length=MAX_ID_CHARS),
    AfterValidator(_not_blank),
    AfterValidator(_no_control_chars(newlines_ok=False)),
    AfterValidator(_no_whitespace),
]
Question = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(max_length=MAX_QUESTION_CHARS),
    AfterValidator(_not_blank),
    AfterValidator(_no_control_chars(newlines_ok=False)),
]
Answer = Annotated[
    str,
    BeforeValidator(_strip_answer),
    StringConstraints(max_length=MAX_ANSWER_CHARS),
    AfterValidator(_not_blank),
    AfterValidator(_no_control_chars(newlines_ok=True)),
]
Category = Annotated[
    str,
    BeforeValidator(_strip),
    BeforeValidator(_none_to("")),
    StringConstraints(max_length=MAX_CATEGORY_CHARS),
    AfterValidator(_no_control_chars(newlines_ok=False)),
]
Tag = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(max_length=MAX_TAG_CHARS),
    AfterValidator(_no_control_chars(newlines_ok=False)),
    AfterValidator(_no_separator),
]
AltQuestion = Annotated[
    str,
    BeforeValidator(_strip),
    StringConstraints(max_length=MAX_QUESTION_CHARS),
    AfterValidator(_no_control_chars(newlines_ok=False)),
    AfterValidator(_no_separator),
]


class FaqRowIn(BaseModel):
    """One FAQ row as it arrives from a file or the admin form, before it becomes a `FaqRow`.

    JSONL is validated strictly (a number is not a string, "yes" is not a boolean); CSV cells are all text,
    so there `is_active` accepts true/false, yes/no, 1/0 (as Excel writes TRUE/FALSE).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: ExternalId
    question: Question
    answer: Answer
    category: Category = ""
    tags: Annotated[
        list[Tag], BeforeValidator(_items_without_blanks), BeforeValidator(_none_to([])), Field(max_length=MAX_TAGS)
    ] = []
    alt_questions: Annotated[
        list[AltQuestion],
        BeforeValidator(_items_without_blanks),
        BeforeValidator(_none_to([])),
        Field(max_length=MAX_ALT_QUESTIONS),
    ] = []
    is_active: Annotated[bool, BeforeValidator(_strip), BeforeValidator(_none_to(True))] = True

    def to_row(self) -> FaqRow:
        return FaqRow(
            external_id=self.id,
            question=self.question,
            answer=self.answer,
            category=self.category,
            tags=tuple(self.tags),
            alt_questions=tuple(self.alt_questions),
            is_active=self.is_active,
        )


_JSON_TYPE_NAMES = {
    dict: "an object",
    list: "a list",
    str: "a string",
    bool: "true/false",
    int: "a number",
    float: "a number",
    type(None): "null",
}


def _json_type(value: Any) -> str:
    return _JSON_TYPE_NAMES.get(type(value), type(value).__name__)


@dataclass(frozen=True)
class FieldProblem:
    """Why one field of a row is bad; `field` is the file's key ("id", "tags", ...)."""

    field: str
    message: str

    def __str__(self) -> str:
        return self.message


def _describe(error: ErrorDetails) -> str:
    """One pydantic error as a reason a person editing the file understands."""
    loc = error["loc"]
    name = str(loc[0]) if loc else "row"
    if len(loc) > 1 and isinstance(loc[1], int):
        name = f"{name} item {loc[1] + 1}"
    kind, ctx, value = error["type"], error.get("ctx") or {}, error.get("input")
    if kind == "missing":
        return f"{name} is missing"
    if kind == "extra_forbidden":
        return f'unknown field "{name}"'
    if kind == "string_type":
        return f"{name} must be a string, not {_json_type(value)}"
    if kind == "list_type":
        return f"{name} must be a list of strings, not {_json_type(value)}"
    if kind in ("bool_type", "bool_parsing"):
        shown = f'"{value}"' if isinstance(value, str) else _json_type(value)
        return f"{name} must be true or false, not {shown}"
    if kind in ("too_long", "string_too_long"):
        if isinstance(value, list):
            return f"{name} has too many items ({ctx.get('actual_length')}; at most {ctx['max_length']})"
        length = ctx.get("actual_length") or len(_strip(value))
        return f"{name} is too long ({length} characters; at most {ctx['max_length']})"
    return f"{name} {error['msg']}"


def faq_row_validate(data: dict, *, strict: bool = False) -> tuple[FaqRow | None, list[FieldProblem]]:
    """Validate one row given as a dict with the file's keys; returns the row, or None and why it is bad.

    The import files and the admin form share this, so an entry saved in one can always be written to and
    read back from the other.
    """
    try:
        return FaqRowIn.model_validate(data, strict=strict).to_row(), []
    except ValidationError as exc:
        return None, [FieldProblem(str(e["loc"][0]) if e["loc"] else "", _describe(e)) for e in exc.errors()]


def faq_row_from_entry(entry: FaqEntry) -> FaqRow:
    """The row that describes a stored entry, e.g. to write it out or to upsert it with one field changed."""
    return FaqRow(
        external_id=entry.external_id,
        question=entry.question,
        answer=entry.answer,
        category=entry.category,
        tags=tuple(entry.tags),
        alt_questions=tuple(entry.alt_questions),
        is_active=entry.is_active,
    )


# --- Parsing a file --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RowError:
    """A reason the file or one row of it cannot be imported. `line` is None for the whole file."""

    line: int | None
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}" if self.line is not None else self.message


@dataclass(frozen=True)
class ParsedRow:
    line: int
    row: FaqRow


@dataclass
class ParseResult:
    fmt: str = ""
    encoding: str = ""
    rows: list[ParsedRow] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    rows_read: int = 0
    # True when the file as a whole could not be read (binary, undecodable, bad header, broken CSV quoting):
    # then no row is trusted, even with skip_invalid.
    fatal: bool = False

    def _fail(self, line: int | None, message: str) -> ParseResult:
        self.errors.append(RowError(line, message))
        self.fatal = True
        return self


def _format_for(path: Path, fmt: str | None) -> str | None:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
        return fmt
    return FORMAT_BY_SUFFIX.get(path.suffix.lower())


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _decode(data: bytes, encoding: str | None, result: ParseResult) -> str | None:
    """Decode the bytes: UTF-8 (BOM or not), else CP932, unless an encoding is given."""
    if encoding is not None:
        try:
            name = codecs.lookup(encoding).name
        except LookupError:
            result._fail(None, f'unknown encoding "{encoding}"')
            return None
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        result._fail(
            None, 'the file is UTF-16 (Excel "Unicode text"); save it as "CSV UTF-8" or pass --encoding utf-16'
        )
        return None
    else:
        name = ""

    if not name.startswith(("utf-16", "utf-32")) and b"\x00" in data:
        result._fail(
            None, "the file is not text (it contains binary data); an Excel workbook must be saved as CSV first"
        )
        return None

    def fail(exc: UnicodeDecodeError, what: str, hint: str = "") -> None:
        bad = data[exc.start : exc.start + 4].hex(" ")
        result._fail(_line_of(data, exc.start), f"not valid {what} text (bytes {bad}){hint}")

    if name:
        try:
            # A BOM is not text, whichever spelling of UTF-8 the user chose.
            text = data.decode("utf-8-sig" if name == "utf-8" else name)
        except UnicodeDecodeError as exc:
            fail(exc, name)
            return None
        result.encoding = name
        return text.removeprefix("\ufeff")

    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if not data[: exc.start].isascii():
            # Real UTF-8 text comes before the bad byte, so this is a damaged UTF-8 file. CP932 would decode
            # most of it without complaint, as mojibake, so do not fall back.
            fail(exc, "UTF-8", "; the lines before it are UTF-8, so the file looks damaged")
            return None
        try:
            text = data.decode("cp932")
        except UnicodeDecodeError as cp932_exc:
            fail(cp932_exc, "UTF-8 or CP932 (Shift_JIS)", "; pass --encoding if it is saved in another encoding")
            return None
        result.encoding = "cp932"
        return text
    result.encoding = "utf-8-sig" if data.startswith(codecs.BOM_UTF8) else "utf-8"
    return text.removeprefix("\ufeff")


def _parse_header(cells: list[str], line: int, result: ParseResult) -> list[str] | None:
    names = [COLUMN_ALIASES.get(c.strip().lower(), c.strip().lower()) for c in cells]
    problems = []
    for position, name in enumerate(names, 1):
        if not name:
            problems.append(f"column {position} has no name")
    unknown = [cells[i].strip() for i, name in enumerate(names) if name and name not in CSV_COLUMNS]
    if unknown:
        problems.append(f"unknown column(s) {', '.join(repr(u) for u in unknown)}")
    repeated = sorted({name for name in names if name and names.count(name) > 1})
    if repeated:
        problems.append(f"column(s) given more than once: {', '.join(repeated)} (is_active and active are the same)")
    missing = [name for name in REQUIRED_COLUMNS if name not in names]
    if missing:
        problems.append(f"missing column(s) {', '.join(missing)}")
    if problems:
        expected = ",".join(CSV_COLUMNS)
        result._fail(line, f"bad header: {'; '.join(problems)}. The first line must name the columns, e.g. {expected}")
        return None
    return names


def _csv_records(text: str, result: ParseResult) -> Iterator[tuple[int, list[str]]]:
    """Yield (first physical line, cells) per CSV record; quoted cells may span lines."""
    # newline="" keeps line breaks inside quoted cells and lets the reader count physical lines.
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    previous_end = 0
    while True:
        start = previous_end + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                message = 'a quoted cell starts on this line and is never closed (missing ")'
            else:
                message = f'broken CSV quoting ({exc}); a " inside a cell must be doubled ("")'
            result._fail(start, message)
            return
        previous_end = reader.line_num
        yield start, cells


def _parse_csv(text: str, result: ParseResult) -> Iterator[tuple[int, dict | None, list[str]]]:
    records = _csv_records(text, result)
    header = None
    for line, cells in records:
        if any(c.strip() for c in cells):
            header = _parse_header(cells, line, result)
            break
    if header is None:
        return
    for line, cells in records:
        # Blank lines, and the ",,,,," rows Excel writes for rows that were once touched, are not rows.
        if not any(c.strip() for c in cells):
            continue
        extra = cells[len(header) :]
        if any(c.strip() for c in extra):
            yield line, None, [f"{len(cells)} cells but the header has {len(header)} columns (an unquoted comma?)"]
            continue
        data: dict[str, Any] = dict(zip(header, map(_csv_cell_in, cells), strict=False))
        for name in ("tags", "alt_questions"):
            if name in data:
                data[name] = data[name].split(LIST_SEPARATOR)
        if not data.get("is_active", "x").strip():
            del data["is_active"]
        yield line, data, []


def _parse_jsonl(text: str, result: ParseResult) -> Iterator[tuple[int, dict | None, list[str]]]:
    # Split on "\n" only: str.splitlines() would also split on U+2028 and friends, which JSON allows in strings.
    for line, raw in enumerate(text.split("\n"), 1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            yield line, None, [f"invalid JSON: {exc.msg} (column {exc.colno})"]
            continue
        if not isinstance(obj, dict):
            hint = " (the file must have one object per line, not one JSON array)" if isinstance(obj, list) else ""
            yield line, None, [f"expected a JSON object, got {_json_type(obj)}{hint}"]
            continue
        if "active" in obj:
            if "is_active" in obj:
                yield line, None, ['both "is_active" and "active" given']
                continue
            obj["is_active"] = obj.pop("active")
        yield line, obj, []


def faq_bytes_parse(data: bytes, *, fmt: str, encoding: str | None = None) -> ParseResult:
    """Parse the bytes of an FAQ file in `fmt` ("csv" or "jsonl") into validated rows and line-numbered errors."""
    if fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    result = ParseResult(fmt=fmt)
    if not data.strip():
        return result._fail(None, "the file is empty")
    text = _decode(data, encoding, result)
    if text is None:
        return result
    if not text.strip():
        return result._fail(None, "the file is empty")

    records = _parse_csv(text, result) if fmt == "csv" else _parse_jsonl(text, result)
    lines_by_id: dict[str, list[int]] = defaultdict(list)
    parsed: list[tuple[int, FaqRow | None, list[str]]] = []
    for line, data_row, problems in records:
        result.rows_read += 1
        row = None
        if data_row is not None:
            raw_id = data_row.get("id")
            if isinstance(raw_id, str) and raw_id.strip():
                lines_by_id[raw_id.strip()].append(line)
            row, field_problems = faq_row_validate(data_row, strict=(fmt == "jsonl"))
            problems = [str(problem) for problem in field_problems]
        parsed.append((line, row, problems))

    for line, row, problems in parsed:
        if row is not None:
            others = [other for other in lines_by_id[row.external_id] if other != line]
            if others:
                problems = [
                    f'duplicate id "{row.external_id}" (also on line{"s" if len(others) > 1 else ""} '
                    f"{', '.join(map(str, others))})"
                ]
        if problems:
            result.errors.append(RowError(line, "; ".join(problems)))
        elif row is not None:
            result.rows.append(ParsedRow(line, row))
    if result.rows_read == 0 and not result.fatal:
        result._fail(None, "the file has no FAQ rows")
    result.errors.sort(key=lambda e: e.line or 0)
    return result


def faq_file_parse(path: str | Path, *, fmt: str | None = None, encoding: str | None = None) -> ParseResult:
    """Parse an FAQ file; the format comes from the extension unless `fmt` is given. Raises OSError if unreadable."""
    path = Path(path)
    detected = _format_for(path, fmt)
    if detected is None:
        return ParseResult()._fail(
            None, f'cannot tell the format from the file name "{path.name}"; pass --format csv or --format jsonl'
        )
    return faq_bytes_parse(path.read_bytes(), fmt=detected, encoding=encoding)


# --- Importing -------------------------------------------------------------------------------------------


@dataclass
class ImportReport:
    path: str
    fmt: str
    encoding: str
    rows_read: int
    rows_valid: int
    errors: list[RowError]
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # The KB revision the import created; None when nothing changed, nothing was imported, or on a dry run.
    revision: int | None = None
    imported: bool = False
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.errors


class FaqImportError(Exception):
    """The file has bad rows (or is unreadable) and nothing was imported; `report.errors` says why."""

    def __init__(self, report: ImportReport):
        self.report = report
        count = len(report.errors)
        super().__init__(f"{report.path}: {count} error{'s' if count != 1 else ''}; nothing imported.")


def faq_import_file(
    path: str | Path,
    *,
    skip_invalid: bool = False,
    fmt: str | None = None,
    encoding: str | None = None,
    actor: str = "",
    dry_run: bool = False,
) -> ImportReport:
    """Import an FAQ file through `faq_entries_upsert`: one KB revision, upsert by id, unchanged rows untouched.

    If any row is bad nothing is imported and FaqImportError is raised, unless `skip_invalid`: then the valid
    rows are imported and the bad ones are listed in the report. A file that cannot be read as a whole
    (binary, undecodable, bad header) and a file with no valid row always raise. `dry_run` reports what would
    change and writes nothing.
    """
    parsed = faq_file_parse(path, fmt=fmt, encoding=encoding)
    report = ImportReport(
        path=str(path),
        fmt=parsed.fmt,
        encoding=parsed.encoding,
        rows_read=parsed.rows_read,
        rows_valid=len(parsed.rows),
        errors=parsed.errors,
        dry_run=dry_run,
    )
    if parsed.errors and (parsed.fatal or not skip_invalid or not parsed.rows):
        raise FaqImportError(report)

    rows = [parsed_row.row for parsed_row in parsed.rows]
    note = f"import {Path(path).name}"
    if dry_run:
        upsert = _upsert_rolled_back(rows=rows, actor=actor, note=note)
    else:
        upsert = faq_entries_upsert(rows=rows, actor=actor, note=note)
        report.revision = upsert.revision
        report.imported = True
    report.created, report.updated, report.unchanged = upsert.created, upsert.updated, upsert.unchanged
    return report


def _upsert_rolled_back(*, rows: list[FaqRow], actor: str, note: str) -> UpsertReport:
    # The real upsert inside a rolled-back savepoint, so a dry run can never disagree with the import. The
    # on_commit index update it schedules is discarded with the savepoint.
    class RollBack(Exception):
        pass

    try:
        with transaction.atomic():
            report = faq_entries_upsert(rows=rows, actor=actor, note=note)
            raise RollBack
    except RollBack:
        return report


# --- Exporting -------------------------------------------------------------------------------------------


class FaqExportError(Exception):
    """An entry cannot be written in the requested encoding; nothing was written."""


DEFAULT_EXPORT_ENCODING = {"csv": "utf-8-sig", "jsonl": "utf-8"}


def faq_rows_render(rows: Iterable[FaqRow], *, fmt: str) -> Iterator[tuple[str | None, str]]:
    """Render rows as file text, chunk by chunk: (external id or None for the header, text)."""
    if fmt == "csv":
        yield None, _csv_line(CSV_COLUMNS)
        for row in rows:
            cells = (
                row.external_id,
                row.question,
                row.answer,
                row.category,
                LIST_SEPARATOR.join(row.tags),
                LIST_SEPARATOR.join(row.alt_questions),
                "true" if row.is_active else "false",
            )
            yield row.external_id, _csv_line(cells)
    elif fmt == "jsonl":
        for row in rows:
            content = row.content()
            # The same field order as the CSV columns, so the two exports read alike.
            obj = {"id": row.external_id} | {name: content[name] for name in CSV_COLUMNS[1:]}
            line = json.dumps(obj, ensure_ascii=False)
            # Escaped so that no editor or line-splitting tool sees a line break inside one record.
            yield row.external_id, line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029") + "\n"
    else:
        raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")


def _csv_line(cells: Iterable[str]) -> str:
    buffer = io.StringIO()
    # CRLF between records as RFC 4180 and Excel do; line breaks inside a quoted answer stay "\n".
    csv.writer(buffer, lineterminator="\r\n").writerow(_csv_cell_out(cell) for cell in cells)
    return buffer.getvalue()


def _check_encodable(external_id: str | None, text: str, encoding: str) -> None:
    try:
        data = text.encode(encoding)
    except UnicodeEncodeError as exc:
        ch = exc.object[exc.start]
        raise FaqExportError(
            f'entry {external_id}: "{ch}" (U+{ord(ch):04X}) cannot be written in {encoding}; '
            "export as UTF-8 (the default) instead"
        ) from exc
    # CP932 encodes some characters one way only (〜 U+301C is read back as ～ U+FF5E): the file would not
    # import as the same text, so refuse rather than change the knowledge base on the next import.
    back = data.decode(encoding)
    if back != text:
        i = next(i for i, (a, b) in enumerate(zip(text, back, strict=False)) if a != b)
        raise FaqExportError(
            f'entry {external_id}: "{text[i]}" (U+{ord(text[i]):04X}) would be read back as "{back[i]}" '
            f"(U+{ord(back[i]):04X}) from {encoding}; export as UTF-8 (the default) instead"
        )


def _rows_for_export(*, include_inactive: bool) -> list[FaqRow]:
    entries = FaqEntry.objects.order_by("external_id")
    if not include_inactive:
        entries = entries.filter(is_active=True)
    return [faq_row_from_entry(entry) for entry in entries]


@dataclass
class ExportReport:
    entries: int
    fmt: str
    encoding: str
    revision: int


def faq_export_file(
    path_or_stream: str | Path | BinaryIO | TextIO,
    *,
    fmt: str | None = None,
    encoding: str | None = None,
    include_inactive: bool = False,
) -> ExportReport:
    """Write the knowledge base as CSV or JSONL that `faq_import_file` reads back unchanged.

    CSV defaults to UTF-8 with a BOM (so Excel opens it as UTF-8), JSONL to UTF-8; `encoding="cp932"` writes
    what Japanese Excel reads natively. `fmt` comes from the file name when not given. A binary stream gets
    encoded bytes; a text stream gets text (its own encoding applies). Nothing is written if any entry
    cannot be encoded (FaqExportError).
    """
    if isinstance(path_or_stream, str | Path):
        fmt = _format_for(Path(path_or_stream), fmt)
        if fmt is None:
            raise ValueError(
                f'Cannot tell the format from the file name "{Path(path_or_stream).name}"; give csv or jsonl.'
            )
    elif fmt is None:
        raise ValueError("fmt is required when writing to a stream.")
    elif fmt not in FORMATS:
        raise ValueError(f"Unknown format {fmt!r}; expected one of {', '.join(FORMATS)}.")
    encoding = codecs.lookup(encoding).name if encoding else DEFAULT_EXPORT_ENCODING[fmt]

    revision = kb_revision_current()
    rows = _rows_for_export(include_inactive=include_inactive)
    chunks = list(faq_rows_render(rows, fmt=fmt))
    text = "".join(chunk for _, chunk in chunks)

    if isinstance(path_or_stream, io.TextIOBase):
        path_or_stream.write(text)
    else:
        # Checked entry by entry so an error names the entry; encoded once so a BOM is written once.
        for external_id, chunk in chunks:
            _check_encodable(external_id, chunk, encoding)
        data = text.encode(encoding)
        if isinstance(path_or_stream, str | Path):
            Path(path_or_stream).write_bytes(data)
        else:
            cast(BinaryIO, path_or_stream).write(data)
    return ExportReport(entries=len(rows), fmt=fmt, encoding=encoding, revision=revision)
