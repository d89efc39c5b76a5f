"""import_faq: CSV (UTF-8, UTF-8 with BOM, CP932) and JSONL into the knowledge base through faq_entries_upsert."""

import json
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.faq.importers import (
    MAX_ANSWER_CHARS,
    MAX_ID_CHARS,
    MAX_QUESTION_CHARS,
    MAX_TAGS,
    FaqImportError,
    faq_file_parse,
    faq_import_file,
)
from apps.faq.models import FaqEntry, FaqEntryVersion, KbRevision
from apps.faq.services import FaqRow

HEADER = "id,question,answer,category,tags,alt_questions"

# Rows as Japanese operators write them: commas and quotes in text, a multi-line answer, "|" lists.
JAPANESE_CSV = (
    f"{HEADER}\r\n"
    "t-pw,パスワードを忘れました,ログイン画面の「パスワードをお忘れの方」から再設定できます。,accounts,"
    "パスワード|ログイン,パスワードがわからない|ログインできない\r\n"
    't-pay,支払い方法は？,"クレジットカード、銀行振込、コンビニ払いがご利用いただけます。\r\n'
    '手数料は「無料」です。",billing,支払い,\r\n'
)


def write(tmp_path: Path, name: str, content: str | bytes, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    # newline="" so the test decides the line endings, as Excel does.
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        with path.open("w", encoding=encoding, newline="") as f:
            f.write(content)
    return path


def jsonl(*objects: dict) -> str:
    return "".join(json.dumps(obj, ensure_ascii=False) + "\n" for obj in objects)


def entry(external_id: str) -> FaqEntry:
    return FaqEntry.objects.get(external_id=external_id)


@pytest.fixture
def nothing_written():
    """Asserts that the test changed nothing in the knowledge base."""
    before = (KbRevision.objects.count(), FaqEntry.objects.count(), FaqEntryVersion.objects.count())
    yield
    assert (KbRevision.objects.count(), FaqEntry.objects.count(), FaqEntryVersion.objects.count()) == before


# --- Encodings and formats -------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("encoding", "detected"), [("utf-8", "utf-8"), ("utf-8-sig", "utf-8-sig"), ("cp932", "cp932")])
def test_it_imports_csv_in_each_encoding_excel_saves(tmp_path, encoding, detected):
    path = write(tmp_path, "faq.csv", JAPANESE_CSV, encoding=encoding)

    report = faq_import_file(path, actor="tester")

    assert report.encoding == detected
    assert report.created == ["t-pw", "t-pay"] and report.errors == []
    pw = entry("t-pw")
    assert pw.question == "パスワードを忘れました"
    assert pw.tags == ["パスワード", "ログイン"]
    assert pw.alt_questions == ["パスワードがわからない", "ログインできない"]
    assert pw.category == "accounts" and pw.is_active
    pay = entry("t-pay")
    # Excel's "\r\n" inside a quoted cell is stored as "\n".
    assert pay.answer == "クレジットカード、銀行振込、コンビニ払いがご利用いただけます。\n手数料は「無料」です。"
    assert pay.tags == ["支払い"] and pay.alt_questions == []
    revision = KbRevision.objects.get(number=report.revision)
    assert revision.actor == "tester" and revision.entries_changed == 2
    assert pw.revision == pay.revision == report.revision


@pytest.mark.django_db
def test_it_decodes_with_the_encoding_given(tmp_path):
    path = write(tmp_path, "faq.csv", f"{HEADER}\nt-1,配送について,翌日お届けします。,delivery,,\n", "shift_jis")

    report = faq_import_file(path, encoding="shift_jis")

    assert report.encoding == "shift_jis"
    assert entry("t-1").answer == "翌日お届けします。"


@pytest.mark.django_db
def test_it_imports_jsonl(tmp_path):
    content = jsonl(
        {
            "id": "t-1",
            "question": "返品できますか",
            "answer": "30日以内なら可能です。",
            "category": "returns",
            "tags": ["返品", "交換"],
            "alt_questions": ["返品したい", "交換できる？"],
        },
        {"id": "t-2", "question": "解約したい", "answer": "お電話で承ります。", "is_active": False},
        {
            "id": "t-3",
            "question": "住所変更",
            "answer": "マイページから変更できます。",
            "active": True,
            "category": None,
        },
    )
    report = faq_import_file(write(tmp_path, "faq.jsonl", content))

    assert report.created == ["t-1", "t-2", "t-3"]
    assert entry("t-1").tags == ["返品", "交換"]
    assert entry("t-1").alt_questions == ["返品したい", "交換できる？"]
    assert entry("t-2").is_active is False and entry("t-2").category == ""
    assert entry("t-3").is_active is True


@pytest.mark.django_db
def test_it_splits_lists_on_bars_and_ignores_empty_items(tmp_path):
    path = write(tmp_path, "faq.csv", f"{HEADER}\nt-1,質問,回答,, a | b ||c| ,聞き方1|聞き方2|\n")

    faq_import_file(path)

    assert entry("t-1").tags == ["a", "b", "c"]
    assert entry("t-1").alt_questions == ["聞き方1", "聞き方2"]


@pytest.mark.django_db
def test_it_strips_whitespace_and_keeps_text_otherwise_as_written(tmp_path):
    decomposed = "か\u3099"  # "が" as two code points: NFC would merge them; the import must not.
    path = write(tmp_path, "faq.csv", f"{HEADER}\n  t-1 ,\u3000ｶﾞｲﾄﾞ{decomposed}  ,  回答  ,,,\n")

    faq_import_file(path)

    stored = entry("t-1")
    assert stored.question == f"ｶﾞｲﾄﾞ{decomposed}"
    assert stored.answer == "回答"


@pytest.mark.django_db
def test_it_reads_is_active_as_excel_writes_it(tmp_path):
    path = write(tmp_path, "faq.csv", "id,question,answer,active\nt-1,q,a,FALSE\nt-2,q,a,TRUE\nt-3,q,a,\nt-4,q,a,0\n")

    faq_import_file(path)

    assert [entry(i).is_active for i in ("t-1", "t-2", "t-3", "t-4")] == [False, True, True, False]


@pytest.mark.django_db
def test_it_needs_the_format_option_when_the_extension_says_nothing(tmp_path):
    path = write(tmp_path, "faq.txt", f"{HEADER}\nt-1,q,a,,,\n")

    with pytest.raises(FaqImportError) as raised:
        faq_import_file(path)
    assert "--format" in str(raised.value.report.errors[0])

    assert faq_import_file(path, fmt="csv").created == ["t-1"]


# --- Upsert by id ----------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_reimporting_upserts_by_id_and_keeps_the_old_version(tmp_path):
    first = faq_import_file(write(tmp_path, "faq.csv", f"{HEADER}\nt-1,質問,古い回答,,,\nt-2,質問2,回答2,,,\n"))

    second = faq_import_file(write(tmp_path, "faq.csv", f"{HEADER}\nt-1,質問,新しい回答,,,\nt-2,質問2,回答2,,,\n"))

    assert second.updated == ["t-1"] and second.unchanged == ["t-2"] and second.created == []
    assert second.revision == first.revision + 1
    assert entry("t-1").answer == "新しい回答" and entry("t-1").revision == second.revision
    assert entry("t-2").revision == first.revision
    versions = entry("t-1").versions.order_by("revision")
    assert [(v.revision, v.answer) for v in versions] == [(first.revision, "古い回答"), (second.revision, "新しい回答")]


@pytest.mark.django_db
def test_reimporting_the_same_file_makes_no_revision(tmp_path):
    path = write(tmp_path, "faq.csv", JAPANESE_CSV, encoding="cp932")
    faq_import_file(path)
    revisions = KbRevision.objects.count()

    report = faq_import_file(path)

    assert report.revision is None
    assert report.unchanged == ["t-pw", "t-pay"] and report.created == report.updated == []
    assert KbRevision.objects.count() == revisions
    assert entry("t-pw").versions.count() == 1


@pytest.mark.django_db
def test_dry_run_reports_and_writes_nothing(tmp_path, nothing_written):
    report = faq_import_file(write(tmp_path, "faq.csv", JAPANESE_CSV), dry_run=True)

    assert report.dry_run and not report.imported
    assert report.created == ["t-pw", "t-pay"] and report.revision is None


# --- Bad input: reported with the line a user sees, nothing imported -------------------------------------

BAD_FILES = [
    pytest.param("faq.csv", f"{HEADER}\nt-1,q,a,,,\n,q,a,,,\n", [(3, "id is blank")], id="blank-id"),
    pytest.param("faq.csv", f"{HEADER}\nt-1,  ,a,,,\n", [(2, "question is blank")], id="blank-question"),
    pytest.param("faq.csv", f"{HEADER}\nt-1,q,,,,\n", [(2, "answer is blank")], id="blank-answer"),
    pytest.param("faq.csv", "id,question,category\nt-1,q,c\n", [(1, "missing column(s) answer")], id="missing-column"),
    pytest.param(
        "faq.csv", "id,question,answer,colour\nt-1,q,a,red\n", [(1, "unknown column(s) 'colour'")], id="unknown-column"
    ),
    pytest.param("faq.csv", "t-1,q,a\nt-2,q,a\n", [(1, "bad header")], id="no-header"),
    pytest.param(
        "faq.csv", "id,question,answer,active,is_active\nt-1,q,a,1,1\n", [(1, "more than once")], id="active-twice"
    ),
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,q,a,,,\nt-2,q,a,,,\nt-1,q2,a2,,,\n",
        [(2, 'duplicate id "t-1" (also on line 4)'), (4, 'duplicate id "t-1" (also on line 2)')],
        id="duplicate-id",
    ),
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,q,a,,,\nt-2,q,a,,,extra,cells\n",
        [(3, "7 cells but the header has 6")],
        id="too-many-cells",
    ),
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,{'長' * (MAX_QUESTION_CHARS + 1)},a,,,\n",
        [(2, f"question is too long ({MAX_QUESTION_CHARS + 1} characters; at most {MAX_QUESTION_CHARS})")],
        id="long-question",
    ),
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,q,{'長' * (MAX_ANSWER_CHARS + 1)},,,\n",
        [(2, "answer is too long")],
        id="long-answer",
    ),
    pytest.param("faq.csv", f"{HEADER}\n{'x' * (MAX_ID_CHARS + 1)},q,a,,,\n", [(2, "id is too long")], id="long-id"),
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,q,a,,{'|'.join(f't{i}' for i in range(MAX_TAGS + 1))},\n",
        [(2, f"tags has too many items ({MAX_TAGS + 1}; at most {MAX_TAGS})")],
        id="too-many-tags",
    ),
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,ベル\x07,a,,,\n",
        [(2, "question contains a control character (U+0007) at character 3")],
        id="control-char",
    ),
    pytest.param(
        "faq.csv",
        f'{HEADER}\nt-1,"一行目\n二行目",a,,,\n',
        [(2, "question contains a line break")],
        id="line-break-in-question",
    ),
    pytest.param("faq.csv", f"{HEADER}\nt 1,q,a,,,\n", [(2, "id must not contain spaces")], id="space-in-id"),
    # A quoted answer over three physical lines: the next row's error is on the line an editor shows.
    pytest.param(
        "faq.csv",
        f'{HEADER}\r\nt-1,q,"一行目\r\n二行目\r\n三行目",,,\r\nt-2,q,,,,\r\n',
        [(5, "answer is blank")],
        id="after-multiline-cell",
    ),
    pytest.param(
        "faq.csv",
        f'{HEADER}\nt-1,q,a,,,\nt-2,q,"never closed,,,\nt-3,q,a,,,\n',
        [(3, "never closed")],
        id="unclosed-quote",
    ),
    pytest.param("faq.csv", f'{HEADER}\nt-1,"q"x,a,,,\n', [(2, "broken CSV quoting")], id="stray-quote"),
    pytest.param(
        "faq.jsonl",
        '{"id": "t-1", "question": "q", "answer": "a"}\n{"id": "t-2", "question": \n',
        [(2, "invalid JSON")],
        id="invalid-json",
    ),
    pytest.param(
        "faq.jsonl",
        '{"id": "t-1", "question": "q", "answer": "a"}\n\n[{"id": "t-2"}]\n',
        [(3, "expected a JSON object, got a list")],
        id="json-array",
    ),
    pytest.param(
        "faq.jsonl",
        jsonl({"id": 7, "question": ["q"], "answer": "a", "tags": "a|b", "is_active": "yes"}),
        [
            (
                1,
                "id must be a string, not a number; question must be a string, not a list; tags must be a "
                'list of strings, not a string; is_active must be true or false, not "yes"',
            )
        ],
        id="wrong-types",
    ),
    pytest.param("faq.jsonl", jsonl({"id": "t-1", "question": "q"}), [(1, "answer is missing")], id="missing-key"),
    pytest.param(
        "faq.jsonl",
        jsonl({"id": "t-1", "question": "q", "answer": "a", "colour": "red"}),
        [(1, 'unknown field "colour"')],
        id="unknown-key",
    ),
    pytest.param(
        "faq.jsonl",
        jsonl({"id": "t-1", "question": "q", "answer": "a", "tags": ["a|b"]}),
        [(1, 'tags item 1 must not contain "|"')],
        id="bar-in-list-item",
    ),
    pytest.param(
        "faq.jsonl",
        jsonl({"id": "t-1", "question": "q", "answer": "a", "alt_questions": ["ok", "改\n行"]}),
        [(1, "alt_questions item 2 contains a line break")],
        id="line-break-in-list-item",
    ),
    pytest.param(
        "faq.jsonl",
        '{"id": "t-1", "question": "\\ud800", "answer": "a"}\n',
        [(1, "question contains a control character (U+D800)")],
        id="lone-surrogate",
    ),
    pytest.param("faq.csv", b"", [(None, "the file is empty")], id="empty"),
    pytest.param("faq.csv", b"\xef\xbb\xbf \r\n\r\n", [(None, "the file is empty")], id="bom-and-blank-lines"),
    pytest.param("faq.jsonl", b"\n\n", [(None, "the file is empty")], id="empty-jsonl"),
    pytest.param("faq.csv", f"{HEADER}\r\n".encode(), [(None, "the file has no FAQ rows")], id="header-only"),
    pytest.param(
        "faq.csv", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", [(None, "not text (it contains binary data)")], id="binary"
    ),
    pytest.param("faq.csv", b"PK\x03\x04\x14\x00\x06\x00", [(None, "Excel workbook must be saved as CSV")], id="xlsx"),
    pytest.param("faq.csv", f"{HEADER}\nt-1,q,a,,,\n".encode("utf-16"), [(None, "UTF-16")], id="utf-16"),
    # A UTF-8 file with one damaged byte must not be read as CP932 mojibake.
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,質問,回答,,,\n".encode() + b"t-2,\xff,a,,,\n",
        [(3, "not valid UTF-8 text (bytes ff")],
        id="damaged-utf-8",
    ),
    pytest.param(
        "faq.csv",
        f"{HEADER}\nt-1,質問,回答,,,\n".encode("cp932") + b"t-2,\x82,a,,,\n",
        [(3, "not valid UTF-8 or CP932 (Shift_JIS) text")],
        id="neither-utf8-nor-cp932",
    ),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("name", "content", "expected"), BAD_FILES)
