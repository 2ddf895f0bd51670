"""alternative.me Fear & Greed: parse real-shaped payloads exactly; any doubt is a ParseError."""

from __future__ import annotations

import contextlib
import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.sources import ParseError
from bot.sources.fear_greed import parse
from tests.harness.files import fixture_json, fixture_text
from tests.harness.payloads import mutate

NOW = datetime(2025, 11, 1, 12, tzinfo=UTC)


def test_history_parses_oldest_first_with_string_numbers_and_epoch_seconds() -> None:
    points = parse(fixture_json("fear_greed", "history_2025-10.json"), NOW)
    assert len(points) == 31
    assert points[0].ts == datetime(2025, 10, 1, tzinfo=UTC)
    assert points[0].value == 49.0
    assert points[-1].ts == datetime(2025, 10, 31, tzinfo=UTC)
    assert all(a.ts < b.ts for a, b in itertools.pairwise(points))
    assert {p.series for p in points} == {"fear_greed"}


def test_history_matches_the_shared_csv() -> None:
    from tests.harness.files import SHARED_DATA

    expected = {
        line.split(",")[1]: float(line.split(",")[2])
        for line in (SHARED_DATA / "fear_greed_2025-10.csv").read_text().splitlines()[1:]
    }
    points = parse(fixture_json("fear_greed", "history_2025-10.json"), NOW)
    assert {p.ts.date().isoformat(): p.value for p in points} == expected


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty.json", "non-empty `data`"),
        ("error_envelope.json", "provider error: Limit must be a positive integer"),
        ("non_numeric_value.json", "data[0]"),
        ("missing_value.json", "data[0].value"),
        ("millisecond_timestamp.json", "milliseconds"),
        ("rate_limit.json", "non-empty `data`"),
    ],
)
def test_bad_payload_is_a_parse_error_naming_the_field(name: str, reason: str) -> None:
    with pytest.raises(ParseError, match=reason.replace("[", r"\[").replace("]", r"\]")):
        parse(json.loads(fixture_text("fear_greed", name)), NOW)


def test_future_timestamp_is_rejected() -> None:
    payload = fixture_json("fear_greed", "latest.json")
    with pytest.raises(ParseError, match="future"):
        parse(payload, datetime(2025, 10, 20, tzinfo=UTC))


def test_out_of_range_value_is_rejected() -> None:
    payload = fixture_json("fear_greed", "latest.json")
    payload["data"][0]["value"] = "101"
    with pytest.raises(ParseError, match="0–100"):
        parse(payload, NOW)


def test_boolean_is_not_a_number() -> None:
    payload = fixture_json("fear_greed", "latest.json")
    payload["data"][0]["value"] = True
    with pytest.raises(ParseError):
        parse(payload, NOW)


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**15), max_value=10**15),
    st.floats(allow_nan=True),
    st.text(max_size=12),
)
_json = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=300, deadline=None)
@given(path=st.lists(st.integers(0, 40), min_size=1, max_size=4), value=_json)
def test_mutated_payloads_only_ever_raise_parse_error(path: list[int], value: Any) -> None:
    payload = mutate(fixture_json("fear_greed", "latest.json"), path, value)
    try:
        points = parse(payload, NOW)
    except ParseError:
        return
    assert points, "a successful parse returns points"
    for p in points:
        assert 0 <= p.value <= 100
        assert p.ts <= NOW.replace(hour=13)


@settings(max_examples=200, deadline=None)
@given(payload=_json)
def test_arbitrary_json_only_ever_raises_parse_error(payload: Any) -> None:
    with contextlib.suppress(ParseError):
        parse(payload, NOW)
