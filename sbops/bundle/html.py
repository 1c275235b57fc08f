"""index.html: the page a person opens first. Pure: `render_index(doctor, manifest)` -> HTML text.

It shows the doctor's counts, each failed or erroring check with its summary, likely cause and fix, what could
not be collected, what was redacted, and links to every file of the bundle (relative links: it works from the
unpacked archive). No script, no external resource."""

from __future__ import annotations

from html import escape
from typing import Any

BAD = ("fail", "error")
STYLE = """
body{font-family:sans-serif;margin:1.5em;color:#222;max-width:70em}
h1{font-size:1.4em} h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;width:100%} td,th{border:1px solid #ddd;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f3f3f3} .fail,.error{color:#b00020;font-weight:bold} .warn{color:#a66000;font-weight:bold}
.pass{color:#17702a} .skip{color:#666} .count{display:inline-block;margin-right:1.2em;font-size:1.1em}
code{background:#f5f5f5;padding:0 .2em}
"""


def _cell(value: Any) -> str:
    return escape("" if value is None else str(value))


def _cause(check: dict[str, Any]) -> str:
    cause = (check.get("details") or {}).get("likely_cause") if isinstance(check.get("details"), dict) else None
    if not isinstance(cause, dict):
        return ""
    text = f"{cause.get('check')}: {cause.get('cause') or ''} ({cause.get('summary') or ''})"
    if cause.get("fix"):
        text += f"; fix: sbops fix {cause['fix']}"
    return _cell(text)


def render_index(doctor: dict[str, Any] | None, manifest: dict[str, Any]) -> str:
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>",
             "<title>sbops support bundle</title>", f"<style>{STYLE}</style></head><body>",
             "<h1>sbops support bundle</h1>",
             f"<p>Created {_cell(manifest.get('created'))} by sbops {_cell(manifest.get('sbops'))} in "
             f"{_cell(manifest.get('collection_seconds'))} s. Start with the failed checks below; "
             "<a href='summary.txt'>summary.txt</a> is the doctor's text report, "
             "<a href='doctor.json'>doctor.json</a> its full JSON, "
             "<a href='manifest.json'>manifest.json</a> lists every file.</p>"]
    parts.append("<h2 id='doctor'>Doctor</h2>")
    if doctor is None:
        parts.append("<p class='error'>The doctor did not run to completion (see <em>Not collected</em>).</p>")
        checks: list[dict[str, Any]] = []
    else:
        counts = doctor.get("counts") or {}
        parts.append("<p>" + "".join(f"<span class='count {escape(k)}'>{escape(k)}: {_cell(v)}</span>"
                                     for k, v in counts.items()) + "</p>")
        checks = list(doctor.get("checks") or [])
    bad = [c for c in checks if c.get("status") in BAD]
    warned = [c for c in checks if c.get("status") == "warn"]
    parts.append(f"<h2 id='failed'>Failed checks ({len(bad)})</h2>")
    if bad:
        parts.append("<table><tr><th>check</th><th>status</th><th>what was seen</th><th>likely cause</th>"
                     "<th>fix</th><th>runbook</th></tr>")
        for c in bad:
            fix = f"sbops fix {c['fix']}" if c.get("fix") else ""
            runbook = c.get("runbook") or ""
            link = f"<a href='{escape(runbook, quote=True)}'>runbook</a>" if runbook else ""
            parts.append(f"<tr class='failed-check'><td><code>{_cell(c.get('id'))}</code></td>"
                         f"<td class='{escape(str(c.get('status')))}'>{_cell(c.get('status'))}</td>"
                         f"<td>{_cell(c.get('summary'))}</td><td>{_cause(c)}</td><td>{_cell(fix)}</td>"
                         f"<td>{link}</td></tr>")
        parts.append("</table>")
    else:
        parts.append("<p class='pass'>No check failed.</p>")
    if warned:
        parts.append(f"<h2 id='warnings'>Warnings ({len(warned)})</h2><ul>")
        parts += [f"<li><code>{_cell(c.get('id'))}</code>: {_cell(c.get('summary'))}</li>" for c in warned]
        parts.append("</ul>")
    missing = manifest.get("not_collected") or []
    parts.append(f"<h2 id='missing'>Not collected ({len(missing)})</h2>")
    parts.append("<ul>" + "".join(f"<li>{_cell(m)}</li>" for m in missing) + "</ul>" if missing
                 else "<p>Every collector finished.</p>")
    report = manifest.get("redaction") or {}
    parts.append("<h2 id='redaction'>Redaction</h2>")
    parts.append(f"<p>{_cell(report.get('total', 0))} value(s) redacted; {_cell(report.get('known_secrets', 0))} known "
                 "secret(s) searched in every form, and the archive verified after writing. By kind: "
                 + ", ".join(f"{escape(k)} {_cell(v)}" for k, v in (report.get("by_kind") or {}).items()) + "</p>")
    truncated = manifest.get("truncated") or []
    if truncated:
        parts.append(f"<p>Truncated by --max-size (newest lines kept): {_cell(', '.join(truncated))}</p>")
    parts.append("<h2 id='files'>Files</h2><table><tr><th>file</th><th>bytes</th><th>redactions</th></tr>")
    for entry in manifest.get("files") or []:
        path = str(entry.get("path"))
        red = ", ".join(f"{k} {v}" for k, v in (entry.get("redactions") or {}).items())
        parts.append(f"<tr><td><a href='{escape(path, quote=True)}'>{escape(path)}</a></td>"
                     f"<td>{_cell(entry.get('size'))}</td><td>{_cell(red)}</td></tr>")
    parts.append("</table></body></html>\n")
    return "\n".join(parts)
