"""Pure decisions of a credential rotation: which values key holds which password, the values document that
changes only those keys, which Deployments read the release's Secrets, which checks prove the result, the
credentials a successful rotation leaves, and the plan as people read it. No I/O here."""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Iterable, Mapping, Sequence

import yaml

from sbops.credentials import Credentials
from sbops.secret import Secret

SERVICES = ("mysql", "mongodb", "rabbitmq")
# Where the StackBill chart takes each password from (sbops/install/kubernetes.py chart_values: global.<key>)
VALUES_KEY = {"mysql": "mysql", "mongodb": "mongo", "rabbitmq": "rabbitmq"}
# What proves a rotation: the service's own login check with the new password, and the portal's configuration
# route, which answers only while sb-core (restarted with the new password) can use its database.
AUTH_CHECK = {"mysql": "mysql.auth", "mongodb": "mongodb.auth", "rabbitmq": "rabbitmq.auth"}
APP_CHECK = "app.cloudconfiguration"
STEPS = ("generate", "set-on-server", "update-release", "restart-workloads", "verify", "write-credentials")


def choose_services(asked: Sequence[str]) -> tuple[str, ...]:
    """The services to rotate in a fixed order (all three when none is named); ValueError names a bad one."""
    for name in asked:
        if name not in SERVICES:
            raise ValueError(f"unknown service '{name}' (known: {', '.join(SERVICES)})")
    return tuple(s for s in SERVICES if not asked or s in asked)


def values_patch(passwords: Mapping[str, Secret]) -> dict[str, Any]:
    """The values document given to `helm upgrade --reuse-values`: only the rotated passwords."""
    return {"global": {VALUES_KEY[name]: {"password": secret.reveal()} for name, secret in passwords.items()}}


def values_document(passwords: Mapping[str, Secret]) -> Secret:
    """values_patch as the YAML helm reads on standard input (a Secret: it must never be printed)."""
    return Secret(yaml.safe_dump(values_patch(passwords), sort_keys=True))


def release_password(config: Mapping[str, Any], service: str) -> str | None:
    """The password the release's user-supplied values hold for `service` (None when it holds none)."""
    node = ((config or {}).get("global") or {}).get(VALUES_KEY[service]) or {}
    value = node.get("password") if isinstance(node, dict) else None
    return None if value is None else str(value)


def manifest_objects(manifest: str) -> list[dict[str, Any]]:
    """The objects of a release's rendered manifest (documents that are not mappings are left out)."""
    try:
        return [doc for doc in yaml.safe_load_all(manifest or "") if isinstance(doc, dict)]
    except yaml.YAMLError as exc:
        raise ValueError(f"the release's manifest is not YAML: {exc}") from None


def _secret_refs(pod_spec: Mapping[str, Any]) -> set[str]:
    names: set[str] = set()
    for container in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        for env in container.get("env") or []:
            ref = ((env.get("valueFrom") or {}).get("secretKeyRef") or {}).get("name")
            if ref:
                names.add(ref)
        for source in container.get("envFrom") or []:
            ref = (source.get("secretRef") or {}).get("name")
            if ref:
                names.add(ref)
    for volume in pod_spec.get("volumes") or []:
        ref = (volume.get("secret") or {}).get("secretName")
        if ref:
            names.add(ref)
    return names


def workloads_to_restart(objects: Iterable[Mapping[str, Any]]) -> list[str]:
    """Deployments of the release whose pods read one of the release's own Secrets (env, envFrom or a volume):
    a changed Secret reaches a running container only through a new pod. When the chart puts the passwords
    straight into the pod template instead, `helm upgrade` rolls those Deployments by itself, and restarting
    every Deployment of the release is the safe answer."""
    objects = list(objects)
    secrets = {(o.get("metadata") or {}).get("name") for o in objects if o.get("kind") == "Secret"}
    deployments = [o for o in objects if o.get("kind") == "Deployment"]
    using = sorted({(d.get("metadata") or {}).get("name", "") for d in deployments
                    if _secret_refs(((d.get("spec") or {}).get("template") or {}).get("spec") or {}) & secrets})
    if using:
        return using
    return sorted((d.get("metadata") or {}).get("name", "") for d in deployments)


