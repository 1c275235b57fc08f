"""`sbops uninstall`'s planner and verifier from tables: a given inventory and levels -> the exact steps, in
order, what is already gone, what is kept, and what blocks; a second inventory -> what is still there."""

from __future__ import annotations

from dataclasses import replace

import pytest

from sbops.uninstall.inventory import (HostInventory, Inventory, KubeInventory, KubeObject, MongoInventory,
                                     MysqlInventory, RabbitInventory)
from sbops.uninstall.plan import Levels, databases_confirmed_gone, leftovers, plan, still_there
from sbops.uninstall.report import Outcome, render_plan, render_verify

NS = "sb-apps"
CLAIM = {"name": "sb-data", "capacity": "10Gi", "storage_class": "nfs-client", "phase": "Bound",
         "volume": "pvc-1234", "terminating": False, "finalizers": ["kubernetes.io/pvc-protection"],
         "resource_version": "7", "reclaim_policy": "Delete", "nfs_path": "/data/stackbill/sb-apps-sb-data-pvc-1234",
         "archive_on_delete": True, "users": []}
RELEASE = {"name": "stackbill", "revision": 3, "status": "deployed", "chart": "stackbill", "chart_version": "1.0.0",
           "app_version": "1.0.0", "description": "", "decoded": True, "secret": "sh.helm.release.v1.stackbill.v3",
           "revisions": 3}


def objects(*, exists: bool = True, tls_users: tuple[str, ...] = ()) -> tuple[KubeObject, ...]:
    return (KubeObject("virtualservice", NS, "stackbill-vs", exists, "routing"),
            KubeObject("gateway", NS, "stackbill-gateway", exists, "gateway"),
            KubeObject("secret", NS, "awscred", exists, "ECR image pull secret"),
            KubeObject("secret", "istio-system", "istio-ingressgateway-certs", exists, "TLS", tls_users))


def installed() -> Inventory:
    """Everything a StackBill install leaves, as inventory.observe would report it."""
    return Inventory(
        "stackbill", NS,
        KubeInventory(NS, "Active", (), (RELEASE,), objects(), (CLAIM,), helm="/usr/local/bin/helm",
                      kubeconfig="/etc/rancher/k3s/k3s.yaml"),
        MysqlInventory("stackbill", ("stackbill", "configuration"),
                       ({"name": "configuration", "bytes": 49152, "tables": 3, "rows": 0, "disk_bytes": None},
                        {"name": "stackbill", "bytes": 5_300_000, "tables": 120, "rows": 41000,
                         "disk_bytes": 9_437_184}), ("%", "localhost"), "admin root"),
        MongoInventory("stackbill", True, ({"name": "usage", "bytes": 519500, "empty": False},), "as stackbill itself"),
        RabbitInventory("stackbill", True, "rabbitmqctl", ("rabbitmqctl delete_user stackbill",)),
        HostInventory(("/etc/systemd/system/sbops-ecr-refresh.timer", "/etc/systemd/system/sbops-ecr-refresh.service"),
                      "/etc/systemd/system", "/root/stackbill-credentials.txt", True, True,
                      ("/etc/systemd/system/sbops-exporter.service",)),
    )


def removed() -> Inventory:
    """The same server after a full uninstall."""
    return Inventory(
        "stackbill", NS, KubeInventory(NS, "", (), (), objects(exists=False), (), helm="/usr/local/bin/helm"),
        MysqlInventory("stackbill", ("stackbill", "configuration"), (), (), "admin root"),
        MongoInventory("stackbill", False, (), "as admin (mongodb.admin_user)"),
        RabbitInventory("stackbill", False, "rabbitmqctl"),
        HostInventory((), "/etc/systemd/system", "/root/stackbill-credentials.txt", False, False),
    )


def step_of(p, kind: str, n: int = 0):
    """The plan's n-th step of a kind (indices would shift with every new step)."""
    return [s for s in p.steps if s.kind == kind][n]


def steps(p) -> list[tuple[str, tuple[str, ...]]]:
    return [(s.kind, s.target) for s in p.steps]


