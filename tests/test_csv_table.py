"""The CSV reader: type inference, exact arrays, and every error paragraph (line, column, value)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annkit.data.csv_rows import checked_rows, csv_columns, csv_rows
from annkit.data.csv_table import Table, read_csv_table
from annkit.data.inputs import read_table
from annkit.errors import AnnkitError


def write(tmp_path: Path, text: str | bytes, name: str = "data.csv") -> Path:
    """A file with exactly these bytes (no newline translation)."""
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return path


def error(path: Path, **kwargs) -> str:
    """The AnnkitError message of read_csv_table, checked to be one paragraph."""
    kwargs.setdefault("target", "y")
    with pytest.raises(AnnkitError) as info:
        read_csv_table(path, **kwargs)
    message = str(info.value)
    assert "\n" not in message, message
    return message


def ints(n: int) -> str:
    return "".join(f"{i},{i % 7}\n" for i in range(n))


# ------------------------------------------------------------------------------ inference


def test_string_labels_are_classification_with_sorted_classes(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,dog\n3,4,cat\n5,6,emu\n7,8,cat\n")
    t = read_csv_table(path, target="y")
    assert isinstance(t, Table)
    assert (t.task, t.task_reason) == ("classification", "string labels")
    assert t.classes == ("cat", "dog", "emu")
    np.testing.assert_array_equal(t.y, [1, 0, 2, 0])
    assert t.y.dtype == np.int64
    np.testing.assert_array_equal(t.x, [[1, 2], [3, 4], [5, 6], [7, 8]])
    assert t.x.dtype == np.float32 and t.x.shape == (4, 2)
    assert t.w is None
    assert (t.feature_names, t.target_names) == (["a", "b"], ["y"])
    assert t.path == path.resolve()


def test_few_distinct_integers_are_classification(tmp_path):
    path = write(tmp_path, "x,y\n0.5,2\n1.5,0\n2.5,1\n3.5,2\n")
    t = read_csv_table(path, target="y")
    assert (t.task, t.task_reason) == ("classification", "3 distinct integer values")
    assert t.classes == ("0", "1", "2")
    np.testing.assert_array_equal(t.y, [2, 0, 1, 2])


def test_twenty_distinct_integers_are_classification_twenty_one_regression(tmp_path):
    t20 = read_csv_table(write(tmp_path, "x,y\n" + "".join(f"{i},{i}\n" for i in range(20)), "a.csv"), target="y")
    assert (t20.task, t20.task_reason) == ("classification", "20 distinct integer values")
    assert len(t20.classes) == 20
    t21 = read_csv_table(write(tmp_path, "x,y\n" + "".join(f"{i},{i}\n" for i in range(21)), "b.csv"), target="y")
    assert (t21.task, t21.task_reason) == ("regression", "21 distinct integer values (over 20)")
    assert t21.classes is None
    assert t21.y.shape == (21, 1) and t21.y.dtype == np.float32


def test_floats_are_regression(tmp_path):
    path = write(tmp_path, "x,y\n1,0.5\n2,1\n3,-2.25\n")
    t = read_csv_table(path, target="y")
    assert (t.task, t.task_reason) == ("regression", "non-integer values")
    assert t.classes is None
    np.testing.assert_array_equal(t.y, np.array([[0.5], [1.0], [-2.25]], np.float32))
    assert t.y.dtype == np.float32


def test_several_01_targets_are_multilabel(tmp_path):
    path = write(tmp_path, "f,red,blue\n0.1,1,0\n0.2,0,0\n0.3,1,1\n")
    t = read_csv_table(path, target=["red", "blue"])
    assert (t.task, t.task_reason) == ("multilabel", "all targets 0/1")
    assert t.classes == ("red", "blue") and t.target_names == ["red", "blue"]
    np.testing.assert_array_equal(t.y, np.array([[1, 0], [0, 0], [1, 1]], np.float32))
    assert t.y.dtype == np.float32
    assert t.feature_names == ["f"]


def test_several_numeric_targets_are_regression(tmp_path):
    path = write(tmp_path, "f,u,v\n1,0,2.5\n2,1,3\n")
    t = read_csv_table(path, target=["u", "v"])
    assert (t.task, t.task_reason) == ("regression", "2 numeric targets, not all 0/1")
    np.testing.assert_array_equal(t.y, np.array([[0, 2.5], [1, 3]], np.float32))
    assert t.classes is None


def test_numeric_class_names_sort_as_numbers_without_trailing_zero(tmp_path):
    path = write(tmp_path, "x,y\n1,10\n2,2.5\n3,-3\n4,1.0\n5,1\n6,10.0\n")
    t = read_csv_table(path, target="y", task="classification")
    assert (t.task, t.task_reason) == ("classification", "set by dataset.task")
    assert t.classes == ("-3", "1", "2.5", "10")
    np.testing.assert_array_equal(t.y, [3, 2, 0, 1, 1, 3])


def test_explicit_tasks(tmp_path):
    path = write(tmp_path, "x,y\n1,0\n2,1\n3,1\n")
    reg = read_csv_table(path, target="y", task="regression")
    assert (reg.task, reg.task_reason) == ("regression", "set by dataset.task")
    np.testing.assert_array_equal(reg.y, np.array([[0], [1], [1]], np.float32))
    multi = read_csv_table(path, target="y", task="multilabel")
    assert (multi.task, multi.classes) == ("multilabel", ("y",))
    np.testing.assert_array_equal(multi.y, np.array([[0], [1], [1]], np.float32))


def test_mixed_numbers_and_text_labels_are_string_labels(tmp_path):
    t = read_csv_table(write(tmp_path, "x,y\n1,b\n2,10\n3,2\n"), target="y")
    assert (t.task, t.classes) == ("classification", ("10", "2", "b"))
    np.testing.assert_array_equal(t.y, [2, 0, 1])


# ------------------------------------------------------------------------------ columns and format


def test_default_features_are_every_other_column_in_file_order(tmp_path):
    path = write(tmp_path, "c,y,a,wt,b\n1,0,2,1,3\n4,1,5,2,6\n")
    t = read_csv_table(path, target="y", weight_column="wt")
    assert t.feature_names == ["c", "a", "b"]
    np.testing.assert_array_equal(t.x, [[1, 2, 3], [4, 5, 6]])


def test_explicit_features_pick_columns_in_their_order(tmp_path):
    path = write(tmp_path, "c,y,a,b\n1,0,2,3\n4,1,5,6\n")
    t = read_csv_table(path, target="y", features=["b", "c"])
    assert t.feature_names == ["b", "c"]
    np.testing.assert_array_equal(t.x, [[3, 1], [6, 4]])


def test_weight_column(tmp_path):
    path = write(tmp_path, "x,y,w\n1,a,0.5\n2,b,0\n3,a,2\n")
    t = read_csv_table(path, target="y", weight_column="w")
    np.testing.assert_array_equal(t.w, np.array([0.5, 0, 2], np.float32))
    assert t.w.dtype == np.float32
    assert t.feature_names == ["x"]


def test_bom_quotes_whitespace_crlf_and_trailing_blank_lines(tmp_path):
    text = '\ufeff"x" , "label"\r\n" 1.5 ","red, dark"\r\n2 ,  blue \r\n"3",red\r\n\r\n\r\n   \r\n'
    t = read_csv_table(write(tmp_path, text), target="label")
    assert t.feature_names == ["x"] and t.target_names == ["label"]
    assert t.classes == ("blue", "red", "red, dark")
    np.testing.assert_array_equal(t.y, [2, 0, 1])
    np.testing.assert_array_equal(t.x, np.array([[1.5], [2], [3]], np.float32))


def test_other_delimiter(tmp_path):
    t = read_csv_table(write(tmp_path, "x;y\n1.5;a\n2;b\n"), target="y", delimiter=";")
    assert t.classes == ("a", "b")
    np.testing.assert_array_equal(t.x, np.array([[1.5], [2]], np.float32))
    with pytest.raises(AnnkitError, match=r'Feature column "x".*line 2 has "1,5".*decimal comma'):
        read_csv_table(write(tmp_path, "x;y\n1,5;a\n2;b\n"), target="y", delimiter=";", task="classification")
    tab = read_csv_table(write(tmp_path, "x\ty\n1\t2\n3\t4\n", "t.tsv"), target="y", delimiter="\\t")
    np.testing.assert_array_equal(tab.x, [[1], [3]])


def test_classes_of_the_training_file_map_labels(tmp_path):
    val = write(tmp_path, "x,y\n1,dog\n2,cat\n3,dog\n", "val.csv")
    t = read_csv_table(val, target="y", task="classification", classes=("ant", "cat", "dog"))
    assert t.classes == ("ant", "cat", "dog")
    np.testing.assert_array_equal(t.y, [2, 1, 2])
    numeric = write(tmp_path, "x,y\n1,2.0\n2,0\n", "num.csv")
    t = read_csv_table(numeric, target="y", classes=("0", "1", "2"))
    assert (t.task, t.task_reason) == ("classification", "classes of the training file")
    np.testing.assert_array_equal(t.y, [2, 0])


def test_csv_columns(tmp_path):
    assert csv_columns(write(tmp_path, '\ufeff a ,b,"c,d"\n1,2,3\n')) == ["a", "b", "c,d"]
    assert csv_columns(write(tmp_path, "a;b\n", "s.csv"), delimiter=";") == ["a", "b"]


def test_line_numbers_count_blank_lines_and_multiline_fields(tmp_path):
    path = write(tmp_path, 'x,note,y\n1,"two\nlines",a\n\n2,ok,b\n,ok,a\n')
    message = error(path, features=["x"])
    assert 'line 6, feature column "x" is empty' in message


# ------------------------------------------------------------------------------ file errors


def test_missing_file_names_the_resolved_path_and_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    write(tmp_path, "x,y\n1,2\n", "train.csv")
    message = error(Path("trian.csv"))
    assert f"There is no file at {tmp_path.resolve() / 'trian.csv'}" in message
    assert 'from "trian.csv", relative to the working directory' in message
    assert "dataset.path" in message
    assert 'Did you mean "train.csv"?' in message
    message = error(tmp_path / "nowhere" / "d.csv")
    assert f"Its folder {tmp_path / 'nowhere'} does not exist either" in message
    with pytest.raises(AnnkitError, match="There is no file at"):
        csv_columns(tmp_path / "none.csv")


def test_folder_instead_of_file(tmp_path):
    assert "dataset.path names a folder, not a file" in error(tmp_path)


@pytest.mark.parametrize("text", ["", "\n\n  \n", "\ufeff"])
def test_empty_file(tmp_path, text):
    path = write(tmp_path, text)
    assert f"{path} is empty: it holds no header line" in error(path)
    with pytest.raises(AnnkitError, match="is empty"):
        csv_columns(path)


def test_header_only(tmp_path):
    path = write(tmp_path, "x,y\n\n")
    assert f"{path} has a header (line 1: x, y) but no data rows" in error(path)
    assert csv_columns(path) == ["x", "y"]


def test_not_utf8(tmp_path):
    path = write(tmp_path, "x,y\n1,a\n2,caf\xe9\n".encode("latin-1"))
    message = error(path)
    assert "is not UTF-8 text: line 3 holds the byte 0xe9" in message and "iconv" in message


def test_excel_workbook(tmp_path):
    path = write(tmp_path, b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00\xff\xfe", "book.csv")
    assert "zip archive (an Excel .xlsx workbook is one)" in error(path)


def test_duplicate_column_name(tmp_path):
    path = write(tmp_path, "x,y,x\n1,2,3\n")
    assert "The header (line 1) of " in error(path)
    assert 'names "x" twice (columns 1 and 3)' in error(path)
    with pytest.raises(AnnkitError, match='names "x" twice'):
        csv_columns(path)


def test_empty_column_name_from_pandas_index(tmp_path):
    message = error(write(tmp_path, ",x,y\n0,1,2\n"))
    assert "has no name for column 1 of 3" in message and "index=False" in message


def test_empty_column_name_from_trailing_delimiter(tmp_path):
    message = error(write(tmp_path, "x,y,\n1,2,\n"))
    assert "has no name for column 3 of 3" in message and "ends with a delimiter" in message


def test_row_with_too_many_fields(tmp_path):
    message = error(write(tmp_path, "x,y\n1,2\n3,4,5\n"))
    assert "Line 3 of " in message and "has 3 fields but the header (line 1) has 2 columns (x, y)" in message
    assert "must be quoted" in message


def test_row_with_too_few_fields(tmp_path):
    message = error(write(tmp_path, "a,x,y\n1,2,3\n\n4,5\n"))
    assert "Line 4 of " in message and "has 2 fields but the header (line 1) has 3 columns" in message


def test_row_with_trailing_delimiter(tmp_path):
    message = error(write(tmp_path, "x,y\n1,2,\n"))
    assert "Line 2 of" in message and 'ends with an extra ","' in message


def test_unclosed_quote(tmp_path):
    message = error(write(tmp_path, 'x,y\n1,2\n"3,4\n5,6\n'))
    assert "Line 3 of" in message and "has 1 field but" in message
    assert "opened on line 3 is probably never closed" in message


def read_rows(path: Path, delimiter: str = ",", key: str = "dataset.path") -> tuple[list[list[str]], list[int]]:
    """The shared row reader as training and predict call it: the header, then the checked rows."""
    rows = csv_rows(path, delimiter, key)
    try:
        header_line, header = next(rows)
        return checked_rows(path, rows, header, header_line, delimiter, key)
    finally:
        rows.close()


def test_the_row_reader_numbers_lines_skips_blank_lines_and_keeps_rows_of_empty_cells(tmp_path):
    path = write(tmp_path, 'x,y\r\n\r\n1, "2,5"\n,\n\n"multi\nline",4\n   \n')
    rows, starts = read_rows(path)
    assert rows == [["1", "2,5"], ["", ""], ["multi\nline", "4"]]
    assert starts == [3, 4, 6]  # the line each row starts on; "   " and "" are blank, "," is not


@pytest.mark.parametrize(
    ("text", "line", "got", "hint"),
    [
        ("x,y\n1,2\n3\n", 3, "1 field", "not a left-out one"),
        ("x,y\n1,2\n\n3,4,5\n", 4, "3 fields", "must be quoted"),
        ("x,y\n1,2,\n", 2, "3 fields", 'ends with an extra ","'),
    ],
)
def test_the_row_reader_refuses_a_row_with_the_wrong_number_of_fields(tmp_path, text, line, got, hint):
    path = write(tmp_path, text)
    for key in ("dataset.path", "input"):
        with pytest.raises(AnnkitError) as info:
            read_rows(path, key=key)
        message = str(info.value)
        assert "\n" not in message, message
        assert f"Line {line} of {path} has {got} but the header (line 1) has 2 columns (x, y)" in message
        assert "Every row needs one field per column" in message and hint in message


def test_training_and_predict_refuse_a_short_or_long_row_with_the_same_message(tmp_path):
    """One reader: predict used to fill a short row's missing cells with "" and to drop a long row's extra
    fields, shifting nothing into place; now it refuses the row exactly as training does."""
    for text, got in (("x1,x2\n0,1\n0.5\n", "1 field"), ("x1,x2\n0,1\n1,2,3\n", "3 fields")):
        path = write(tmp_path, text, "rows.csv")
        trained = error(path, target="x2")
        with pytest.raises(AnnkitError) as info:
            read_table(path, ["x1", "x2"])
        predicted = str(info.value)
        assert "\n" not in predicted, predicted
        line = f"Line 3 of {path} has {got} but the header (line 1) has 2 columns (x1, x2). Every row needs one field per column."
        assert line in trained and line in predicted
    assert "set dataset.delimiter" in trained and "dataset.delimiter" not in predicted.split("must be quoted")[0]
    assert 'the checkpoint\'s run read fields separated by ","' in predicted


def test_predict_reads_like_training_quotes_bom_blank_lines_and_other_columns(tmp_path):
    path = write(tmp_path, '\ufefflabel;x2;x1\r\n\r\n"a;b"; 2 ;1\r\n?;4;3\r\n\r\n', "p.csv")
    np.testing.assert_array_equal(read_table(path, ["x1", "x2"], ";"), [[1.0, 2.0], [3.0, 4.0]])


def test_predict_errors_name_input_not_dataset_path(tmp_path):
    path = write(tmp_path, b"x1,x2\n1,2\n\xe9,3\n", "latin.csv")
    with pytest.raises(AnnkitError, match="line 3 holds the byte 0xe9") as info:
        read_table(path, ["x1", "x2"])
    assert "point input at the converted file" in str(info.value)


# ------------------------------------------------------------------------------ column errors


def test_missing_target_lists_columns_and_suggests(tmp_path):
    path = write(tmp_path, "sepal,species\n1,a\n")
    message = error(path, target="Species")
    assert 'dataset.target names a column the file does not have: "Species" is not a column' in message
    assert 'Did you mean "species"?' in message and "Its columns: sepal, species." in message


def test_missing_feature_and_weight_columns(tmp_path):
    path = write(tmp_path, "age,income,y\n1,2,a\n")
    message = error(path, features=["age", "incom", "zzz"])
    assert 'dataset.features names 2 columns the file does not have: "incom" is not a column' in message
    assert 'Did you mean "income"?' in message and '"zzz" is not a column' in message
    message = error(path, weight_column="wieght")
    assert message.startswith('dataset.sample_weight names a column the file does not have: "wieght"')
    assert "Its columns: age, income, y." in message


def test_missing_target_hints_at_the_delimiter(tmp_path):
    message = error(write(tmp_path, "x;y\n1;2\n"), target="y")
    assert 'The header has a single column, "x;y": the file looks separated by ";" rather than ","' in message
    assert """set 'dataset.delimiter=";"'.""" in message
    message = error(write(tmp_path, "x\ty\n1\t2\n", "t.tsv"), target="y")
    assert """separated by tabs rather than ","; set 'dataset.delimiter="\\t"'.""" in message


def test_column_both_feature_and_target(tmp_path):
    path = write(tmp_path, "a,b,y\n1,2,0\n")
    message = error(path, features=["a", "y"])
    assert 'Column "y" is both dataset.target and in dataset.features' in message
    assert "dataset.features=[a]" in message


def test_weight_also_target_or_feature(tmp_path):
    path = write(tmp_path, "a,w,y\n1,2,0\n")
    assert 'Column "y" is both dataset.target and dataset.sample_weight' in error(path, weight_column="y")
    assert 'Column "w" is both dataset.sample_weight and in dataset.features' in error(
        path, features=["a", "w"], weight_column="w"
    )


def test_no_features(tmp_path):
    assert "has no feature columns" in error(write(tmp_path, "y\n1\n2\n"))
    assert "dataset.features is an empty list" in error(write(tmp_path, "x,y\n1\n", "b.csv"), features=[])


def test_unknown_task_and_bad_delimiter(tmp_path):
    path = write(tmp_path, "x,y\n1,2\n")
    message = error(path, task="clasification")
    assert 'Unknown dataset.task "clasification". Did you mean "classification"?' in message
    assert "dataset.delimiter must be one character" in error(path, delimiter=";;")


# ------------------------------------------------------------------------------ value errors


def test_text_feature_names_line_column_value_and_numeric_columns(tmp_path):
    path = write(tmp_path, "age,city,income,y\n31,Paris,10,a\n40,Oslo,20,b\n")
    message = error(path)
    assert 'Feature column "city" of ' in message
    assert 'holds text, not numbers: line 2 has "Paris" (values like "Paris", "Oslo")' in message
    assert "dataset.features=[age,income] (the numeric columns)" in message
    assert "encode it as numbers" in message


def test_text_feature_with_spaces_in_names_quotes_the_override(tmp_path):
    path = write(tmp_path, "annual income,city,y\n1,x,a\n")
    assert """'dataset.features=["annual income"]'""" in error(path)


def test_thousands_separator_hint(tmp_path):
    message = error(write(tmp_path, 'x,y\n"1,200",a\n'))
    assert 'line 2 has "1,200"' in message and "thousands separators" in message


@pytest.mark.parametrize(
    ("cell", "what"),
    [
        ("", "is empty"),
        ("nan", 'holds "nan" (not a number)'),
        ("NaN", 'holds "NaN" (not a number)'),
        ("inf", 'holds "inf" (infinite)'),
        ("-Infinity", 'holds "-Infinity" (infinite)'),
        ("NA", 'holds "NA" (a missing-value marker)'),
    ],
)
def test_missing_feature_value(tmp_path, cell, what):
    path = write(tmp_path, f"a,b,y\n1,2,x\n3,{cell},y\n5,6,x\n")
    message = error(path)
    assert f'line 3, feature column "b" {what}.' in message
    assert "1 row of 3 has an empty, NaN or infinite cell (b: 1)" in message
    assert "Fill the values in" in message and "drop those rows" in message


@pytest.mark.parametrize("cell", ["", "nan", "inf"])
def test_missing_target_value(tmp_path, cell):
    for labels in (("dog", "cat"), ("0.5", "1.5")):
        path = write(tmp_path, f"a,y\n1,{labels[0]}\n2,{labels[1]}\n3,{cell}\n")
        message = error(path)
        assert 'line 4, target column "y"' in message
        assert "Rows without a target (y) cannot be used: drop them." in message


def test_missing_marker_among_numeric_targets_is_missing_not_a_label(tmp_path):
    message = error(write(tmp_path, "a,y\n1,0.5\n2,NA\n3,1.5\n"))
    assert 'line 3, target column "y" holds "NA" (a missing-value marker)' in message


def test_missing_weight_value(tmp_path):
    message = error(write(tmp_path, "a,y,w\n1,0,1\n2,1,nan\n"), weight_column="w")
    assert 'line 3, weight column "w" holds "nan" (not a number)' in message


def test_missing_values_count_rows_and_columns(tmp_path):
    path = write(tmp_path, "a,b,y\n1,,x\n,,y\n5,6,x\n,,\n")
    message = error(path)
    assert 'line 2, feature column "b" is empty.' in message
    assert "3 rows of 4 have an empty, NaN or infinite cell (y: 1, a: 2, b: 3)" in message
    message = error(write(tmp_path, "a,y\n1,x\n,\n", "e.csv"))
    assert 'line 3, target column "y" is empty — every field of that line is empty' in message


def test_regression_with_text_labels(tmp_path):
    path = write(tmp_path, "x,species\n1,setosa\n2,virginica\n3,setosa\n")
    message = error(path, target="species", task="regression")
    assert 'dataset.task=regression needs numbers, but target column "species"' in message
    assert 'holds text labels ("setosa", "virginica"; 3 of 3 rows)' in message
    assert "dataset.task=classification" in message and "loss=ce" in message
    assert "loss=mse, which then compares softmax probabilities with one-hot targets" in message


def test_regression_with_a_stray_text_cell(tmp_path):
    message = error(write(tmp_path, "x,y\n1,0.5\n2,oops\n3,1.5\n"), task="regression")
    assert '1 cell that is not a number: line 3 holds "oops"' in message


def test_multilabel_with_values_other_than_01(tmp_path):
    path = write(tmp_path, "x,a,b\n1,0,1\n2,1,2\n3,1,0\n")
    message = error(path, target=["a", "b"], task="multilabel")
    assert 'dataset.task=multilabel needs every target to be 0 or 1, but target column "b"' in message
    assert 'holds "2" at line 3 (values seen: "1", "2", "0")' in message


def test_several_targets_with_strings(tmp_path):
    path = write(tmp_path, "x,a,b\n1,0,red\n2,1,blue\n")
    for task in ("auto", "regression"):
        message = error(path, target=["a", "b"], task=task)
        assert 'column "b"' in message and "red" in message
    message = error(path, target=["a", "b"])
    assert 'dataset.target lists 2 columns (a, b), and column "b" of' in message
    assert 'holds text: line 2 has "red"' in message and "dataset.target=b alone" in message


def test_classification_with_several_targets(tmp_path):
    path = write(tmp_path, "x,a,b\n1,0,1\n")
    message = error(path, target=["a", "b"], task="classification")
    assert "dataset.task=classification takes one target column" in message and "lists 2: a, b" in message


def test_negative_weights(tmp_path):
    path = write(tmp_path, "x,y,w\n1,0,1\n2,1,-0.5\n3,0,-2\n")
    message = error(path, weight_column="w")
    assert "Line 3 of" in message and 'the weight in column "w" (dataset.sample_weight) is -0.5' in message
    assert "2 rows in all have a negative weight" in message


def test_all_zero_weights(tmp_path):
    message = error(write(tmp_path, "x,y,w\n1,0,0\n2,1,0.0\n"), weight_column="w")
    assert 'Every weight in column "w" of' in message and "is 0" in message


def test_text_weights(tmp_path):
    message = error(write(tmp_path, "x,y,w\n1,0,high\n"), weight_column="w")
    assert 'dataset.sample_weight names column "w" of' in message and 'line 2 has "high"' in message


def test_label_not_among_training_classes(tmp_path):
    path = write(tmp_path, "x,y\n1,cat\n2,bird\n3,fish\n4,bird\n", "test.csv")
    message = error(path, task="classification", classes=("cat", "dog"))
    assert (
        f'Line 3 of {path}: label "bird" in column "y" is not one of the classes of the training file (cat, dog)'
        in message
    )
    assert '3 rows of this file hold labels outside them ("bird", "fish")' in message


def test_value_beyond_float32(tmp_path):
    message = error(write(tmp_path, "x,y\n1,0\n1e39,1\n"))
    assert "Line 3 of" in message and 'feature column "x" holds 1e39, beyond the float32 range' in message


def test_multilabel_val_file_with_training_classes(tmp_path):
    path = write(tmp_path, "f,red,blue\n0.1,1,0\n0.2,0,1\n", "val.csv")
    t = read_csv_table(path, target=["red", "blue"], classes=("red", "blue"))
    assert (t.task, t.task_reason, t.classes) == ("multilabel", "classes of the training file", ("red", "blue"))
    message = error(path, target=["red", "blue"], task="multilabel", classes=("blue", "red"))
    assert "the training file's multilabel targets were blue, red" in message


def test_missing_markers_are_labels_in_a_text_column(tmp_path):
    t = read_csv_table(write(tmp_path, "x,region\n1,EU\n2,NA\n3,EU\n"), target="region")
    assert t.classes == ("EU", "NA")
    np.testing.assert_array_equal(t.y, [0, 1, 0])


def test_reading_leaves_the_garbage_collector_as_it_was(tmp_path):
    import gc

    read_csv_table(write(tmp_path, "x,y\n1,2\n"), target="y")
    assert gc.isenabled()
    error(write(tmp_path, "x,y\n1,2,3\n", "bad.csv"))
    assert gc.isenabled()
