"""The position-keeping JSON reader behind the in-place daemon.json edit."""

from __future__ import annotations

import json

import pytest

from nodeguard.docker.jsontext import JsonTextError, line_col, parse, parse_document


def test_spans_cover_exact_source_of_keys_and_values() -> None:
    text = (
        '{\n  "a": 1e3,\n  "b": {"c": [1.0, "\\u00e9"]},\n  "d": 123456789012345678901234567890\n}'
    )
    root = parse(text)
    spans = {m.key: text[m.key_start : m.value.end] for m in root.members}
    assert spans == {
        "a": '"a": 1e3',
        "b": '"b": {"c": [1.0, "\\u00e9"]}',
        "d": '"d": 123456789012345678901234567890',
    }
    d = root.member("d")
    assert d is not None and d.value.value == "123456789012345678901234567890"
    b = root.member("b")
    assert b is not None
    inner = b.value.member("c")
    assert inner is not None and inner.value.items[1].value == "é"


def test_parses_what_python_json_parses_to_the_same_values() -> None:
    text = json.dumps({"x": [True, False, None, -0.5, "é\n"], "y": {"z": {}}, "w": []})
    root = parse(text)
    x = root.member("x")
    assert x is not None
    assert [item.value for item in x.value.items] == [True, False, None, "-0.5", "é\n"]


@pytest.mark.parametrize(
    ("text", "where", "reason"),
    [
        ('{"a": 1,\n "a": 2}', (2, 2), "duplicate key 'a' (first at 1:2)"),
        ('{"a": [1, 2,]}', (1, 13), "trailing comma before ']'"),
        ('{"a": 01}', (1, 8), "expected ',' or '}'"),
        ('{"a": tru}', (1, 7), "expected a value"),
        ('{"a": "x\\q"}', (1, 9), "invalid \\escape"),
        ("{'a': 1}", (1, 2), "expected a string key"),
    ],
)
def test_errors_carry_line_and_column(text: str, where: tuple[int, int], reason: str) -> None:
    with pytest.raises(JsonTextError) as caught:
        parse(text)
    assert (caught.value.line, caught.value.col) == where
    assert reason in caught.value.reason


def test_line_col_counts_characters_not_bytes() -> None:
    text = '{"é": 1,\n  "ü": x}'
    assert line_col(text, text.index("x")) == (2, 8)


@pytest.mark.parametrize(
    "text",
    [
        '{"x": {"a": 1,\n "a": 2}}',
        '{"x": [1, 2,]}',
        '{"x": [01]}',
        '{"x": {"n": NaN}}',
        '{"x": [Infinity]}',
        '{"x": ["a\tb"]}',
        '{"x": ' + "[" * 250 + "]" * 250 + "}",
        '{"x": [1, 2}',
    ],
)
def test_skimmed_values_fail_exactly_as_parsed_ones(text: str) -> None:
    with pytest.raises(JsonTextError) as slow:
        parse(text)
    with pytest.raises(JsonTextError) as fast:
        parse_document(text, full=())
    assert (fast.value.line, fast.value.col, fast.value.reason) == (
        slow.value.line,
        slow.value.col,
        slow.value.reason,
    )


def test_skimmed_values_keep_their_exact_spans() -> None:
    text = '{"a": [1, {"b": "]}"}], "log-opts": {"max-size": "1m"}, "c": {"d": [[]]}}'
    full, skimmed = parse(text), parse_document(text, full=("log-opts",))
    assert [(m.key, m.value.kind, m.value.start, m.value.end) for m in skimmed.members] == [
        (m.key, m.value.kind, m.value.start, m.value.end) for m in full.members
    ]
    opts = skimmed.member("log-opts")
    assert opts is not None and opts.value.members[0].value.value == "1m"
    a = skimmed.member("a")
    assert a is not None and a.value.items == ()
