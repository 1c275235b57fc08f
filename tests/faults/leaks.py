"""Where a secret could show in sbops's output, in any form: the test oracle of the masking tests.

In JSON text a secret can appear only inside string literals: a password `2049` beside the number 2049, or
`": "` beside the document's own punctuation, is not a leak. Inside a literal it can appear raw (which JSON
writes escaped: `\\"`, `\\\\`, `\\t`, `\\u00fc`) or, when text that was already serialized is embedded
(JSON in JSON, the old way of masking), in its escaped form. So the oracle decodes each string literal of
the document and looks for the secret and its escaped forms in it.
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
        decoded = json.loads(literal)
        for secret in secrets:
            if any(form in decoded for form in forms(secret)):
                found.append((secret, literal))
    return found


def text_leaks(text: str, secrets: list[str]) -> list[str]:
    """The secrets that show in plain `text` (any form: a JSON fragment may be embedded in it)."""
    return [s for s in secrets if any(form in text for form in forms(s))]