ALL = Levels(pvc=True, namespace=True, db=True, mongo_data=True)
RELEASE_LEVEL = [
    ("refresher", ("/etc/systemd/system/sbops-ecr-refresh.timer", "/etc/systemd/system/sbops-ecr-refresh.service")),
    ("exporter", ("/etc/systemd/system/sbops-exporter.service",)),
    ("helm-uninstall", ("stackbill",)),
    ("delete-object", ("virtualservice", NS, "stackbill-vs")),
    ("delete-object", ("gateway", NS, "stackbill-gateway")),
    ("delete-object", ("secret", NS, "awscred")),
]


def test_default_level_deletes_the_release_and_what_surrounds_it_and_lists_the_rest_as_kept():
    p = plan(installed(), Levels())
    assert steps(p) == RELEASE_LEVEL and not p.blockers
    assert [k.what for k in p.kept] == [
        f"PVC {NS}/sb-data (10Gi, nfs-client)", "secret istio-system/istio-ingressgateway-certs", f"namespace {NS}",
        "MongoDB database usage (519.5 kB on disk)", "MySQL database stackbill (120 tables, about 41000 rows, 9.4 MB on disk)",
        "MySQL database configuration (3 tables, 49.2 kB of data and indexes)", "MySQL account 'stackbill'@'%'",
        "MySQL account 'stackbill'@'localhost'", "MongoDB user stackbill", "RabbitMQ user stackbill",
        "credentials file /root/stackbill-credentials.txt"]
    assert p.kept[0].why == "add --delete-pvc to delete it"
    assert p.kept[4].why == "add --delete-db to delete it"
    assert step_of(p, "helm-uninstall").change.commands == (
        "/usr/local/bin/helm uninstall stackbill -n sb-apps --kubeconfig /etc/rancher/k3s/k3s.yaml --timeout 300s",)
    assert step_of(p, "helm-uninstall").change.description.startswith("uninstall Helm release stackbill (chart stackbill-1.0.0, revision 3, deployed)")


def test_every_level_in_the_safe_order():
    p = plan(installed(), ALL)
    assert steps(p) == RELEASE_LEVEL + [
        ("delete-pvc", (NS, "sb-data")),
        ("delete-object", ("secret", "istio-system", "istio-ingressgateway-certs")),
        ("delete-namespace", (NS,)),
        ("drop-mongodb-database", ("usage",)),
        ("drop-mysql-database", ("stackbill",)),
        ("drop-mysql-database", ("configuration",)),
        ("drop-mysql-user", ("stackbill", "%")),
        ("drop-mysql-user", ("stackbill", "localhost")),
        ("drop-mongodb-user", ("stackbill",)),
        ("delete-rabbitmq-user", ("stackbill",)),
        ("remove-credentials", ("/root/stackbill-credentials.txt", "/root/stackbill-credentials.txt.bak")),
    ]
    assert p.kept == () and not p.blockers
    by_kind: dict = {}
    for s in p.steps:
        by_kind.setdefault(s.kind, s.change)  # the first of each kind
    assert by_kind["delete-pvc"].description == (
        f"via the Kubernetes API: delete PVC {NS}/sb-data (10Gi, nfs-client, Bound): volume pvc-1234 has reclaim policy Delete: the NFS "
        "provisioner renames its directory (/data/stackbill/sb-apps-sb-data-pvc-1234) to archived-* (archiveOnDelete)")
    assert by_kind["drop-mysql-database"].commands == ("DROP DATABASE IF EXISTS `stackbill`",)
    assert by_kind["drop-mysql-user"].commands == ("DROP USER IF EXISTS 'stackbill'@'%'",)
    assert by_kind["drop-mongodb-user"].commands == ()  # through the driver: the description says so
    assert "db.getSiblingDB('admin').dropUser('stackbill')" in by_kind["drop-mongodb-user"].description
    assert by_kind["drop-mongodb-database"].commands == ()
    assert "db.getSiblingDB('usage').dropDatabase()" in by_kind["drop-mongodb-database"].description
    assert by_kind["delete-rabbitmq-user"].commands == ("rabbitmqctl delete_user stackbill",)
    assert "only once the databases are confirmed gone" in by_kind["remove-credentials"].description


def test_delete_namespace_takes_the_pvcs_first_even_without_delete_pvc():
    p = plan(installed(), Levels(namespace=True))
    assert [k for k, _ in steps(p)][-3:] == ["delete-pvc", "delete-object", "delete-namespace"]


