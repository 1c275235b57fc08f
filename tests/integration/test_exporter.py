"""`sbops exporter` over real HTTP against the lab: every data server, the test cluster and the HTTPS portal.

Each test starts the real CLI (`python -m sbops exporter`) on a free port and scrapes it with an HTTP client,
as Prometheus would. The web-config tests are in test_exporter_webconfig.py. The workload metrics of a pod
that cannot pull are scraped on the living cluster (tests/lab/living.py), where the kubelet reports the pull.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from sbops.registry import LAYERS, load_all
from tests.lab.common import Blackhole, free_port
from tests.lab.env import NOT_IN_LAB, REPO, LabEnv
from tests.lab.exporter import ExporterProc, by_check, findings, parse, reasons, run_promtool, value
from tests.lab.mariadb import LAB_PASSWORD as MYSQL_PASSWORD
from tests.lab.mongodb import LAB_ADMIN, MONGO_ADMIN_PASSWORD, MONGO_PASSWORD
from tests.lab.rabbitmq import LAB_PASSWORD as RABBIT_PASSWORD

SECRETS = (MYSQL_PASSWORD, MONGO_PASSWORD, MONGO_ADMIN_PASSWORD, RABBIT_PASSWORD)
# The lab's honest warnings (README): a small VM, and SecantusDB reporting 8.2 instead of 7.0.
LAB_WARNINGS = {"host.resources", "mongodb.version"}
# The per-test servers listen on loopback only, which pods could not reach: host.bind-address says so.
# And this lab has no kubelet or containerd (the living cluster's stack has both): host.kubelet and
# host.containerd fail.
FIXTURE_FAILURES = {"host.bind-address", "host.kubelet", "host.containerd"}
# The netpath checks test from inside a running pod; this lab's cluster has no kubelet, hence no pod sandbox:
# they skip (not_running, or no_access without any containerd state), so they have no success sample.
NO_POD = {"netpath.mysql", "netpath.mongodb", "netpath.rabbitmq", "netpath.nfs", "netpath.services"}
NO_POD_REASONS = {"not_running", "no_access"}
NOT_HERE = NOT_IN_LAB


def full_env(root: Path, mysql, mongo, rabbit, nfs, kube, portal) -> LabEnv:
    """Every layer of sbops pointed at the lab, as `scripts/lab up` does."""
    env = LabEnv(root)
    env.service("mysql", port=mysql.port, password=MYSQL_PASSWORD)
    env.set("mysql.admin_socket", str(mysql.socket)).set("mysql.config_dir", str(mysql.conf_d))
    env.service("mongodb", port=mongo.port, password=MONGO_PASSWORD)
    env.set("mongodb.admin_user", LAB_ADMIN).set("mongodb.admin_password", MONGO_ADMIN_PASSWORD)
    env.set("mongodb.config_file", str(mongo.conf_path))
    env.service("rabbitmq", port=rabbit.port, password=RABBIT_PASSWORD,
                management=f"http://127.0.0.1:{rabbit.management_port}")
    env.set("rabbitmq.management_port", rabbit.management_port)
    env.set("rabbitmq.ctl_command", rabbit.ctl_command).set("rabbitmq.plugins_command", rabbit.plugins_command)
    nfs.configure(env)
    nfs.seed_for_kube_lab()  # with the cluster's Node objects, the export must cover the node's address
    env.set("kubeconfig", str(kube.kubeconfig)).set("app.url", portal.url)
    return env.write()


@pytest.fixture
def healthy(tmp_path, mariadb_seeded, mongo_shared, rabbitmq_healthy, nfs_lab, kube, https_portal) -> LabEnv:
    return full_env(tmp_path / "env", mariadb_seeded, mongo_shared, rabbitmq_healthy, nfs_lab, kube, https_portal)


def dashboard_metric_names() -> set[str]:
    """Metric names every PromQL expression of the dashboard uses (labels, functions and keywords removed)."""
    doc = json.loads((REPO / "monitoring" / "dashboard.json").read_text())
    exprs = [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]
    exprs.append(doc["templating"]["list"][1]["query"]["query"].replace("label_values(", "").split(",")[0])
    names: set[str] = set()
    for expr in exprs:
        text = re.sub(r'"[^"]*"', "", expr)
        text = re.sub(r"\{[^}]*\}", "", text)
        text = re.sub(r"\[[^\]]*\]", "", text)
        text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
        for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
            word = match.group(0)
            if text[match.end():].lstrip().startswith("("):
                continue  # a function or aggregation
            if word in ("and", "or", "unless", "bool", "offset") or word.isdigit():
                continue
            names.add(word)
    return names


def test_healthy_lab_every_check_passes_and_promtool_accepts_the_scrape(healthy: LabEnv):
    with ExporterProc(healthy) as exporter:
        text = exporter.scrape("/metrics", scrape_timeout=10)
        # k8s.api's own summary, for the failure message: a crashed check (SB0002) says why only there
        api_summary = exporter.scrape("/results?check=k8s.api", scrape_timeout=10)[:1500]
    samples = parse(text)
    success = by_check(samples, "sbops_check_success")
    registry = load_all()
    assert set(success) == set(registry.checks) - NO_POD - set(NOT_HERE), \
        f"one sbops_check_success per check, only netpath's and what the lab lacks skipped: {reasons(samples)}" \
        f"\nk8s.api from /results: {api_summary}"
    assert {cid for cid, v in success.items() if v != 1} == FIXTURE_FAILURES, reasons(samples)
    current = reasons(samples)
    assert {cid for cid, r in current.items() if r != "none"} == LAB_WARNINGS | FIXTURE_FAILURES | NO_POD | set(NOT_HERE)
    assert {current[cid] for cid in NO_POD} <= NO_POD_REASONS, current
    assert all(current[cid] in allowed for cid, allowed in NOT_HERE.items()), current
    assert value(samples, "sbops_probe_timeout_seconds") == pytest.approx(9.5)
    # the finding's code: one series per check with a code, from the catalog, agreeing with success
    import importlib
    import pkgutil

    import sbops.messages
    from sbops.messages import CATALOG

    for info in pkgutil.iter_modules(sbops.messages.__path__):  # every area, not only those this process imported
        importlib.import_module(f"sbops.messages.{info.name}")

    codes = findings(samples)
    assert all(len(found) == 1 and found[0] in CATALOG.messages for found in codes.values()), codes
    assert all(CATALOG[found[0]].status.passed == (success[cid] == 1) for cid, found in codes.items()
               if cid not in NO_POD and cid not in NOT_HERE), codes
    assert {cid for cid, c in registry.checks.items() if c.layer in ("host", "nfs", "app")} <= set(codes)
    assert codes["nfs.export"] == ["SB5001"] and codes["host.bind-address"] == ["SB1021"]
    assert {dict(k)["layer"] for (n, k), v in samples.items() if n == "sbops_scrape_collector_success" and v == 1} == set(LAYERS)
    # evidence-derived series
    assert value(samples, "sbops_pods_ready") == value(samples, "sbops_pods_desired") == 10
    assert value(samples, "sbops_pods_waiting", reason="ImagePullBackOff") == 0
    assert value(samples, "sbops_helm_release_status", status="deployed") == 1
    ecr = value(samples, "sbops_ecr_pull_secret_expiry_timestamp_seconds")
    assert ecr is not None and 10 * 3600 < ecr - time.time() < 12 * 3600  # the lab's token: 11 hours
    tls = value(samples, "sbops_tls_cert_expiry_timestamp_seconds")
    assert tls is not None and 80 * 86400 < tls - time.time() < 91 * 86400
    assert value(samples, "sbops_build_info", version=__import__("sbops").__version__,
                 pythonversion=__import__("platform").python_version()) == 1
    assert value(samples, "process_resident_memory_bytes")
    # promtool's linter on the real scrape (names, units, HELP, TYPE)
    lint = run_promtool("check", "metrics", input=text)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    # no secret of the lab in the body
    for secret in SECRETS:
        assert secret not in text
    # every metric the dashboard queries is served (process_* included)
    served = {name for name, _ in samples} | {name.removesuffix("_total") for name, _ in samples}
    assert dashboard_metric_names() - served - {"time", "vector"} == set()


def test_break_a_backend_and_the_metric_and_reason_change(tmp_path, mariadb_factory, mongo_shared, rabbitmq_healthy,
                                                          nfs_lab, kube, https_portal):
    mysql = mariadb_factory()
    mysql.seed_stackbill(MYSQL_PASSWORD)
    env = full_env(tmp_path / "env", mysql, mongo_shared, rabbitmq_healthy, nfs_lab, kube, https_portal)
    with ExporterProc(env) as exporter:
        before = parse(exporter.scrape("/probe?module=mysql"))
        assert set(by_check(before, "sbops_check_success").values()) == {1.0}
        mysql.stop()
        down = parse(exporter.scrape("/probe?module=mysql"))
        assert value(down, "sbops_check_success", layer="mysql", check="mysql.reachable") == 0
        assert reasons(down)["mysql.reachable"] == "refused"
        assert reasons(down)["mysql.auth"] == "blocked"
        assert findings(down)["mysql.auth"] == ["SB0003"]  # the engine's BlockedByRequirement
        assert ("sbops_check_success", frozenset({("layer", "mysql"), ("check", "mysql.auth")})) not in down
        mysql.start()
        again = parse(exporter.scrape("/probe?module=mysql"))
        assert set(by_check(again, "sbops_check_success").values()) == {1.0}, reasons(again)



def test_a_pod_that_cannot_pull_shows_in_the_workload_metrics(living, living_env: LabEnv):
    """On the living cluster: the registry moved to a new token, awscred still holds the old one, and sb-ui's
    pod is replaced (as a reschedule would): the kubelet reports the pull failure and the workload metrics
    follow pods.ready's evidence."""
    import datetime as dt

    from kubernetes import client

    from tests.lab import kube as lab

    with ExporterProc(living_env) as exporter:
        healthy = parse(exporter.scrape("/probe?module=workloads"))
        desired = value(healthy, "sbops_pods_desired")
        assert desired and value(healthy, "sbops_pods_ready") == desired, reasons(healthy)

        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=12)
        living.registry.set_token(lab.ecr_token(later))
        core = client.CoreV1Api(living.kube.api())
        for pod in core.list_namespaced_pod(lab.NAMESPACE, label_selector="app=sb-ui").items:
            core.delete_namespaced_pod(pod.metadata.name, lab.NAMESPACE, grace_period_seconds=0)

        def waiting() -> float:
            samples = parse(exporter.scrape("/probe?module=workloads"))
            return sum(value(samples, "sbops_pods_waiting", reason=r) or 0 for r in ("ErrImagePull", "ImagePullBackOff"))

        end = time.monotonic() + 120
        while waiting() != 1 and time.monotonic() < end:
            time.sleep(1.0)
        pods = parse(exporter.scrape("/probe?module=workloads"))
        assert reasons(pods)["pods.ready"] == "image_pull"
        assert value(pods, "sbops_pods_ready") == desired - 1 and value(pods, "sbops_pods_desired") == desired
        assert sum(value(pods, "sbops_pods_waiting", reason=r) or 0 for r in ("ErrImagePull", "ImagePullBackOff")) == 1


