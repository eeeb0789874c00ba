"""Which namespaces' series a query reads: every selector must name the Canary's namespace (issue 19, §2).

A Canary's inline ``metrics[].query`` and a MetricTemplate its own team wrote are the tenant's PromQL, sent to a
Prometheus that usually holds every team's series. Without a check, ``sum(rate(http_requests_total{namespace=
"other-team"}[1m]))`` (or no namespace matcher at all) reads another team's numbers. So each vector or matrix
selector of a rendered query must carry an equality matcher ``=`` on a namespace label whose value is the Canary's
namespace, and every matcher on a namespace label it carries must be that one: ``=~``, ``!=``, ``!~`` or another
value is a violation. Selectors are ANDed matchers, so one such matcher confines the whole selector.

This module finds the selectors with a small PromQL lexer and a two-state scan (expecting an operand, or an
operator), the way Prometheus' grammar tells a metric name from a keyword: ``sum(…)`` is an aggregation, ``sum``
alone a metric called ``sum``; ``x and y`` an operator, ``and`` at an operand's place a metric. Label lists of
``by``/``without``/``on``/``ignoring``/``group_left``/``group_right`` are skipped, range and subquery brackets,
numbers, strings, comments and function calls carry no selector. It fails closed: what it cannot read
(``or`` inside braces, as MetricsQL allows; an identifier where an operator belongs) counts as a selector that is
not confined, and a lexical error Prometheus would reject too (an unterminated string) is refused. Values are
compared as written: an escape in a namespace value is a violation, as no Kubernetes namespace needs one.

Pure and linear in the query's length: one compiled pattern with possessive repetitions, matched at forward-only
positions, and a scan over the tokens that never goes back.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

DEFAULT_NAMESPACE_LABELS = (
    "namespace",
    "destination_workload_namespace",
    "source_workload_namespace",
    "kubernetes_namespace",
    "exported_namespace",
)
"""Labels that hold a Kubernetes namespace in the common exporters (kube-state-metrics and the Prometheus
Kubernetes SD, Istio, older Prometheus relabelling, federation's ``exported_`` prefix)."""

READS_OTHER_NAMESPACES = "coalmine.dev/reads-other-namespaces"
"""The MetricTemplate annotation (value ``"true"``) that exempts it from the check — honoured only in a trusted
namespace (the operator's own and ``--trusted-template-namespaces``)."""

_AGGREGATORS = frozenset(
    [
        "sum",
        "min",
        "max",
        "avg",
        "group",
        "stddev",
        "stdvar",
        "count",
        "count_values",
        "bottomk",
        "topk",
        "quantile",
        "limitk",
        "limit_ratio",
    ]
)
_BINARY_WORDS = frozenset(("and", "or", "unless", "atan2"))
_MODIFIERS = frozenset(("bool", "on", "ignoring", "group_left", "group_right"))  # never metric names in Prometheus
_GROUPING = frozenset(("by", "without"))
_MATCH_OPS = frozenset(("=", "!=", "=~", "!~"))
_QUOTES = "\"'`"

_TOKEN = re.compile(
    r"""
    (?P<space>\s++)
    |(?P<comment>\#[^\n]*+)
    |(?P<string>"(?:[^"\\\n]++|\\[^\n])*+"|'(?:[^'\\\n]++|\\[^\n])*+'|`[^`]*+`)
    |(?P<number>(?:\d|\.\d)(?:[eE][+-]\d|[A-Za-z0-9_.])*+)
    |(?P<ident>[A-Za-z_][A-Za-z0-9_:]*+)
    |(?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,:(){}\[\]])
    |(?P<other>.)
    """,
    re.VERBOSE | re.DOTALL,
)


class PromQLSyntaxError(ValueError):
    """The query cannot be read (Prometheus would refuse it too): the message says where."""


class Token(NamedTuple):
    """One token: its kind (string, number, ident, op, other), text and span (a tuple: there are many)."""

    kind: str
    text: str
    start: int
    end: int


@dataclass(frozen=True)
class Matcher:
    """One label matcher as written: ``label`` (unquoted), ``op``, and the value's content (``None``: a bare
    string, the metric name)."""

    label: str
    op: str
    value: str | None
    escaped: bool = False


@dataclass(frozen=True)
class Selector:
    """A vector selector (a matrix one is the same with a range after it): its text and matchers.

    ``readable`` is False when its braces hold something other than matchers (``or``, a parenthesis): it is then
    never confined.
    """

    text: str
    start: int
    matchers: tuple[Matcher, ...] = ()
    readable: bool = True


@dataclass(frozen=True)
class Violation:
    """A selector that may read another namespace's series, and why."""

    selector: str
    reason: str

    def __str__(self) -> str:
        return f"{self.selector} {self.reason}"


def tokens(query: str) -> list[Token]:
    """The query's tokens without spaces and comments; raises :class:`PromQLSyntaxError` for an unterminated
    string (the only lexical error that would change what follows)."""
    found: list[Token] = []
    at = 0
    match = _TOKEN.match
    while at < len(query):
        token = match(query, at)
        assert token is not None  # ``other`` matches any character
        kind = token.lastgroup or "other"
        end = token.end()
        if kind == "other" and query[at] in _QUOTES:
            raise PromQLSyntaxError(f"unterminated string starting at character {at + 1}")
        if kind not in ("space", "comment"):
            found.append(Token(kind, token.group(), at, end))
        at = end
    return found


def _unquoted(token: Token) -> tuple[str, bool]:
    """A string token's content as written, and whether it holds an escape."""
    content = token.text[1:-1]
    return content, token.text[0] != "`" and "\\" in content


class _Scan:
    """One pass over the tokens, collecting the selectors (module doc)."""

    def __init__(self, query: str, items: Sequence[Token]) -> None:
        self.query = query
        self.items = items
        self.at = 0
        self.selectors: list[Selector] = []

    def peek(self, offset: int = 0) -> Token | None:
        index = self.at + offset
        return self.items[index] if index < len(self.items) else None

    def is_op(self, token: Token | None, *texts: str) -> bool:
        return token is not None and token.kind == "op" and token.text in texts

    def run(self) -> list[Selector]:
        operand = True  # expecting an expression (an operand), not an operator
        while self.at < len(self.items):
            token = self.items[self.at]
            word = token.text.lower() if token.kind == "ident" else ""
            following = self.peek(1)
            if word in _MODIFIERS:
                self.at += 1
                if word != "bool" and self.is_op(self.peek(), "("):
                    self.skip_label_list()
                operand = True
            elif token.kind == "ident" and not operand:
                operand = self.operator_word(word)
            elif token.kind == "ident":
                operand = self.operand_word(token, word, following)
            elif self.is_op(token, "{"):
                self.selector(None)
                operand = False
            elif token.kind in ("number", "string") or self.is_op(token, ")", "]", "}"):
                self.at += 1
                operand = False
            elif self.is_op(token, "@") and not operand:
                self.at_modifier()
            else:  # ( [ , : and the arithmetic and comparison operators
                self.at += 1
                operand = True
        return self.selectors

    def operand_word(self, token: Token, word: str, following: Token | None) -> bool:
        """An identifier where an expression starts; returns whether an operand is still expected."""
        if self.is_op(following, "("):  # a function call or aggregation: its arguments follow
            self.at += 1
            return True
        if word in _AGGREGATORS and following is not None and following.text.lower() in _GROUPING:
            self.at += 2
            if self.is_op(self.peek(), "("):
                self.skip_label_list()
            return True
        if word in ("inf", "nan"):
            self.at += 1
            return False
        self.selector(token)
        return False

    def operator_word(self, word: str) -> bool:
        """An identifier after an expression; returns whether an operand is expected next."""
        if word in _BINARY_WORDS:
            self.at += 1
            return True
        if word in _GROUPING and self.is_op(self.peek(1), "("):
            self.at += 1
            self.skip_label_list()
            return False
        if word == "offset":
            self.at += 1
            if self.is_op(self.peek(), "-", "+"):
                self.at += 1
            if (found := self.peek()) is not None and found.kind == "number":
                self.at += 1
            return False
        self.selector(self.items[self.at])  # not PromQL; read as a selector so it is never let through
        return False

    def at_modifier(self) -> None:
        """``@ 1700000000``, ``@ -5``, ``@ start()``, ``@ end()``: no selector."""
        self.at += 1
        if self.is_op(self.peek(), "-", "+"):
            self.at += 1
        found = self.peek()
        if found is not None and found.kind == "number":
            self.at += 1
        elif found is not None and found.text.lower() in ("start", "end") and self.is_op(self.peek(1), "("):
            self.at += 2
            if self.is_op(self.peek(), ")"):
                self.at += 1

    def skip_label_list(self) -> None:
        """Skip ``( label, "label", … )`` at the current ``(``; stop early at anything else, which is then read
        as code (a label list never holds a selector, so nothing can hide in one)."""
        self.at += 1
        while (found := self.peek()) is not None:
            if self.is_op(found, ")"):
                self.at += 1
                return
            if found.kind in ("ident", "string") or self.is_op(found, ","):
                self.at += 1
                continue
            return

    def selector(self, name: Token | None) -> None:
        """A selector at the current token: a metric name with or without braces, or braces alone."""
        first = self.items[self.at]
        if name is not None:
            self.at += 1
            if not self.is_op(self.peek(), "{"):
                self.selectors.append(Selector(name.text, first.start))
                return
        matchers, readable, last = self.matchers()
        text = self.query[first.start : last.end]
        self.selectors.append(Selector(text, first.start, tuple(matchers), readable))

    def matchers(self) -> tuple[list[Matcher], bool, Token]:
        """The matchers of the braces at the current ``{``, whether they were all plain matchers, and the ``}``."""
        opening = self.items[self.at]
        self.at += 1
        found: list[Matcher] = []
        readable = True
        while True:
            token = self.peek()
            if token is None:
                raise PromQLSyntaxError(f"unclosed {{ at character {opening.start + 1}")
            if self.is_op(token, "}"):
                self.at += 1
                return found, readable, token
            if self.is_op(token, ","):
                self.at += 1
                continue
            operator, value = self.peek(1), self.peek(2)
            if token.kind in ("ident", "string") and operator is not None and operator.text in _MATCH_OPS:
                if value is not None and value.kind == "string":
                    label = _unquoted(token)[0] if token.kind == "string" else token.text
                    content, escaped = _unquoted(value)
                    found.append(Matcher(label, operator.text, content, escaped))
                    self.at += 3
                    continue
            elif token.kind == "string" and (operator is None or self.is_op(operator, ",", "}")):
                found.append(Matcher("__name__", "=", _unquoted(token)[0]))
                self.at += 1
                continue
            readable = False  # anything else inside braces: never confined (module doc)
            self.at += 1


def selectors(query: str) -> list[Selector]:
    """Every vector and matrix selector of ``query``, in order (see the module doc)."""
    return _Scan(query, tokens(query)).run()


def violations(query: str, namespace: str, labels: Iterable[str] = DEFAULT_NAMESPACE_LABELS) -> list[Violation]:
    """The selectors of ``query`` that are not confined to ``namespace`` (module doc); raises
    :class:`PromQLSyntaxError` when the query cannot be read."""
    names = frozenset(labels)
    found: list[Violation] = []
    for selector in selectors(query):
        reason = _why_not_confined(selector, namespace, names)
        if reason is not None:
            found.append(Violation(_shortened(selector.text), reason))
    return found


def _why_not_confined(selector: Selector, namespace: str, labels: frozenset[str]) -> str | None:
    if not selector.readable:
        return "holds something other than label matchers inside its braces, so it cannot be checked"
    confined = False
    for matcher in selector.matchers:
        if matcher.label not in labels:
            continue
        if matcher.op != "=":
            return f"matches {matcher.label} with {matcher.op} instead of = {namespace!r}"
        if matcher.escaped or matcher.value != namespace:
            return f"reads {matcher.label}={matcher.value!r}, not this Canary's namespace {namespace!r}"
        confined = True
    return None if confined else "has no namespace matcher"


def _shortened(text: str, limit: int = 200) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