def test_delete_db_keeps_mongodb_data_and_says_so():
    p = plan(installed(), Levels(db=True))
    assert ("drop-mongodb-user", ("stackbill",)) in steps(p)
    assert "drop-mongodb-database" not in [k for k, _ in steps(p)]
    assert any("keeps MongoDB's databases" in n and "--delete-mongo-data" in n for n in p.notes)
    assert any(k.what == "MongoDB database usage (519.5 kB on disk)" for k in p.kept)
    assert any("vhost '/' stay" in n for n in p.notes)


def test_nothing_left_is_nothing_to_do_with_a_reason_for_each_item():
    p = plan(removed(), ALL)
    assert p.empty and not p.blockers and p.kept == ()
    assert {(g.what, g.why) for g in p.gone} == {
        ("ECR refresher timer", "not installed (no sbops-ecr-refresh units in /etc/systemd/system)"),
        ("sbops exporter service", "not installed (no sbops-exporter.service in /etc/systemd/system)"),
        ("Helm release stackbill", f"no release record in namespace {NS}"),
        (f"virtualservice {NS}/stackbill-vs", "does not exist"),
        (f"gateway {NS}/stackbill-gateway", "does not exist"),
        (f"secret {NS}/awscred", "does not exist"),
        (f"PVCs in {NS}", "the namespace does not exist"),
        ("secret istio-system/istio-ingressgateway-certs", "does not exist"),
        (f"namespace {NS}", "does not exist"),
        ("MongoDB databases", "none besides admin, config and local"),
        ("MySQL database stackbill", "does not exist"),
        ("MySQL database configuration", "does not exist"),
        ("MySQL user stackbill", "no account"),
        ("MongoDB user stackbill", "does not exist (as admin (mongodb.admin_user))"),
        ("RabbitMQ user stackbill", "does not exist"),
        ("credentials file", "/root/stackbill-credentials.txt does not exist"),
    }


@pytest.mark.parametrize("change, levels, blocker", [
    (lambda i: replace(i, kube=KubeInventory(NS, error="no kubeconfig")), Levels(),
     "cannot read the cluster: no kubeconfig"),
    (lambda i: replace(i, kube=replace(i.kube, helm="")), Levels(),
     "helm binary 'helm' not found (setting helm.command): install Helm 3 to uninstall release stackbill"),
    (lambda i: replace(i, mysql=MysqlInventory(error="no MySQL login works (admin root: (1045) denied)")),
     Levels(db=True), "MySQL: no MySQL login works (admin root: (1045) denied)"),
    (lambda i: replace(i, mongodb=MongoInventory(error="no admin access", databases_error="no admin access")),
     Levels(db=True), "MongoDB: cannot tell whether user stackbill exists: no admin access"),
    (lambda i: replace(i, rabbitmq=RabbitInventory(error="no way to read RabbitMQ users: node down")),
     Levels(db=True), "RabbitMQ: no way to read RabbitMQ users: node down"),
    (lambda i: replace(i, mongodb=replace(i.mongodb, databases=None, databases_error="Unauthorized")),
     Levels(mongo_data=True), "MongoDB: cannot list the databases to drop: Unauthorized"),
    (lambda i: replace(i, namespace="kube-system"), Levels(namespace=True),
     "refusing to delete namespace kube-system: it is not StackBill's"),
])
def test_what_cannot_be_observed_at_a_chosen_level_blocks(change, levels, blocker):
    assert blocker in plan(change(installed()), levels).blockers


def test_an_unreadable_database_area_only_notes_when_its_level_is_not_chosen():
    inv = replace(installed(), mysql=MysqlInventory(error="no MySQL login works"))
    p = plan(inv, Levels())
    assert not p.blockers and "not measured (kept anyway): MySQL: no MySQL login works" in p.notes


def test_tls_secret_another_gateway_uses_is_kept_even_with_delete_namespace():
    inv = replace(installed(), kube=replace(installed().kube, objects=objects(tls_users=("Gateway other/web",))))
    p = plan(inv, Levels(namespace=True))
    assert ("delete-object", ("secret", "istio-system", "istio-ingressgateway-certs")) not in steps(p)
    assert any(k.why == "Gateway other/web uses it too" for k in p.kept)


