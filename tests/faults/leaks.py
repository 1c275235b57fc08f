"""Where a secret could show in sbops's output, in any form: the test oracle of the masking tests.

In JSON text a secret can appear raw, JSON-escaped (`\\"`, `\\\\`, `\\t`) or ASCII-escaped (`\\u00fc`), and only
inside string literals: a password `2049` beside the number 2049, or `": "` beside the document's own
punctuation, is not a leak. So the oracle looks at each string literal of the document, in its escaped
form as written and in its decoded form.
"""

from __future__ import annotations

import json
import re

STRING_LITERAL = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def forms(secret: str) -> set[str]:
    """The secret as it could be written: raw, JSON-escaped, JSON-escaped to ASCII."""
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=True)[1:-1],
            json.dumps(secret, ensure_ascii=False)[1:-1]}


def json_leaks(text: str, secrets: list[str]) -> list[tuple[str, str]]:
    """(secret, literal) for every string literal of JSON `text` that shows a secret in any form."""
    found = []
    for literal in STRING_LITERAL.findall(text):
        written, decoded = literal[1:-1], json.loads(literal)
        for secret in secrets:
            if any(form in written for form in forms(secret)) or secret in decoded:
                found.append((secret, literal))
    return found


def text_leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets that show in plain `text` (any form: a JSON fragment may be embedded in it)."""
    return [s for s in secrets if any(form in text for form in forms(s))]
