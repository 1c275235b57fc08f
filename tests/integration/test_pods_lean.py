"""pods.ready and pods.restarts judge a lean copy of each pod, listed once per run (sbops.probes.pods.list_pods):
on a crowded namespace of the real kube-apiserver lab they conclude what the full API objects give.

Real here: kube-apiserver v1.20 + etcd, 620 pods (more than one page of list results) created through the API
with the status a kubelet would report (tests/lab/crowd.py: Running and Ready, CrashLoopBackOff,
ImagePullBackOff, Pending), the real `sbops doctor` CLI, listing in pages with continue tokens. Not real:
kubelets (nothing runs the pods; their status is written through the status subresource).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import requests

from sbops.context import Context
from sbops.probes import kubecommon as kc
from sbops.probes import pods
from tests.lab import kube as lab
from tests.lab.crowd import Seeder
from tests.lab.env import LabEnv

CROWD = "crowd-lean"
PODS = pods.PAGE + 120  # more than one page: the continue token is followed


def judged(given: list[dict[str, Any]], threshold: int) -> dict[str, Any]:
    """What the two checks conclude from a list of pods, events and logs aside."""
    from datetime import datetime, timezone

    kept, leaving = pods.split_departing(given, datetime.now(timezone.utc))
    problems = [p for p in (pods.diagnose_pod(x) for x in kept) if p is not None]
    found = pods.restarts(kept, threshold)
    return {"problems": problems, "counts": pods.pod_counts(kept), "leaving": len(leaving),
            "ready": pods.judge_ready(CROWD, kept, problems, len(leaving)),
            "restarts": pods.judge_restarts(CROWD, found, threshold)}


def test_lean_list_is_judged_as_the_full_objects(kube: lab.KubeLab, tmp_path: Path) -> None:
    seeder = Seeder(kube, workers=8)
    seeder.call("POST", "/api/v1/namespaces", {"metadata": {"name": CROWD}}, (201, 409))
    try:
        seeder.pods(0, PODS, 12, only=CROWD)
        env = LabEnv(tmp_path / "env").set("kubeconfig", str(kube.kubeconfig)).set("namespace", CROWD).write()
        ctx = Context.load(str(env.config_path), str(env.credentials_path))
        threshold = int(ctx.settings["pods.restart_threshold"])
        try:
            full = kc.api(ctx).list(kc.path(namespace=CROWD, plural="pods"))
            lean = pods.list_pods(ctx, CROWD)
            assert pods.list_pods(ctx, CROWD) is lean, "listed once per run"
        finally:
            ctx.close()
        assert len(full) == len(lean) == PODS
        assert all("managedFields" in p["metadata"] and "spec" in p for p in full)
        assert not any("managedFields" in p["metadata"] or "spec" in p for p in lean)
        old, new = judged(full, threshold), judged(lean, threshold)
        assert new == old
        assert {p["reason"] for p in old["problems"]} == {"crash_loop", "image_pull", "pending"}, \
            "the crowd has every kind of trouble"

        found = env.doctor("pods.ready", "pods.restarts")  # the real CLI, lean path
        for check, result in (("pods.ready", old["ready"]), ("pods.restarts", old["restarts"])):
            assert (found[check]["code"], found[check]["status"], found[check]["reason"]) == (
                result.code, result.status.value, result.reason.value), check
        strip = [{k: v for k, v in p.items() if k not in ("events", "last_logs")}
                 for p in found["pods.ready"]["details"]["not_ready"]]
        assert json.loads(json.dumps(strip)) == json.loads(json.dumps(old["problems"]))
        assert found["pods.restarts"]["details"]["containers"] == json.loads(
            json.dumps(old["restarts"].details["containers"]))
    finally:
        requests.delete(f"{kube.server}/api/v1/namespaces/{CROWD}/pods", params={"gracePeriodSeconds": "0"},
                        headers=seeder.headers, verify=seeder.ca, timeout=60).raise_for_status()
        seeder.close()
