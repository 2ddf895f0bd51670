"""Message templates in Jinja2's sandbox: users write them, so they must not reach Python."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any

from bot import numbers

if TYPE_CHECKING:
    from jinja2.sandbox import ImmutableSandboxedEnvironment


class TemplateError(ValueError):
    """A template does not compile or fails to render."""


@cache
def _environment() -> ImmutableSandboxedEnvironment:
    """Build the sandbox once; imported lazily to keep start-up light."""
    from jinja2 import StrictUndefined
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined)
    env.filters.update(usd=numbers.usd, pct=numbers.pct, signed=numbers.signed, plain=numbers.plain)
    return env


def check(source: str) -> None:
    """Compile a template, raising TemplateError on bad syntax."""
    from jinja2 import TemplateSyntaxError

    try:
        _environment().from_string(source)
    except TemplateSyntaxError as exc:
        raise TemplateError(f"template line {exc.lineno}: {exc.message}") from None


def render(source: str, variables: dict[str, Any]) -> str:
    """Render a template to plain text; HTML escaping is the renderer's job, not the template's."""
    from jinja2 import TemplateError as JinjaError

    try:
        return _environment().from_string(source).render(**variables)
    except JinjaError as exc:
        raise TemplateError(f"template: {exc}") from None