def test_it_reports_each_bad_input_with_its_line_and_imports_nothing(
    tmp_path, nothing_written, name, content, expected
):
    path = write(tmp_path, name, content)

    with pytest.raises(FaqImportError) as raised:
        faq_import_file(path)

    errors = raised.value.report.errors
    assert [error.line for error in errors] == [line for line, _ in expected], [str(e) for e in errors]
    for error, (_, reason) in zip(errors, expected, strict=True):
        assert reason in error.message


@pytest.mark.django_db
def test_it_counts_lines_in_cp932_files_with_japanese_and_crlf(tmp_path, nothing_written):
    content = f'{HEADER}\r\nt-1,質問,"回答の\r\n二行目",,,\r\nt-2,質問,,,,\r\n'
    path = write(tmp_path, "faq.csv", content, encoding="cp932")

    with pytest.raises(FaqImportError) as raised:
        faq_import_file(path)

    assert [str(e) for e in raised.value.report.errors] == ["line 4: answer is blank"]


@pytest.mark.django_db
def test_it_points_at_the_header_even_after_blank_lines(tmp_path, nothing_written):
    with pytest.raises(FaqImportError) as raised:
        faq_import_file(write(tmp_path, "faq.csv", "\n\nid,question\nt-1,q\n"))

    assert raised.value.report.errors[0].line == 3