def test_helm_release_state_set_follows_the_release(tmp_path, healthy: LabEnv, core):
    from tests.lab.kube import helm_release_secret

    core.create_namespaced_secret("sb-apps", helm_release_secret("stackbill", "sb-apps", 2, "pending-upgrade", "1.1.0"))
    with ExporterProc(healthy) as exporter:
        samples = parse(exporter.scrape("/probe?module=helm"))
    assert value(samples, "sbops_helm_release_status", status="pending-upgrade") == 1
    assert value(samples, "sbops_helm_release_status", status="deployed") == 0
    assert reasons(samples)["helm.release"] == "stuck"
    # the only series of /probe?module=helm: its checks, its collector, the deadline, the release status
    names = {name for name, _ in samples}
    assert set(findings(samples)) <= {"helm.release"}  # sbops_check_finding: helm.release's code once it has one
    assert names - {"sbops_check_finding"} == {"sbops_check_success", "sbops_check_failure_reason", "sbops_check_duration_seconds",
                     "sbops_check_last_run_timestamp_seconds", "sbops_check_info", "sbops_scrape_collector_success",
                     "sbops_scrape_collector_duration_seconds", "sbops_probe_timeout_seconds", "sbops_helm_release_status"}


def dead_env(root: Path, holes: dict[str, Blackhole], kube) -> LabEnv:
    """Every backend unreachable: databases and portal blackholed (SYNs dropped), the API server on a
    closed port, NFS paths that do not exist."""
    import yaml

    env = LabEnv(root)
    env.service("mysql", port=holes["mysql"].port, password=MYSQL_PASSWORD)
    env.service("mongodb", port=holes["mongodb"].port, password=MONGO_PASSWORD)
    env.service("rabbitmq", port=holes["rabbitmq"].port, password=RABBIT_PASSWORD,
                management=f"http://127.0.0.1:{holes['management'].port}")
    env.set("rabbitmq.management_port", holes["management"].port)
    env.set("mysql.admin_socket", str(root / "no-mysqld.sock"))
    env.set("nfs.path", str(root / "no-export")).set("nfs.exports_file", str(root / "no-exports"))
    env.set("nfs.port", free_port()).set("app.url", f"https://127.0.0.1:{holes['portal'].port}")
    config = yaml.safe_load(Path(kube.kubeconfig).read_text())
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    (root / "kubeconfig").write_text(yaml.safe_dump(config))
    env.set("kubeconfig", str(root / "kubeconfig"))
    return env.write()


