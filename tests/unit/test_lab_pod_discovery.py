"""tests/lab/prometheus.py's pod_targets: the target groups the lab's HTTP discovery hands Prometheus, as
kubernetes_sd_configs role: pod would make them (Debian's Prometheus has no Kubernetes discovery). A table."""

from __future__ import annotations

import pytest

from tests.lab.prometheus import pod_targets


def pod(name: str, ip: str = "10.42.0.7", ports: tuple[int, ...] = (29100,), annotations: dict | None = None,
        ready: bool = True) -> dict:
    return {"metadata": {"name": name, "namespace": "sbops", "uid": "u-1",
                         "labels": {"app.kubernetes.io/name": "sbops"}, "annotations": annotations or {}},
            "spec": {"nodeName": "stackbill-node", "containers": [
                {"name": "exporter", "ports": [{"name": "metrics", "containerPort": p, "protocol": "TCP"} for p in ports]}]},
            "status": {"podIP": ip, "hostIP": "10.99.1.2", "phase": "Running",
                       "conditions": [{"type": "Ready", "status": "True" if ready else "False"}]}}


@pytest.mark.parametrize(("pods", "targets"), [
    ([pod("a")], [["10.42.0.7:29100"]]),                        # one target per declared port
    ([pod("a", ports=(1, 2))], [["10.42.0.7:1"], ["10.42.0.7:2"]]),
    ([pod("a", ports=())], [["10.42.0.7"]]),                    # no port: the pod's address alone
    ([pod("a", ip="")], []),                                    # no IP yet: not a target
    ([pod("a"), pod("b", ip="10.99.1.2", ports=(29110,))], [["10.42.0.7:29100"], ["10.99.1.2:29110"]]),
])
def test_targets(pods: list, targets: list) -> None:
    assert [g["targets"] for g in pod_targets(pods)] == targets


def test_labels_are_role_pods_meta_labels() -> None:
    [group] = pod_targets([pod("a", annotations={"prometheus.io/scrape": "true", "prometheus.io/port": "29100"},
                               ready=False)])
    labels = group["labels"]
    assert labels["__meta_kubernetes_pod_annotation_prometheus_io_scrape"] == "true"
    assert labels["__meta_kubernetes_pod_annotationpresent_prometheus_io_port"] == "true"
    assert labels["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == "sbops"
    assert (labels["__meta_kubernetes_namespace"], labels["__meta_kubernetes_pod_name"],
            labels["__meta_kubernetes_pod_node_name"]) == ("sbops", "a", "stackbill-node")
    assert labels["__meta_kubernetes_pod_ready"] == "false"
    assert labels["__meta_kubernetes_pod_container_port_number"] == "29100"
    assert all(isinstance(v, str) for v in labels.values())  # Prometheus refuses other label values