@pytest.mark.django_db
def test_an_unknown_encoding_is_reported(tmp_path, nothing_written):
    with pytest.raises(FaqImportError) as raised:
        faq_import_file(write(tmp_path, "faq.csv", f"{HEADER}\nt-1,q,a,,,\n"), encoding="klingon")

    assert str(raised.value.report.errors[0]) == 'unknown encoding "klingon"'


# --- --skip-invalid --------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_skip_invalid_imports_the_good_rows_and_reports_the_bad(tmp_path):
    content = f"{HEADER}\nt-1,q1,a1,,,\nt-2,q2,,,,\nt-3,q3,a3,,,\nt-3,q3,again,,,\nt-4,q4,a4,,,\n"

    report = faq_import_file(write(tmp_path, "faq.csv", content), skip_invalid=True)

    assert report.created == ["t-1", "t-4"]
    assert [str(e) for e in report.errors] == [
        "line 3: answer is blank",
        'line 4: duplicate id "t-3" (also on line 5)',
        'line 5: duplicate id "t-3" (also on line 4)',
    ]
    assert not FaqEntry.objects.filter(external_id__in=["t-2", "t-3"]).exists()


@pytest.mark.django_db
def test_skip_invalid_still_refuses_a_file_it_cannot_read(tmp_path, nothing_written):
    # An unclosed quote swallows the rest of the file, so even the rows before it are not trusted.
    content = f'{HEADER}\nt-1,q,a,,,\nt-2,"q,a,,,\nt-3,q,a,,,\n'

    with pytest.raises(FaqImportError):
        faq_import_file(write(tmp_path, "faq.csv", content), skip_invalid=True)


