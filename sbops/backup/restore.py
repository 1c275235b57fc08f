"""Restore from an archive: the archive is verified first (archive.open_archive), then a plan per layer is
shown, then each layer is applied and verified against the manifest (row counts per table, document counts per
collection, definitions and objects present)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

from sbops.backup import LAYERS, layer_module
from sbops.backup.archive import Opened, human
from sbops.secret import mask_text

if TYPE_CHECKING:
    from sbops.context import Context


@dataclass
class LayerPlan:
    layer: str
    size: int
    lines: list[str]
    skipped: str = ""  # why this layer will not be restored


@dataclass
class LayerOutcome:
    layer: str
    status: str  # restored, failed, not-verified, skipped
    error: str = ""
    problems: list[str] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)


def choose_layers(opened: Opened, requested: Sequence[str]) -> list[LayerPlan]:
    """Pure over the manifest: the layers to restore, in restore order, each with its plan or why not."""
    out = []
    for name in LAYERS:
        if requested and name not in requested:
            continue
        info = opened.manifest.layers.get(name)
        if info is None:
            out.append(LayerPlan(name, 0, [], "not in the archive"))
        elif info.get("status") != "ok":
            out.append(LayerPlan(name, 0, [], f"its backup failed: {info.get('error', '')}"))
        else:
            out.append(LayerPlan(name, opened.manifest.size_of(name), layer_module(name).plan(opened)))
    return out


def render_plan(opened: Opened, plans: list[LayerPlan]) -> str:
    m = opened.manifest
    lines = [f"Archive verified: {len(m.parts)} parts, created {m.created} on {m.host} by sbops {m.sbops}"
             + (" (encrypted)" if m.encrypted else "")]
    for p in plans:
        if p.skipped:
            lines.append(f"  {p.layer}: skipped ({p.skipped})")
            continue
        lines.append(f"  {p.layer} ({human(p.size)}):")
        lines += [f"    - {line}" for line in p.lines] or ["    - nothing to restore"]
    return "\n".join(lines) + "\n"


def apply(ctx: "Context", opened: Opened, plans: list[LayerPlan], progress: Any) -> list[LayerOutcome]:
    outcomes = []
    for p in plans:
        if p.skipped:
            outcomes.append(LayerOutcome(p.layer, "skipped", p.skipped))
            continue
        module = layer_module(p.layer)
        try:
            detail = module.restore(ctx, opened, progress)
        except Exception as exc:  # noqa: BLE001 - reported per layer; later layers still run
            outcomes.append(LayerOutcome(p.layer, "failed", mask_text(f"{type(exc).__name__}: {exc}", ctx.secrets())))
            continue
        progress.show(f"{p.layer}: verifying", force=True)
        try:
            if p.layer == "rabbitmq":
                problems = module.verify(ctx, opened, detail.get("users_not_restored"))
            else:
                problems = module.verify(ctx, opened)
        except Exception as exc:  # noqa: BLE001
            outcomes.append(LayerOutcome(p.layer, "not-verified",
                                         mask_text(f"{type(exc).__name__}: {exc}", ctx.secrets()), detail=detail))
            continue
        outcomes.append(LayerOutcome(p.layer, "restored" if not problems else "not-verified", "", problems, detail))
    progress.done()
    return outcomes


def document(opened: Opened, plans: list[LayerPlan], outcomes: list[LayerOutcome] | None, result: str) -> dict[str, Any]:
    return {
        "result": result,
        "archive": {"created": opened.manifest.created, "host": opened.manifest.host, "parts": len(opened.manifest.parts),
                    "encrypted": opened.manifest.encrypted},
        "plan": [{"layer": p.layer, "bytes": p.size, "actions": p.lines, "skipped": p.skipped} for p in plans],
        "layers": [{"layer": o.layer, "status": o.status, "error": o.error, "problems": o.problems, "detail": o.detail}
                   for o in outcomes or []],
    }
