"""helm.release: Helm's record encoding, revision choice and judgement; helm-rollback's argv."""

from __future__ import annotations

import base64
import gzip
import json
from typing import Any

import pytest

from sbops.model import Reason, Status
from sbops.probes import helm


def release_json(status: str, version: int = 1, chart_version: str = "1.2.0") -> dict[str, Any]:
    return {"name": "stackbill", "namespace": "sb-apps", "version": version,
            "info": {"status": status, "description": f"{status} desc"},
            "chart": {"metadata": {"name": "stackbill", "version": chart_version, "appVersion": "3.1"}}}


def secret(status: str, version: int, label_status: str | None = None, encoded: str | None = None) -> dict[str, Any]:
    helm_value = encoded if encoded is not None else helm.encode_release(release_json(status, version))
    return {"metadata": {"name": f"sh.helm.release.v1.stackbill.v{version}",
                         "labels": {"owner": "helm", "name": "stackbill", "status": label_status or status,
                                    "version": str(version)}},
            "data": {"release": base64.b64encode(helm_value.encode()).decode()}}


@pytest.mark.parametrize("value", [
    base64.b64encode(gzip.compress(b'{"name":"x","info":{"status":"deployed"}}', mtime=0)).decode(),  # id: stable
    base64.b64encode(b'{"name":"x","info":{"status":"deployed"}}').decode(),  # Helm accepts plain JSON too
])
def test_decode_release(value: str) -> None:
    assert helm.decode_release(value)["info"]["status"] == "deployed"


@pytest.mark.parametrize("value", [
    "!!!not base64!!!",
    base64.b64encode(b"\x1f\x8b\x08garbage").decode(),
    base64.b64encode(b"not json").decode(),
    base64.b64encode(b"[1, 2]").decode(),
])
def test_decode_release_rejects_garbage(value: str) -> None:
    with pytest.raises(ValueError):
        helm.decode_release(value)


def test_encode_roundtrip() -> None:
    data = release_json("deployed", 3)
    assert helm.decode_release(helm.encode_release(data)) == data


@pytest.mark.parametrize("name, label, expected", [
    ("sh.helm.release.v1.stackbill.v12", "12", 12),
    ("sh.helm.release.v1.stackbill.v12", "", 12),
    ("sh.helm.release.v1.stackbill.vX", "", -1),
])
def test_revision_of(name: str, label: str, expected: int) -> None:
    assert helm.revision_of({"metadata": {"name": name, "labels": {"version": label}}}) == expected


@pytest.mark.parametrize("history, status, reason, code, target", [
    ([("deployed", 1)], Status.OK, Reason.NONE, "SB6510", None),
    ([("superseded", 1), ("deployed", 2)], Status.OK, Reason.NONE, "SB6510", 1),
    ([("deployed", 1), ("pending-upgrade", 2)], Status.FAIL, Reason.STUCK, "SB6512", 1),
    ([("pending-install", 1)], Status.FAIL, Reason.STUCK, "SB6512", None),
    ([("superseded", 1), ("deployed", 2), ("pending-rollback", 3)], Status.FAIL, Reason.STUCK, "SB6512", 2),
    ([("deployed", 1), ("failed", 2)], Status.FAIL, Reason.FAILED, "SB6513", 1),
    ([("superseded", 1), ("failed", 2), ("failed", 3)], Status.FAIL, Reason.FAILED, "SB6513", 1),
    # order of the API's list does not matter: revision 10 is newer than 9
    ([("failed", 10), ("deployed", 9)], Status.FAIL, Reason.FAILED, "SB6513", 9),
    ([("uninstalled", 1)], Status.FAIL, Reason.MISSING, "SB6514", None),
    ([], Status.FAIL, Reason.MISSING, "SB6511", None),
])
def test_judge_release(history: list[tuple[str, int]], status: Status, reason: Reason, code: str,
                       target: int | None) -> None:
    revisions = [helm.summarize(secret(s, v)) for s, v in history]
    result = helm.judge_release("stackbill", "sb-apps", revisions)
    assert (result.code, result.status, result.reason) == (code, status, reason)
    if revisions:
        latest = max(history, key=lambda h: h[1])
        assert result.details["revision"] == latest[1]
        assert result.args["where"] == f"release stackbill revision {latest[1]} (stackbill-1.2.0)"
        if status is not Status.OK:
            assert result.details["last_deployed"] == target
        older = sorted(revisions, key=lambda r: r["revision"])[:-1]
        assert helm.last_deployed(older) == target


def test_encoded_status_wins_over_the_label() -> None:
    facts = helm.summarize(secret("pending-upgrade", 2, label_status="deployed"))
    assert facts["status"] == "pending-upgrade" and facts["chart_version"] == "1.2.0" and facts["decoded"]


def test_undecodable_record_falls_back_to_labels() -> None:
    facts = helm.summarize(secret("failed", 2, encoded="%%%"))
    assert facts["status"] == "failed" and not facts["decoded"] and "decode_error" in facts


def test_rollback_argv() -> None:
    assert helm.rollback_argv("/usr/bin/helm", "stackbill", 3, "sb-apps", "/k.yaml") == [
        "/usr/bin/helm", "rollback", "stackbill", "3", "-n", "sb-apps", "--wait=false", "--kubeconfig", "/k.yaml"]


def test_decode_real_secret_value_layers() -> None:
    inner = json.dumps(release_json("deployed")).encode()
    api_value = base64.b64encode(base64.b64encode(gzip.compress(inner))).decode()
    assert helm.decode_secret_field(api_value)["chart"]["metadata"]["version"] == "1.2.0"
