"""Where the suite's files are: the project root, recorded payloads, the recorded market data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures"
SHARED_DATA = FIXTURES / "market"


def fixture_text(*parts: str) -> str:
    """A recorded payload as text."""
    return FIXTURES.joinpath(*parts).read_text(encoding="utf-8")


def fixture_json(*parts: str) -> Any:
    """A recorded JSON payload, parsed."""
    return json.loads(fixture_text(*parts))