def test_every_backend_down_the_exporter_serves_within_the_scrape_deadline(tmp_path, kube_lab):
    holes = {name: Blackhole() for name in ("mysql", "mongodb", "rabbitmq", "management", "portal")}
    try:
        env = dead_env(tmp_path, holes, kube_lab)
        with ExporterProc(env) as exporter:
            # /-/healthy runs no check, so it answers with every backend down (bench/exporter.py times it)
            assert exporter.get("/-/healthy").status_code == 200
            for _ in range(2):  # the second scrape joins executions the first one left running
                began = time.monotonic()
                text = exporter.scrape("/metrics", scrape_timeout=3)
                took = time.monotonic() - began
                assert took < 3.0, f"scrape took {took:.2f}s, past Prometheus's 3 s timeout"
            samples = parse(text)
            assert value(samples, "sbops_probe_timeout_seconds") == 2.5
            current = reasons(samples)
            assert current["mysql.reachable"] == current["rabbitmq.reachable"] == "timeout"
            assert current["k8s.api"] == "refused"
            assert current["mysql.auth"] == "blocked"
            success = by_check(samples, "sbops_check_success")
            assert success["mysql.reachable"] == success["k8s.api"] == success["app.portal"] == 0
            assert all(v == 1 for (n, _), v in samples.items() if n == "sbops_scrape_collector_success")
            lint = run_promtool("check", "metrics", input=text)
            assert lint.returncode == 0, lint.stdout + lint.stderr
            assert exporter.proc.poll() is None
    finally:
        for hole in holes.values():
            hole.close()


