"""Text and JSON renderers of doctor results and fix outcomes."""


def runbook_link(template: str, check_id: str) -> str:
    """The runbook URL of a check: `template` with {id} replaced. Settings refuse a template with any other
    placeholder or a stray brace when they load (one line, exit 2); a template that reaches here unchecked
    (built in code) is shown as written rather than crashing the report after every check has run."""
    try:
        return template.format(id=check_id)
    except (ValueError, IndexError, KeyError, AttributeError):
        return template
