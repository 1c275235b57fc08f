"""A string wrapper that never prints itself, so secrets cannot leak through str(), repr() or f-strings."""

from __future__ import annotations

MASK = "****"


class Secret:
    """Holds a password or token; `reveal()` is the only way to read it."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = str(value)

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))

    def __str__(self) -> str:
        return MASK

    def __repr__(self) -> str:
        return "Secret('****')"

    def __format__(self, spec: str) -> str:
        return MASK


def mask_text(text: str, secrets: "list[Secret | str | None]") -> str:
    """Replace every occurrence of each secret's value in `text` (for error messages from servers)."""
    for s in secrets:
        value = s.reveal() if isinstance(s, Secret) else s
        if value and len(value) >= 3:
            text = text.replace(value, MASK)
    return text
