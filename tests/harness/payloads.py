"""Mutations of recorded payloads for property tests: every parser must fail cleanly on them."""

from __future__ import annotations

import copy
from typing import Any


def mutate(payload: Any, path: list[int], value: Any) -> Any:
    """Replace the node at a path (indices wrap) in a deep copy."""
    result = copy.deepcopy(payload)
    node = result
    for step in path[:-1]:
        if isinstance(node, dict) and node:
            node = node[list(node)[step % len(node)]]
        elif isinstance(node, list) and node:
            node = node[step % len(node)]
    if isinstance(node, dict) and node:
        node[list(node)[path[-1] % len(node)]] = value
    elif isinstance(node, list) and node:
        node[path[-1] % len(node)] = value
    return result
