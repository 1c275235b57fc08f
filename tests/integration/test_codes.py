"""The findings contract over the whole lab: every result `sbops doctor --output json` reports carries a code
from the catalog (sbops.messages), and that message's status and reason are the result's.

The lab is assembled as test_exporter.py's full_env does (every data server, the test cluster, the HTTPS
portal), then doctor runs twice: on the healthy lab, and on a broken one (MySQL stopped, wrong MongoDB and
RabbitMQ passwords, the NFS export on the pod network, the portal API failing, a pod that never gets
scheduled), so the failure paths report codes too, the engine's included (a check blocked by mysql.reachable is
SB0003). Each (scenario, layer) pair is its own test, so a layer whose probes still return free text shows
up by name. Both doctor runs happen once per module; the tests read their documents.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import sbops.messages as messages
from sbops.registry import LAYERS, load_all
from tests.integration.test_exporter import full_env
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD
from tests.lab.https import CLOUDCONFIG_PATH, Reply
from tests.lab.mongodb import MONGO_PASSWORD

REGISTRY = load_all()
SCENARIOS = ("healthy", "broken")
# The two doctor documents ({check id: its JSON object}), computed by the first test that needs them.
_DOCUMENTS: dict[str, dict[str, dict[str, Any]]] = {}


def catalog() -> messages.Catalog:
    """Every area's messages (the catalog fills as sbops/messages/<area>.py modules are imported)."""
    for info in pkgutil.iter_modules(messages.__path__):
        importlib.import_module(f"sbops.messages.{info.name}")
    return messages.CATALOG


def run_doctor(env) -> dict[str, dict[str, Any]]:
    proc = env.sbops("doctor", "--output", "json", timeout=300)
    assert proc.returncode in (0, 3, 4), f"doctor exited {proc.returncode}: {proc.stderr}"
    import json

    return {c["id"]: c for c in json.loads(proc.stdout)["checks"]}


def break_the_lab(env, mysql, nfs_lab, https_portal, core, rabbit) -> None:
    """What users break: a database stopped, passwords that no longer match, an export to the pod network, an
    API that fails, a pod left Pending."""
    mysql.stop()
    env.service("mongodb", port=env.services["mongodb"].port, password=MONGO_PASSWORD + "-wrong")
    env.service("rabbitmq", port=rabbit.port, password="not-the-password",
                management=f"http://127.0.0.1:{rabbit.management_port}")
    nfs_lab.seed_stackbill("10.42.0.0/16")
    https_portal.set(CLOUDCONFIG_PATH, Reply(500, b'{"error":"Could not open JDBC Connection"}', "application/json"))
    # a pod nothing will run: this cluster has no scheduler or kubelet, so it stays Pending as the API server
    # created it (no test writes a pod status; the kubelet's own verdicts are in test_living_*.py)
    template = core.list_namespaced_pod("sb-apps").items[0]
    core.create_namespaced_pod("sb-apps", {"metadata": {"name": "sb-unscheduled", "labels": {"app": "sb-unscheduled"}},
                                           "spec": {"containers": [{"name": "app", "image": template.spec.containers[0].image}]}})
    env.write()


@pytest.fixture
def documents(request, tmp_path) -> dict[str, dict[str, dict[str, Any]]]:
    if not _DOCUMENTS:
        mysql = request.getfixturevalue("mariadb_factory")()
        mysql.seed_stackbill(MYSQL_PASSWORD)
        rabbit = request.getfixturevalue("rabbitmq_healthy")
        nfs_lab = request.getfixturevalue("nfs_lab")
        portal = request.getfixturevalue("https_portal")
        kube = request.getfixturevalue("kube")
        env = full_env(tmp_path / "env", mysql, request.getfixturevalue("mongo_shared"), rabbit, nfs_lab, kube,
                       portal)
        healthy = run_doctor(env)
        break_the_lab(env, mysql, nfs_lab, portal, request.getfixturevalue("core"), rabbit)
        broken = run_doctor(env)
        _DOCUMENTS.update(healthy=healthy, broken=broken)
    return _DOCUMENTS


def test_both_scenarios_report_every_check_and_the_broken_one_fails(documents) -> None:
    for name in SCENARIOS:
        assert set(documents[name]) == set(REGISTRY.checks), name
    broken = documents["broken"]
    assert (broken["mysql.reachable"]["status"], broken["mysql.reachable"]["reason"]) == ("fail", "refused")
    assert broken["mysql.auth"]["code"] == "SB0003"  # the engine's BlockedByRequirement
    assert (broken["nfs.export"]["code"], broken["nfs.export"]["status"]) == ("SB5005", "fail")
    assert (broken["app.cloudconfiguration"]["code"], broken["app.cloudconfiguration"]["reason"]) == ("SB7004",
                                                                                                        "degraded")
    assert documents["healthy"]["nfs.export"]["code"] == "SB5001"


@pytest.mark.parametrize("scenario, layer", [(s, layer) for s in SCENARIOS for layer in LAYERS],
                         ids=[f"{s}-{layer}" for s in SCENARIOS for layer in LAYERS])
def test_every_result_is_a_catalog_message_with_its_status_and_reason(documents, scenario: str, layer: str) -> None:
    found = catalog()
    results = {cid: r for cid, r in documents[scenario].items() if r["layer"] == layer}
    assert results, f"no check of layer {layer} in the {scenario} run"
    problems = []
    for cid, result in sorted(results.items()):
        code = result["code"]
        if not code:
            problems.append(f"{cid}: no code ({result['status']}/{result['reason']}: {result['summary']})")
            continue
        if code not in found.messages:
            problems.append(f"{cid}: code {code} is not in the catalog")
            continue
        message = found[code]
        if message.status.value != result["status"]:
            problems.append(f"{cid}: {code} {message.name} is {message.status.value}, the result {result['status']}")
        if message.reason is not None and message.reason.value != result["reason"]:
            problems.append(f"{cid}: {code} {message.name} reports {message.reason.value}, the result "
                            f"{result['reason']}")
        if not code.startswith("SB00") and message.doc != f"runbooks/{cid}.md":
            problems.append(f"{cid}: {code} {message.name} belongs to {message.doc}")
    assert not problems, "\n".join(problems)