def verify_checks(services: Sequence[str]) -> tuple[str, ...]:
    return (*(AUTH_CHECK[s] for s in services), APP_CHECK)


def judge_verification(statuses: Mapping[str, str], wanted: Sequence[str]) -> list[str]:
    """The checks of `wanted` that did not pass (status ok or warn); a check that did not run fails too."""
    return [f"{cid}: {statuses.get(cid, 'did not run')}" for cid in wanted if statuses.get(cid) not in ("ok", "warn")]


def with_passwords(creds: Credentials, passwords: Mapping[str, Secret]) -> Credentials:
    """The credentials file with the rotated passwords (every other line kept as it was)."""
    for name, secret in passwords.items():
        creds = replace(creds, **{name: replace(getattr(creds, name), password=secret)})
    return creds


def describe(services: Sequence[str], *, release: str, namespace: str, workloads: Sequence[str],
             credentials_path: str, helm_argv: str) -> list[tuple[str, str]]:
    """(step, what it does) in order: the plan --dry-run prints and the journal's step names."""
    names = ", ".join(s.upper() for s in services)
    accounts = []
    for s in services:
        accounts.append({"mysql": "ALTER USER stackbill@'%' and stackbill@'localhost' (as the admin)",
                         "mongodb": "updateUser stackbill in admin (as the admin)",
                         "rabbitmq": "change stackbill's password (management API or rabbitmqctl)"}[s])
    keys = ", ".join(f"global.{VALUES_KEY[s]}.password" for s in services)
    return [
        ("generate", f"generate a new {names} password (16 characters from [A-Za-z0-9], as the installer does)"),
        ("set-on-server", "; ".join(accounts)),
        ("update-release", f"helm upgrade release {release} in {namespace} with --reuse-values, only {keys} "
                           f"changed; the values go on standard input, never on the command line: $ {helm_argv}"),
        ("restart-workloads", "rollout-restart " + (", ".join(workloads) or "(no Deployment found)")
         + " and wait until their new pods are Ready"),
        ("verify", "run " + ", ".join(verify_checks(services)) + " with the new password"),
        ("write-credentials", f"write {credentials_path} atomically (0600), the previous file kept as "
                              f"{credentials_path}.bak (0600)"),
    ]


def undo_steps(done: Sequence[str]) -> list[str]:
    """What to undo after a failure, in order: the server and the release get the old password back, then the
    workloads restart with it (their pods may already hold the new one). Generating and verifying change
    nothing, and the credentials file is written last, so it never needs undoing."""
    out = [step for step in ("set-on-server", "update-release") if step in done]
    if "update-release" in done:
        out.append("restart-workloads")
    return out


def chart_files(chart: Mapping[str, Any]) -> dict[str, bytes]:
    """The chart a release record carries (Helm stores metadata, templates, default values and files in it),
    as the files of a chart directory: `helm upgrade --reuse-values` then re-renders exactly the deployed
    chart, without the operator having to find the chart it was installed from."""
    import base64

    meta = chart.get("metadata") or {}
    if not meta.get("name") or not meta.get("version"):
        raise ValueError("the release record holds no chart metadata (name, version)")
    files: dict[str, bytes] = {"Chart.yaml": yaml.safe_dump(meta, sort_keys=False).encode(),
                               "values.yaml": yaml.safe_dump(chart.get("values") or {}, sort_keys=False).encode()}
    for item in [*(chart.get("templates") or []), *(chart.get("files") or [])]:
        name = str(item.get("name") or "")
        if not name or name.startswith("/") or ".." in name.split("/"):
            raise ValueError(f"the release record's chart holds an unsafe file name {name!r}")
        files[name] = base64.b64decode(item.get("data") or "")
    if chart.get("schema"):
        files["values.schema.json"] = base64.b64decode(chart["schema"])
    return files


def helm_argv(helm: str, release: str, chart_dir: str, namespace: str, kubeconfig: str) -> list[str]:
    """`helm upgrade --reuse-values` of the deployed chart with the changed passwords read from standard input
    (`-f -`): never --set, whose values every user sees in `ps`. No --wait: the rotation waits for the
    restarted pods itself, by their Ready condition."""
    return [helm, "upgrade", release, chart_dir, "-n", namespace, "--reuse-values", "-f", "-",
            *(["--kubeconfig", kubeconfig] if kubeconfig else [])]
