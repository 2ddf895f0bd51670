#!/bin/sh
# Rebuild docs/summary.html, docs/summary.txt and docs/digest.png from the recorded market data
# in tests/fixtures/market, through the real CLI (`stablewatch import` and `stablewatch summary`).
#
# The recording has no open interest, so the OI panel says "no data yet". With a single venue the
# OI-weighted funding rate is that venue's rate, so Binance's settled funding stands in for
# funding.btc.oi_weighted here (a copy of the series under that name, made below).
set -eu
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export STABLEWATCH_STORE__URL="sqlite+aiosqlite:///$work/samples.db"
bin=.venv/bin/stablewatch
for csv in tests/fixtures/market/*.csv; do
    "$bin" import "$csv" >/dev/null
done
sed 's/^funding\.btc\.binance,/funding.btc.oi_weighted,/' \
    tests/fixtures/market/funding_btc_binance_2025-10.csv | grep -v '^funding.btc.binance' \
    > "$work/oi_weighted.csv"
"$bin" import "$work/oi_weighted.csv" >/dev/null
"$bin" summary --at 2025-11-01T08:00:00+00:00 --zone UTC \
    --chart docs/digest.png --html docs/summary.html > docs/summary.txt
