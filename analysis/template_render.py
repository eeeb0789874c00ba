"""MetricTemplate rendering: Flagger's ``{{ }}`` placeholders, substituted so a value can never become PromQL.

A MetricTemplate and the Canary that uses it may belong to different teams: the template's author writes the query,
the Canary's author supplies ``templateVariables``. Go's templates (Flagger) paste values verbatim, so a value such as
``x"} or up{job="`` closes the label matcher it was put in and reads any namespace's series. Here every value is
substituted according to where its placeholder stands in the template's PromQL text:

- inside a ``"..."`` or ``'...'`` string literal, the value is escaped for that literal (backslash, the quote,
  newline and carriage return), so it stays the literal's content: ``5\\d\\d`` becomes ``"5\\\\d\\\\d"``, whose
  content is exactly ``5\\d\\d``;
- inside a ```...``` raw string, nothing can be escaped, so a value containing a backtick is refused;
- anywhere else (code, or a ``#`` comment) the value must be one plain token: a name, a number, a duration, a
  comma-separated list of label names or a Kubernetes name, with no spaces, quotes, braces or parentheses.

Escaped values contain no unescaped quote, plain tokens no quote, ``#`` or newline, so the rendered query has the same
lexical structure as the template: the template's author alone decides what is PromQL. The model's own fields
(name, namespace, target, service, interval) take the same path; being Kubernetes names and durations, they pass.

The scan is a single pass with ``str.find`` whose positions only move forward, so rendering is linear in the length
of the template even for hostile input (``"{{" * 100000``), which a lazy ``\\{\\{(.*?)\\}\\}`` regex made quadratic.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum


class TemplateError(ValueError):
    """A MetricTemplate query cannot be rendered: the message names the offending expression or variable."""


@dataclass(frozen=True)
class TemplateModel:
    """What a MetricTemplate query may refer to — Flagger's model, same names.

    ``name``/``namespace`` are the Canary's, ``target`` the workload (``targetRef.name``), ``service`` the apex
    Service name, ``interval`` a Prometheus duration (the metric's ``interval``), ``variables`` the metric's
    ``templateVariables``.
    """

    name: str
    namespace: str
    target: str
    service: str
    interval: str = "1m"
    variables: Mapping[str, str] = field(default_factory=dict)


FIELDS = ("name", "namespace", "target", "service", "interval")
_VARIABLE = re.compile(r"variables\.([A-Za-z_][A-Za-z0-9_]*)")

_NAME = r"[A-Za-z_:][A-Za-z0-9_:]*"
# One token a template author may have meant by a placeholder outside a string: a metric or label name (``Inf`` and
# ``NaN`` included), a number, a duration (``1m30s``, ``1.5h``), a ``by (a,b)`` label list, or a Kubernetes name
# (``podinfo-v2``, ``web.shop``). None of them holds a quote, brace, parenthesis, space, ``#`` or newline.
_PLAIN_TOKEN = re.compile(
    rf"{_NAME}(?:,{_NAME})*"
    r"|[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?"
    r"|[+-]?(?:[Ii]nf|NaN)"
    r"|(?:[0-9]+(?:\.[0-9]+)?(?:ms|[smhdwy]))+"
    r"|[a-z0-9](?:[-a-z0-9.]*[a-z0-9])?"
)
_SHOWN = 60  # characters of a value or expression quoted in an error; a hostile one may be 200 KB


class _Context(Enum):
    CODE = "code"
    COMMENT = "comment"
    DOUBLE = '"'
    SINGLE = "'"
    RAW = "`"


_OPENERS = {'"': _Context.DOUBLE, "'": _Context.SINGLE, "`": _Context.RAW, "#": _Context.COMMENT}


class _Finder:
    """``str.find`` with each needle's last answer remembered.

    A needle is searched again only once the scan has passed its last occurrence, so the text each needle's searches
    cover never overlaps: however the states alternate, all searches together read the text a bounded number of times.
    """

    def __init__(self, text: str) -> None:
        self._text = text
        self._next: dict[str, int] = {}

    def find(self, needle: str, start: int) -> int:
        """The first index ≥ ``start`` of ``needle``, or ``len(text)`` if there is none."""
        at = self._next.get(needle, -1)
        if at < start:
            found = self._text.find(needle, start)
            at = len(self._text) if found < 0 else found
            self._next[needle] = at
        return at

    def first(self, needles: tuple[str, ...], start: int) -> tuple[int, str]:
        """The earliest of ``needles`` at or after ``start``: (index, needle); index ``len(text)`` if none."""
        return min((self.find(needle, start), needle) for needle in needles)


def _clip(text: str) -> str:
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "…"


def _shown(text: str) -> str:
    return repr(_clip(text))


def _expression_value(expression: str, model: TemplateModel) -> tuple[str, str]:
    """(label for messages, value) of one placeholder's expression, or :class:`TemplateError`."""
    if expression in FIELDS:
        return expression, str(getattr(model, expression))
    variable = _VARIABLE.fullmatch(expression)
    if variable is not None:
        key = variable.group(1)
        if key not in model.variables:
            known = ", ".join(sorted(model.variables)) or "none"
            raise TemplateError(f"template variable {key!r} is not set in templateVariables (set: {known})")
        return f"templateVariables.{key}", model.variables[key]
    raise TemplateError(
        f"unsupported template expression {{{{ {_clip(expression)} }}}}: use name, namespace, target, service, "
        "interval or variables.KEY"
    )


def _escaped(label: str, value: str, context: _Context) -> str:
    """``value`` as it may stand in ``context`` without changing the query's structure (see the module doc)."""
    if context in (_Context.DOUBLE, _Context.SINGLE):
        quote = context.value
        return value.replace("\\", "\\\\").replace(quote, "\\" + quote).replace("\n", "\\n").replace("\r", "\\r")
    if context is _Context.RAW:
        if "`" in value:
            raise TemplateError(
                f"{label} {_shown(value)} contains a backtick and its placeholder is inside a `raw string`, "
                "which cannot escape it"
            )
        return value
    if value and not _PLAIN_TOKEN.fullmatch(value):
        raise TemplateError(
            f"{label} {_shown(value)} is not allowed outside a quoted string: there it must be a single name, "
            "number, duration or comma-separated list of label names (no spaces, quotes, braces or parentheses); "
            "to use it as a label value, put its placeholder inside quotes in the template"
        )
    return value


def render_template(query: str, model: TemplateModel) -> str:
    """Render ``{{ name }}``, ``{{ namespace }}``, ``{{ target }}``, ``{{ service }}``, ``{{ interval }}`` and
    ``{{ variables.KEY }}`` (Flagger's syntax, spaces optional), each value escaped for where it stands.

    Anything else between ``{{ }}`` is an error, and so is a variable missing from ``templateVariables``: Go's
    templates would render ``<no value>`` or an empty string and Prometheus would quietly match nothing, which then
    reads as "no data" for every look instead of a configuration mistake. A value that cannot be made safe where its
    placeholder stands is an error naming the variable (see the module doc).
    """
    finder = _Finder(query)
    parts: list[str] = []
    context = _Context.CODE
    done = 0  # query[:done] is in parts
    at = 0  # the scan position
    end = len(query)
    while at < end:
        if context is _Context.CODE:
            at, token = finder.first(("{{", '"', "'", "`", "#"), at)
        elif context is _Context.COMMENT:
            at, token = finder.first(("{{", "\n"), at)
        elif context is _Context.RAW:
            at, token = finder.first(("{{", "`"), at)
        else:
            at, token = finder.first(("{{", context.value, "\\"), at)
        if at >= end:
            break
        if token == "{{":
            close = finder.find("}}", at + 2)
            if close >= end:
                raise TemplateError("unclosed '{{' in template query")
            label, value = _expression_value(query[at + 2 : close].strip(), model)
            parts.append(query[done:at])
            parts.append(_escaped(label, value, context))
            at = done = close + 2
        elif token == "\\":
            if query.startswith("{{", at + 1):
                raise TemplateError(
                    "a backslash directly before {{ }} inside a string would escape the substituted value; "
                    "remove it or double it"
                )
            at += 2
        elif context is _Context.CODE:
            context = _OPENERS[token]
            at += 1
        else:  # the closing quote, backtick or end of comment
            context = _Context.CODE
            at += 1
    parts.append(query[done:])
    return "".join(parts)


def placeholders(query: str) -> list[str]:
    """The stripped expressions of every ``{{ }}`` in ``query``, in order; an unclosed ``{{`` is a TemplateError.

    For checks that need only the expressions (``coalmine validate``), with rendering's linear scan: each ``find``
    starts where the previous one ended, where ``re.findall(r"\\{\\{(.*?)\\}\\}")`` is quadratic on ``"{{" * n``.
    """
    found: list[str] = []
    at = query.find("{{")
    while at >= 0:
        close = query.find("}}", at + 2)
        if close < 0:
            raise TemplateError("unclosed '{{' in template query")
        found.append(query[at + 2 : close].strip())
        at = query.find("{{", close + 2)
    return found
