"""PyYAML's syntax errors in plain words, for ``coalmine validate``.

PyYAML names the parser's state ("expected <block end>, but found '<block sequence start>'"), which a person fixing
a Canary cannot act on. Each known problem gets a sentence saying what is usually wrong and how to fix it; the
parser's own words stay in the message (searchable, and exact when the guess is not), and the column joins the
line so an editor can jump there.
"""

from __future__ import annotations

import re

_PLAIN: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern), words)
    for pattern, words in (
        (
            r"^mapping values are not allowed here",
            "a 'key:' where a plain value was expected: two keys on one line, a line indented under a plain value, "
            "or a value with ': ' in it that needs quotes",
        ),
        (r"^found character '\\t' that cannot start any token", "a tab in the indentation; YAML indents with spaces"),
        (r"^expected ',' or '\]'", "a [list] is not closed with ']' (or two items lack a comma between them)"),
        (r"^expected ',' or '\}'", "a {map} is not closed with '}' (or two entries lack a comma between them)"),
        (r"^found unexpected end of stream", "the file ends inside a quoted string; close the quote"),
        (
            r"^expected <block end>, but found '<block sequence start>'",
            "a '- item' is indented less than the items above it; line the dashes up",
        ),
        (
            r"^expected <block end>, but found",
            "this line's indentation does not match the keys above it; line it up with its siblings",
        ),
        (r"^could not find expected ':'", "a key without ':' after it, or a quote that is never closed"),
        (r"^did not find expected key", "this line's indentation does not match the keys above it"),
        (r"^did not find expected '-' indicator", "a list item is not indented like the items above it"),
        (r"^found undefined alias", "'*name' refers to an anchor '&name' that is not defined above it"),
        (r"^found unknown escape character", "a backslash in a double-quoted string; use single quotes or '\\\\'"),
        (r"^found a tab character", "a tab in the indentation; YAML indents with spaces"),
    )
)


def plain_words(problem: str) -> str | None:
    """What ``problem`` (PyYAML's text) usually means, or None when it is not one we know."""
    for pattern, words in _PLAIN:
        if pattern.search(problem):
            return words
    return None


def describe_yaml_error(problem: str, line: int | None, column: int | None) -> str:
    """``line N: YAML syntax error: <PyYAML's words> (column C): <plain words>`` (parts left out when unknown)."""
    where = f"line {line}: " if line is not None else ""
    text = f"{where}YAML syntax error: {problem}"
    if column is not None:
        text += f" (column {column})"
    words = plain_words(problem)
    return f"{text}: {words}" if words else text