def test_other_releases_and_a_terminating_namespace_are_described():
    other = dict(RELEASE, name="monitoring")
    inv = replace(installed(), kube=replace(installed().kube, releases=(RELEASE, other)))
    p = plan(inv, Levels(namespace=True))
    assert p.steps[-1].change.description == f"via the Kubernetes API: delete namespace {NS} and everything left in it, including Helm release(s) monitoring"
    inv = replace(installed(), kube=replace(installed().kube, namespace_phase="Terminating"))
    assert plan(inv, Levels(namespace=True)).steps[-1].change.description == \
        f"via the Kubernetes API: finish deleting namespace {NS} (already Terminating)"


def test_uninstalled_with_history_is_purged():
    inv = replace(installed(), kube=replace(installed().kube, releases=(dict(RELEASE, status="uninstalled"),)))
    assert step_of(plan(inv, Levels()), "helm-uninstall").change.description.startswith("purge the history of Helm release stackbill")


def test_a_mounted_claim_is_noted():
    inv = replace(installed(), kube=replace(installed().kube, claims=(dict(CLAIM, users=["sb-core-1"]),)))
    assert any("mounted by pod(s) sb-core-1" in n for n in plan(inv, Levels(pvc=True)).notes)


# -- verification ------------------------------------------------------------------------------------------
def test_after_a_full_uninstall_nothing_is_left():
    p = plan(installed(), ALL)
    assert leftovers(p.steps, removed()) == []
    assert databases_confirmed_gone(removed()) == []


def test_what_is_still_there_and_why():
    p = plan(installed(), ALL)
    after = replace(removed(),
                    kube=replace(removed().kube, namespace_phase="Terminating",
                                 namespace_conditions=("NamespaceContentRemaining: Some resources are remaining: pods",),
                                 claims=(dict(CLAIM, terminating=True, users=["sb-core-1"]),)),
                    mysql=replace(removed().mysql, hosts=("localhost",)),
                    mongodb=MongoInventory("stackbill", None, None, error="no admin access", databases_error="no admin access"))
    left = {s.what: why for s, why in leftovers(p.steps, after)}
    assert left == {
        f"PVC {NS}/sb-data": "Terminating: mounted by pod(s) sb-core-1",
        f"namespace {NS}": "still Terminating: NamespaceContentRemaining: Some resources are remaining: pods",
        "MongoDB database usage": "cannot tell: no admin access",
        "MySQL account 'stackbill'@'localhost'": "still exists",
        "MongoDB user stackbill": "cannot tell: no admin access",
    }
    assert databases_confirmed_gone(after) == ["MySQL account 'stackbill'@'localhost' still exists",
                                               "MongoDB user stackbill cannot be checked: no admin access"]


@pytest.mark.parametrize("after, expected", [
    (lambda i: replace(i, kube=replace(i.kube, error="timeout")), "cannot tell: timeout"),
    (lambda i: replace(i, kube=replace(i.kube, releases=(dict(RELEASE, status="uninstalling"),))),
     "release record remains (uninstalling)"),
    (lambda i: i, ""),
])
def test_helm_release_verification(after, expected):
    step = step_of(plan(installed(), Levels()), "helm-uninstall")
    assert step.kind == "helm-uninstall" and still_there(step, after(removed())) == expected


def test_renderers_show_sizes_levels_and_what_is_never_removed():
    inv = installed()
    p = plan(inv, ALL)
    text = render_plan(inv, p, ALL)
    assert "(levels: release, pvc, namespace, mongo-data, db)" in text
    assert "  --delete-db: databases, users and the credentials file" in text
    assert "drop MySQL database stackbill (120 tables, about 41000 rows, 9.4 MB on disk)" in text
    assert "$ DROP USER IF EXISTS 'stackbill'@'localhost'" in text
    assert text.rstrip().splitlines()[-1].startswith("never removed: K3s; Istio")
    outcome = Outcome("not-finished", remaining=[(step_of(p, "delete-pvc"), "Terminating: mounted by pod(s) x")])
    verify = render_verify(p, outcome)
    assert f"✘ PVC {NS}/sb-data: Terminating: mounted by pod(s) x" in verify and "✔ Helm release stackbill: gone" in verify
