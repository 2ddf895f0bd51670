"""Message templates in Jinja2's sandbox: users write them, so they must not reach Python."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from functools import cache, lru_cache
from typing import TYPE_CHECKING, Any

from bot import numbers

if TYPE_CHECKING:
    from jinja2 import Template, nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

HOUSE_FILTERS = ("usd", "pct", "signed", "plain")
"""Our number filters, named first when a filter is unknown (Jinja2's built-ins work too)."""

MAX_REPEAT = 10_000
"""Longest result of `'-' * n` and the largest integer exponent a template may ask for."""


class TemplateError(ValueError):
    """A template does not compile or fails to render."""


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    """Build the sandbox once; imported lazily to keep start-up light."""
    from jinja2 import StrictUndefined
    from jinja2.exceptions import SecurityError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Sandbox(ImmutableSandboxedEnvironment):
        """Also bounds `*` and `**`, which Jinja would otherwise fold at compile time unchecked."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            sizes = [len(x) for x in (left, right) if isinstance(x, str | list | tuple)]
            counts = [abs(x) for x in (left, right) if isinstance(x, int)]
            if operator == "*" and sizes and counts and sizes[0] * counts[0] > MAX_REPEAT:
                raise SecurityError("repetition too long")
            if operator == "**" and isinstance(right, int) and abs(right) > MAX_REPEAT:
                raise SecurityError("exponent too large")
            return super().call_binop(context, operator, left, right)

    env = Sandbox(autoescape=False, undefined=StrictUndefined)
    env.filters.update(usd=numbers.usd, pct=numbers.pct, signed=numbers.signed, plain=numbers.plain)
    return env


@lru_cache(maxsize=1024)
def _compiled(source: str) -> Template:
    """Compile each distinct template once: a backtest renders the same few thousands of times."""
    template = _environment().from_string(source)
    template.globals = dict(template.globals)  # a ChainMap costs more per render than the render
    return template


def check(source: str) -> None:
    """Compile a template, raising TemplateError on bad syntax, an unknown filter or a reference
    to another file."""
    from jinja2 import TemplateSyntaxError, nodes

    env = _environment()
    try:
        tree = env.parse(source)
        _known_filters(tree)
        env.from_string(tree)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template line {exc.lineno}: {exc.message}") from None
    for node in tree.find_all((nodes.Extends, nodes.Include, nodes.Import, nodes.FromImport)):
        raise TemplateError(f"template line {node.lineno}: include, import and extends are off")


def _known_filters(tree: nodes.Template) -> None:
    """Name an unknown filter with the closest known one; Jinja2 alone says only "no filter"
    and, inside an `if`, not even that until the message is rendered."""
    from jinja2 import nodes

    env = _environment()
    for node in tree.find_all(nodes.Filter):
        if node.name not in env.filters:
            raise TemplateError(
                f"template line {node.lineno}: unknown filter '{node.name}'"
                f"{_suggest(node.name, env.filters)}; filters: {', '.join(HOUSE_FILTERS)}"
                " or a Jinja2 built-in such as int, round or default"
            )


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def unknown_variables(source: str, known: Iterable[str]) -> list[str]:
    """Say which variables a template uses that nothing provides, so that a typo fails `check`
    instead of every message silently falling back; names bound inside the template (set, for,
    macro arguments) count as known. A template `check` rejects has none here: it is reported.
    """
    from jinja2 import TemplateSyntaxError, meta

    env = _environment()
    try:
        undeclared = meta.find_undeclared_variables(env.parse(source))
    except TemplateSyntaxError:
        return []
    names = sorted({*known, *env.globals})
    listed = ", ".join(sorted(known))
    return [
        f"unknown variable '{name}'{_suggest(name, names)}; this rule provides {listed}"
        for name in sorted(undeclared - set(names))
    ]


def render(source: str, variables: dict[str, Any]) -> str:
    """Render a template to plain text; HTML escaping is the renderer's job, not the template's.

    Any failure (an unsafe access, 1/0, a filter given text) is a TemplateError: a user's template
    must never take the evaluation down with it.
    """
    try:
        return _compiled(source).render(**variables)
    except Exception as exc:  # user code: every failure is the template's
        raise TemplateError(f"template: {exc}") from None
