"""Later versions of the lab's StackBill chart, for `sbops upgrade`'s tests: made from tests/lab/charts/stackbill
(version 1.0.0) so they never drift from it, each differing by one documented change.

- 2.0.0: a working upgrade. Every Deployment's `imagePullPolicy` goes from Always to IfNotPresent (a change of
  the pod template, so every Deployment rolls out new pods, which the kubelet starts and probes as usual), and
  appVersion lab -> lab-2.
- 3.0.0: a broken upgrade. sb-admin's readiness probe asks a path its stand-in answers with 404 (it serves
  /admin only; sb-ui would answer any path), so its new pod never becomes Ready: the rollout stalls (the old pod keeps serving, as Kubernetes keeps it until the new one is
  Ready) and `sbops upgrade --auto-rollback` must return to the previous revision.

Only chart defaults change: the release's own values (passwords, addresses, image tag) are reused as they are.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

BASE = Path(__file__).resolve().parent / "charts" / "stackbill"
CHANGES = {
    "2.0.0": {"appVersion": "lab-2", "values": {("image", "pullPolicy"): "IfNotPresent"}},
    "3.0.0": {"appVersion": "lab-3", "values": {("image", "pullPolicy"): "IfNotPresent",
                                                ("apps", "sb-admin", "readinessPath"): "/not-served-by-v3/"}},
}


def make_version(root: Path, version: str) -> Path:
    """Write chart `version` (a key of CHANGES) under `root` and return its directory."""
    change = CHANGES[version]
    target = Path(root) / f"stackbill-{version}" / "stackbill"
    shutil.rmtree(target, ignore_errors=True)
    shutil.copytree(BASE, target)
    meta = yaml.safe_load((target / "Chart.yaml").read_text())
    meta.update(version=version, appVersion=change["appVersion"])
    (target / "Chart.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))
    values = yaml.safe_load((target / "values.yaml").read_text())
    for keys, value in change["values"].items():
        node = values
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = value
    (target / "values.yaml").write_text(yaml.safe_dump(values, sort_keys=False))
    return target