def test_endpoints_and_errors(tmp_path, kube_lab):
    env = LabEnv(tmp_path).set("kubeconfig", str(kube_lab.kubeconfig)).write()
    with ExporterProc(env) as exporter:
        unknown = exporter.get("/probe?module=nope")
        assert unknown.status_code == 400 and "host, mysql" in unknown.text
        assert exporter.get("/probe").status_code == 400
        assert exporter.get("/nothing").status_code == 404
        index = exporter.get("/")
        assert index.status_code == 200 and 'href="/probe?module=mysql"' in index.text
        ecr = parse(exporter.scrape("/probe?module=ecr"))
        assert set(by_check(ecr, "sbops_check_success")) == {"ecr.secret", "ecr.expiry"}
        assert value(ecr, "sbops_ecr_pull_secret_expiry_timestamp_seconds") is not None
        openmetrics = exporter.get("/probe?module=ecr", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
        assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
        assert openmetrics.text.rstrip().endswith("# EOF")
        raw = exporter.get("/probe?module=ecr", headers={"Accept-Encoding": "gzip"}, stream=True)
        assert raw.headers.get("Content-Encoding") == "gzip"
    assert exporter.proc.returncode == 0, "SIGTERM stops it cleanly"


def test_start_up_errors_are_one_line_and_exit_2(tmp_path):
    env = LabEnv(tmp_path).write()
    bad = tmp_path / "web.yml"
    bad.write_text("basic_auth_users:\n  prometheus: not-a-hash\n")
    proc = env.sbops("exporter", "--web-config", str(bad))
    assert proc.returncode == 2 and f"{bad}:2:" in proc.stderr and "Traceback" not in proc.stderr
    proc = env.sbops("exporter", "--listen", "nowhere")
    assert proc.returncode == 2 and "--listen" in proc.stderr
    with ExporterProc(env) as running:
        proc = env.sbops("exporter", "--listen", f"127.0.0.1:{running.port}")
        assert proc.returncode == 2 and "cannot listen" in proc.stderr


def test_read_only_role_gives_the_same_answers(tmp_path, kube):
    """In-cluster use: a token bound only to deploy/rbac/sbops-doctor.yaml's ClusterRole."""
    from tests.integration.test_rbac import K8S_LAYERS, doctor_rules

    answers = {}
    for name, kubeconfig in (("admin", kube.kubeconfig), ("exporter", kube.token_kubeconfig("exporter", doctor_rules()))):
        env = LabEnv(tmp_path / name).set("kubeconfig", str(kubeconfig)).write()
        with ExporterProc(env) as exporter:
            found = {}
            for layer in K8S_LAYERS:
                found.update(reasons(parse(exporter.scrape(f"/probe?module={layer}"))))
            answers[name] = found
    assert answers["exporter"] == answers["admin"]
    assert not {cid for cid, r in answers["exporter"].items() if r in ("access_denied", "auth_failed")}
    assert {cid for cid, r in answers["admin"].items() if r != "none"} <= set(NOT_HERE), answers["admin"]


def test_layers_limits_what_metrics_runs_and_probe_accepts(tmp_path):
    """What the chart's node agent does (--layers host,nfs,netpath): /metrics runs only those layers, /probe
    refuses the others by name, and a wrong list is a usage error naming --layers."""
    env = LabEnv(tmp_path).write()
    with ExporterProc(env, "--layers", "nfs, host") as exporter:
        families = parse(exporter.scrape("/metrics"))
        checks = set(by_check(families, "sbops_check_success"))
        registry = load_all()
        assert {registry.checks[check].layer for check in checks} == {"host", "nfs"}
        assert {"host.resources", "nfs.server"} <= checks
        refused = exporter.get("/probe?module=mysql")
        assert refused.status_code == 400 and "'mysql' is not served here" in refused.text
        assert "one of host, nfs" in refused.text
        assert exporter.get("/probe?module=host").status_code == 200
        assert 'href="/probe?module=mysql"' not in exporter.get("/").text
    proc = env.sbops("exporter", "--layers", "host,nope")
    assert proc.returncode == 2 and "--layers" in proc.stderr and "Traceback" not in proc.stderr