@pytest.mark.django_db
def test_skip_invalid_with_no_good_row_imports_nothing_and_says_so(tmp_path, nothing_written):
    with pytest.raises(FaqImportError):
        faq_import_file(write(tmp_path, "faq.csv", f"{HEADER}\nt-1,q,,,,\n"), skip_invalid=True)


# --- Parsing without the database ------------------------------------------------------------------------


def test_parse_returns_rows_with_their_lines(tmp_path):
    result = faq_file_parse(write(tmp_path, "faq.csv", f'{HEADER}\nt-1,q,"a\nb",c,x|y,z\n\nt-2,q,a,,,\n'))

    assert [(p.line, p.row.external_id) for p in result.rows] == [(2, "t-1"), (5, "t-2")]
    assert result.rows[0].row == FaqRow("t-1", "q", "a\nb", "c", ("x", "y"), ("z",), True)


# --- The management command ------------------------------------------------------------------------------


def run_import(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("import_faq", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_command_imports_and_prints_a_summary(tmp_path):
    out, err = run_import(str(write(tmp_path, "faq.csv", JAPANESE_CSV, encoding="cp932")))

    assert "Read 2 rows" in out and "cp932" in out
    assert "2 created, 0 updated, 0 unchanged" in out and err == ""
    assert FaqEntry.objects.filter(external_id__in=["t-pw", "t-pay"]).count() == 2


@pytest.mark.django_db
def test_command_prints_each_bad_row_and_fails_without_importing(tmp_path, nothing_written):
    path = write(tmp_path, "faq.csv", f"{HEADER}\nt-1,q,a,,,\nt-2,,a,,,\nt-3,q,,,,\n")
    err = StringIO()

    with pytest.raises(CommandError, match="2 errors; nothing imported. Fix them or pass --skip-invalid"):
        call_command("import_faq", str(path), stdout=StringIO(), stderr=err)

    assert err.getvalue().splitlines() == ["line 3: question is blank", "line 4: answer is blank"]


@pytest.mark.django_db
def test_command_skip_invalid_imports_the_rest(tmp_path):
    out, err = run_import(str(write(tmp_path, "faq.csv", f"{HEADER}\nt-1,q,a,,,\nt-2,,a,,,\n")), "--skip-invalid")

    assert err.splitlines() == ["line 3: question is blank"]
    assert "1 valid, 1 skipped" in out and "1 created" in out
    assert FaqEntry.objects.filter(external_id="t-1").exists()


@pytest.mark.django_db
def test_command_dry_run_writes_nothing(tmp_path, nothing_written):
    out, _ = run_import(
        str(write(tmp_path, "faq.jsonl", jsonl({"id": "t-1", "question": "q", "answer": "a"}))), "--dry-run"
    )

    assert "Dry run, nothing written: would be 1 created" in out


@pytest.mark.django_db
def test_command_takes_format_and_encoding_options(tmp_path):
    path = write(tmp_path, "faq.txt", f"{HEADER}\nt-1,質問,回答,,,\n", encoding="cp932")

    out, _ = run_import(str(path), "--format", "csv", "--encoding", "cp932")

    assert entry("t-1").question == "質問"


@pytest.mark.django_db
def test_command_reports_a_missing_file(tmp_path):
    with pytest.raises(CommandError, match="No such file"):
        run_import(str(tmp_path / "nope.csv"))
