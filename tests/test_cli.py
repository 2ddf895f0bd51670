"""The `stablewatch` command: exit codes, import/export round trip on the shared real data."""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.cli import main
from tests.harness.files import ROOT, SHARED_DATA


def rows(path: Path) -> set[tuple[str, str, float]]:
    with path.open() as handle:
        reader = csv.DictReader(handle)
        return {(r["series"], r["ts"], float(r["value"])) for r in reader}


def test_import_then_export_round_trips_the_shared_data(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted(SHARED_DATA.glob("*.csv"))
    for path in files:
        assert main(["import", str(path)]) == 0
    assert main(["import", str(files[0])]) == 0  # idempotent upsert
    out = store_env / "out.csv"
    assert main(["export", "-o", str(out)]) == 0
    expected: set[tuple[str, str, float]] = set()
    for path in files:
        expected |= {
            (s, ts.replace("T00:00:00Z", "") if "funding" not in s else ts, v)
            for s, ts, v in rows(path)
        }
    assert rows(out) == expected
    assert "imported 84 point(s) in 2 series" in capsys.readouterr().out


def test_import_revision_replaces_value(store_env: Path) -> None:
    first = store_env / "a.csv"
    first.write_text("series,ts,value\netf.btc.net_flow,2025-11-03,-100\n")
    second = store_env / "b.csv"
    second.write_text("series,ts,value\netf.btc.net_flow,2025-11-03T00:00:00Z,-186.5\n")
    assert main(["import", str(first)]) == 0
    assert main(["import", str(second)]) == 0
    out = store_env / "out.csv"
    main(["export", "-o", str(out)])
    assert out.read_text().splitlines()[1:] == ["etf.btc.net_flow,2025-11-03,-186.5"]


def test_import_with_bad_rows_imports_nothing_and_names_lines(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = store_env / "bad.csv"
    bad.write_text(
        "series,ts,value\nfear_greed,2025-10-01,20\nfear_greed,yesterday,21\nfear_greed,2025-10-03,nan\n"
    )
    assert main(["import", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:3: ts:" in err and f"{bad}:4: value:" in err
    out = store_env / "out.csv"
    main(["export", "-o", str(out)])
    assert out.read_text().strip() == "series,ts,value"


def test_import_missing_file_is_usage_error(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["import", "nope.csv"]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_check_passes_on_shipped_rules(store_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    assert "rule(s) ok" in capsys.readouterr().out


def test_check_fails_with_positions_on_broken_rules(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = store_env / "r"
    rules.mkdir()
    (rules / "x.yaml").write_text(
        "rules:\n  - id: a\n    series: s\n    condition: {above: x}\n"
        "  - id: b\n    series: s\n    condition: {above: 1}\n    message: '{{ value '\n"
    )
    assert main(["check", "--rules", str(rules)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{rules / 'x.yaml'}:4:")
    assert any(
        line.startswith(f"{rules / 'x.yaml'}:8:") and "rule 'b': message" in line for line in out
    )


def test_check_names_an_unknown_variable_or_filter_with_a_suggestion(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = store_env / "r"
    rules.mkdir()
    (rules / "x.yaml").write_text(
        "rules:\n  - id: a\n    series: s\n    condition: {above: 1}\n"
        "    message: '{{ valeu | usd }}'\n"
    )
    (rules / "y.yaml").write_text(
        "rules:\n  - id: b\n    series: s\n    condition: {above: 1}\n    message: '{{ value | usdd }}'\n"
    )
    assert main(["check", "--rules", str(rules)]) == 1
    first, second = capsys.readouterr().out.splitlines()
    assert first == (
        f"{rules / 'x.yaml'}:5:14: rule 'a': message: unknown variable 'valeu' (did you mean"
        " value?); this rule provides at, id, name, previous, reason, series, severity, state, value"
    )
    assert second.startswith(f"{rules / 'y.yaml'}:5:14: rule 'b': message: ")
    assert "unknown filter 'usdd' (did you mean usd?); filters: usd, pct, signed, plain" in second


def test_bad_setting_exits_2_with_one_line(
    store_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STABLEWATCH_DIGEST__TIME", "8 o'clock")
    assert main(["check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "digest.time" in err[0] and "HH:MM" in err[0]


def test_unknown_source_is_usage_error(store_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fetch", "nosuch"]) == 2
    assert "unknown source 'nosuch'" in capsys.readouterr().err


def test_rule_tests_pass_for_the_shipped_rules(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["test"]) == 0
    out = capsys.readouterr().out
    assert "0 failed" in out.splitlines()[-1]
    assert "outflow streak fires once" in out


def test_a_failing_rule_test_exits_1_and_shows_the_difference(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tests = store_env / "t"
    tests.mkdir()
    (tests / "x.yaml").write_text(
        f"rules_dir: {ROOT / 'rules'}\ntests:\n  - name: wrong day\n    start: 2025-11-01\n"
        "    series: {fear_greed: '30 15'}\n    expect:\n      extreme-fear:\n"
        "        - {at: 2025-11-01, state: firing}\n"
    )
    assert main(["test", str(tests / "x.yaml")]) == 1
    out = capsys.readouterr().out
    assert "expected firing at 2025-11-01T00:00:00+00:00; got firing at 2025-11-02" in out
    assert out.splitlines()[-1] == "0 passed, 1 failed"


def _fear_test(where: Path, *events: str) -> Path:
    """A one-case test of `extreme-fear` on 30 20 15 24 25 26, expecting `events`."""
    where.mkdir(exist_ok=True)
    path = where / "fear.yaml"
    body = "".join(f"        - {e}\n" for e in events)
    path.write_text(
        f"rules_dir: {ROOT / 'rules'}\ntests:\n  - name: fear texts\n    start: 2025-11-01\n"
        f"    series: {{fear_greed: '30 20 15 24 25 26'}}\n    expect:\n      extreme-fear:\n{body}"
    )
    return path


FIRED = "Fear & Greed at 20: extreme fear, a classic sign of capitulation."
RESOLVED = "Fear & Greed back at 26: sentiment has left extreme fear."


def test_a_rule_test_passes_when_the_messages_match(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fear_test(
        store_env / "t",
        f"{{at: 2025-11-02, state: firing, message: '{FIRED}'}}",
        f"{{at: 2025-11-06, state: resolved, message: '{RESOLVED}'}}",
    )
    assert main(["test", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"


def test_a_wrong_message_fails_showing_expected_and_got_on_their_own_lines(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = RESOLVED.replace("26", "25")
    path = _fear_test(
        store_env / "t",
        "{at: 2025-11-02, state: firing}",
        f"{{at: 2025-11-06, state: resolved, message: '{wrong}'}}",
    )
    assert main(["test", str(path)]) == 1
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert "rule 'extreme-fear': resolved at 2025-11-06T00:00:00+00:00: message differs" in lines
    assert f"expected: {wrong}" in lines
    assert f"got:      {RESOLVED}" in lines
    assert lines[-1] == "0 passed, 1 failed"


def test_a_message_with_a_newline_is_shown_quoted(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fear_test(
        store_env / "t",
        f'{{at: 2025-11-02, state: firing, message: "{FIRED}\\n"}}',
        "{at: 2025-11-06, state: resolved}",
    )
    assert main(["test", str(path)]) == 1
    lines = [line.strip() for line in capsys.readouterr().out.splitlines()]
    assert "expected: " + repr(FIRED + "\n") in lines
    assert "got:      " + repr(FIRED) in lines


def test_a_rule_test_without_messages_still_checks_only_times(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fear_test(
        store_env / "t",
        "{at: 2025-11-02, state: firing}",
        "{at: 2025-11-06, state: resolved}",
    )
    assert main(["test", str(path)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "1 passed, 0 failed"


def test_an_unknown_key_in_an_expected_event_is_an_error(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _fear_test(store_env / "t", "{at: 2025-11-02, state: firing, mesage: 'x'}")
    assert main(["test", str(path)]) == 1
    out = capsys.readouterr().out
    assert "tests.0.expect.extreme-fear.0.mesage: Extra inputs are not permitted" in out


def test_backtest_json_on_real_flows(store_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["import", str(SHARED_DATA / "etf_flows_2025-10_2025-11.csv")]) == 0
    capsys.readouterr()
    assert main(["backtest", "--json", "--from", "2025-10-01", "--to", "2025-11-30"]) == 0
    events = json.loads(capsys.readouterr().out)
    assert all(set(e) == {"rule", "state", "at", "value", "message"} for e in events)
    assert [e["at"] for e in events] == sorted(e["at"] for e in events)
    streak = [(e["at"][:10], e["state"]) for e in events if e["rule"] == "btc-etf-outflow-streak"]
    assert [at for at, state in streak if state == "firing"] == ["2025-11-04", "2025-11-18"]


def test_backtest_table_and_chart(store_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["import", str(SHARED_DATA / "etf_flows_2025-10_2025-11.csv")]) == 0
    chart = store_env / "bt.png"
    assert main(["backtest", "--from", "2025-11-01", "--chart", str(chart)]) == 0
    out = capsys.readouterr().out
    assert "firing   btc-etf-outflow-streak" in out
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_schema_is_json_schema_naming_every_condition(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    assert main(["schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    text = json.dumps(schema)
    for kind in ("streak", "sign_changes", "new_low", "longest", "change", "turns"):
        assert f'"{kind}"' in text
    assert schema["title"] == "Stablewatch rule file"


def test_summary_prints_the_digest_and_writes_chart_and_page(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for path in sorted(SHARED_DATA.glob("*.csv")):
        assert main(["import", str(path)]) == 0
    chart, page = store_env / "digest.png", store_env / "summary.html"
    args = ["summary", "--at", "2025-11-01T08:00", "--zone", "europe/berlin"]
    assert main([*args, "--chart", str(chart), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "Stablewatch summary · Sat 1 Nov, 09:00 Europe/Berlin" in out
    assert "BTC Fri 31 Oct: −$191.6M" in out and "<b>" not in out
    assert chart.read_bytes().startswith(b"\x89PNG")
    html = page.read_text()
    assert '<img src="digest.png"' in html and "<b>BTC</b> Fri 31 Oct" in html


def test_summary_with_an_unknown_zone_is_a_usage_error(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["summary", "--zone", "Mars/Olympus"]) == 2
    assert "--zone: expected an IANA time zone" in capsys.readouterr().err


def backtest_json(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[dict[str, Any]]:
    assert main(["import", str(SHARED_DATA / "etf_flows_2025-10_2025-11.csv")]) == 0
    capsys.readouterr()
    assert main(["backtest", "--json", *args]) == 0
    events: list[dict[str, Any]] = json.loads(capsys.readouterr().out)
    return events


def test_backtest_to_cuts_the_data_at_the_end_of_that_day(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = backtest_json(["--to", "2025-11-10"], capsys)
    assert events and max(e["at"] for e in events) < "2025-11-11"
    streak = [e["at"][:10] for e in events if e["rule"] == "btc-etf-outflow-streak"]
    assert streak == ["2025-11-04", "2025-11-06"]  # the 18 Nov streak is after --to


def test_backtest_inverted_from_and_to_is_a_usage_error(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "--from", "2025-11-10", "--to", "2025-11-01"]) == 2
    err = capsys.readouterr().err
    assert err == "stablewatch: --from 2025-11-10 is after --to 2025-11-01: nothing to replay\n"


def test_backtest_rule_globs_narrow_the_report(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    events = backtest_json(
        ["--rule", "btc-etf-*-streak", "--rule", "eth-etf-weekly-inflow"], capsys
    )
    assert events
    assert {e["rule"] for e in events} <= {"btc-etf-outflow-streak", "eth-etf-weekly-inflow"}
    assert any(e["rule"] == "btc-etf-outflow-streak" for e in events)


def test_backtest_a_composite_alone_still_evaluates_its_members(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    everything = backtest_json([], capsys)
    alone = backtest_json(["--rule", "btc-etf-turning"], capsys)  # any of two series rules
    assert alone == [e for e in everything if e["rule"] == "btc-etf-turning"]
    assert [e["state"] for e in alone] == ["firing"]


def test_backtest_unknown_rule_names_the_closest_ids(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backtest", "--rule", "btc-etf-outflow-streek"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("stablewatch: --rule 'btc-etf-outflow-streek' matches no rule; closest: ")
    assert "btc-etf-outflow-streak" in err and err.count("\n") == 1


def _big_history(store_env: Path) -> None:
    """25 years of daily Fear & Greed swinging in and out of extreme fear: outputs far larger
    than a pipe's buffer, so the writer is still writing when the reader leaves."""
    start = date(2000, 1, 1)
    lines = ["series,ts,value"] + [
        f"fear_greed,{start + timedelta(days=d)},{10 if d % 4 < 2 else 50}" for d in range(9000)
    ]
    big = store_env / "big.csv"
    big.write_text("\n".join(lines) + "\n")
    assert main(["import", str(big)]) == 0


def _piped(args: list[str], lines: int) -> tuple[int, str]:
    """Run the real command into a pipe whose reader leaves after `lines` lines (`| head`)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert proc.stdout is not None and proc.stderr is not None
    for _ in range(lines):
        assert proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read().decode()
    return proc.wait(timeout=60), err


@pytest.mark.slow
@pytest.mark.parametrize(("args", "lines"), [(["export"], 1), (["backtest"], 1), (["summary"], 0)])
def test_a_reader_that_leaves_early_gets_no_traceback(
    store_env: Path, args: list[str], lines: int
) -> None:
    _big_history(store_env)
    code, err = _piped(args, lines)
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    assert code == 128 + signal.SIGPIPE


def _spans_of(path: Path) -> dict[str, tuple[str, str, int]]:
    """Per series of a CSV: first and last ts (ISO UTC) and row count, from the rows alone."""
    from datetime import UTC, datetime

    seen: dict[str, list[datetime]] = {}
    with path.open() as handle:
        for r in csv.DictReader(handle):
            ts = datetime.fromisoformat(r["ts"].replace("Z", "+00:00"))
            seen.setdefault(r["series"], []).append(
                ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)
            )
    return {s: (min(t).isoformat(), max(t).isoformat(), len(set(t))) for s, t in seen.items()}


SERIES_CSVS = ("fear_greed_2025-10.csv", "funding_btc_binance_2025-10.csv")


def test_series_lists_imported_series_with_counts_and_span(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    expected: dict[str, tuple[str, str, int]] = {}
    for name in SERIES_CSVS:
        path = ROOT / "tests" / "fixtures" / "market" / name
        assert main(["import", str(path)]) == 0
        expected |= _spans_of(path)
    capsys.readouterr()
    assert main(["series"]) == 0
    header, *lines = capsys.readouterr().out.splitlines()
    assert header.split() == ["series", "first", "last", "points", "source"]
    table = {cells[0]: cells[1:] for cells in (line.split() for line in lines)}
    assert set(table) == set(expected)
    for series, (first, last, points) in expected.items():
        assert table[series][:3] == [first, last, str(points)]
    assert table["fear_greed"][3] == "fear_greed"
    # aligned: text columns start, the count column ends, at the header's offsets
    for line in [header, *lines]:
        cells = list(re.finditer(r"\S+", line))
        assert [c.start() for c in cells[1:3]] == [m.start() for m in cells_of(header)[1:3]]
        assert cells[3].end() == cells_of(header)[3].end()
        assert cells[4].start() == cells_of(header)[4].start()


def cells_of(line: str) -> list[re.Match[str]]:
    return list(re.finditer(r"\S+", line))


def test_series_json_is_one_object_per_line(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = ROOT / "tests" / "fixtures" / "market" / "fear_greed_2025-10.csv"
    assert main(["import", str(path)]) == 0
    capsys.readouterr()
    assert main(["series", "--json"]) == 0
    objects = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    first, last, points = _spans_of(path)["fear_greed"]
    assert objects == [
        {
            "series": "fear_greed",
            "first": first,
            "last": last,
            "points": points,
            "source": "fear_greed",
        }
    ]


def test_series_on_an_empty_store_says_so(
    store_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["series"]) == 0
    assert capsys.readouterr().out.strip() == "no series stored"


def test_series_source_of_health_derived_and_imported() -> None:
    from bot.cli_series import source_of

    sources = {"fear_greed": ["fear_greed"], "binance": ["funding.*.binance"]}
    assert source_of("funding.btc.binance", sources, ["price.btc"]) == "binance"
    assert source_of("source.farside.up", sources, []) == "farside"
    assert source_of("price.btc", sources, ["price.btc"]) == "derived"
    assert source_of("my.own", sources, ["price.btc"]) == "imported"
