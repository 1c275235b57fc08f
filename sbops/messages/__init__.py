"""The catalog of findings: every result sbops reports is a message with a stable code (as istio's
`messages.yaml`: `IST0101 ReferencedResourceNotFound`).

A message has a code (`SB` + four digits: the first two name the area, see AREAS), a CamelCase name, the
status and reason it reports (the reason may be left to the caller when one finding has several causes, such
as refused/timeout/unreachable), a template with named arguments, and the page that documents it: a check's
runbook (`runbooks/<check>.md`, heading `### SBnnnn Name`) or, for the engine's own findings, the README.

Judgements build results from messages (`MSG.result(...)`), never from free text; the summary is rendered
from the template. Nothing parses a summary back: code reads `Result.code` and `Result.args`. Tests assert
codes. The JSON output carries `code` on every check, and the exporter's `sbops_check_finding` has it as a
label.
The per-area modules (`sbops/messages/<area>.py`) hold the entries; `CATALOG` is their union, and
`tests/unit/test_messages.py` holds every entry to the contract (unique code, template arguments, doc anchor).
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from typing import Any

from sbops.model import Reason, Result, Status

# The first two digits of a code: which part of sbops reports it.
AREAS = {
    "00": "engine", "10": "host", "20": "mysql", "30": "mongodb", "40": "rabbitmq", "50": "nfs", "60": "k8s",
    "61": "pods", "62": "ecr", "63": "tls", "64": "istio", "65": "helm", "70": "app", "80": "cloudstack",
    "81": "netpath",
}
CODE = re.compile(r"SB(\d\d)\d\d")
NAME = re.compile(r"[A-Z][A-Za-z0-9]+")


@dataclass(frozen=True)
class Message:
    """One finding of the catalog. `doc` is `runbooks/<check id>.md` or `README.md`; its anchor is the code."""

    code: str
    name: str
    status: Status
    template: str
    doc: str
    reason: Reason | None = None  # None: the caller says which (one finding, several causes)

    @property
    def arguments(self) -> tuple[str, ...]:
        """The named arguments the template needs, in order of appearance."""
        return tuple(dict.fromkeys(name for _, name, _, _ in string.Formatter().parse(self.template) if name))

    @property
    def anchor(self) -> str:
        """The heading anchor on the doc page (`### SB2101 MysqlLoginRefused` -> `sb2101-mysqlloginrefused`)."""
        return f"{self.code.lower()}-{self.name.lower()}"

    def render(self, args: dict[str, Any]) -> str:
        missing = [name for name in self.arguments if name not in args]
        if missing:
            raise KeyError(f"message {self.code} needs {', '.join(missing)}")
        return self.template.format(**args)

    def result(self, *, reason: Reason | None = None, details: dict[str, Any] | None = None,
               expires_at: Any = None, fix: str | None = None, **args: Any) -> Result:
        """A Result reporting this finding. `args` fill the template and are kept on the result; `details`
        is the evidence (JSON-able, never secrets)."""
        chosen = self.reason if self.reason is not None else reason
        if chosen is None:
            raise ValueError(f"message {self.code} needs a reason from its caller")
        if self.reason is not None and reason is not None and reason is not self.reason:
            raise ValueError(f"message {self.code} always reports {self.reason.value}, not {reason.value}")
        return Result(self.status, chosen, self.render(args), dict(details or {}), expires_at, fix,
                      code=self.code, args=dict(args))


@dataclass
class Catalog:
    """Every message, by code; adding one twice is a bug found at import time."""

    messages: dict[str, Message] = field(default_factory=dict)

    def add(self, *items: Message) -> None:
        for item in items:
            if item.code in self.messages:
                raise ValueError(f"message code {item.code} defined twice")
            self.messages[item.code] = item

    def __getitem__(self, code: str) -> Message:
        return self.messages[code]

    def __iter__(self):
        return iter(sorted(self.messages.values(), key=lambda m: m.code))

    def __len__(self) -> int:
        return len(self.messages)


CATALOG = Catalog()


def define(code: str, name: str, status: Status, template: str, doc: str, reason: Reason | None = None) -> Message:
    """Declare a message and add it to the catalog (area modules call this at import)."""
    item = Message(code, name, status, template, doc, reason)
    CATALOG.add(item)
    return item
