"""The local lab: the data servers of a StackBill host, private and seeded as the installer would leave them.

    python -m tests.lab.stack up        start (or reuse) MariaDB, MongoDB-wire, RabbitMQ, and the living cluster
                                        (tests/lab/living.py: a node running StackBill's pods, NFS, the ECR stand-in)
    python -m tests.lab.stack doctor    `up`, then `sbops doctor` against the lab (extra args pass through)
    python -m tests.lab.stack env       print the exports that point a shell's sbops at the lab
    python -m tests.lab.stack down      stop every lab server (add --purge to delete the lab's data)

State lives in <repo>/.lab (or $SBOPS_LAB_DIR). The servers listen on free ports on this machine only;
sbops reaches them through the lab's credentials file and config, like a StackBill host's.
"""

from __future__ import annotations

import os
import secrets
import shutil
import string
import sys
from pathlib import Path

from sbops import credentials as creds_mod
from sbops.context import primary_ip
from tests.lab.env import REPO, LabEnv

LAB = Path(os.environ.get("SBOPS_LAB_DIR", REPO / ".lab"))


def _password() -> str:
    """16 characters from [A-Za-z0-9], as the installer makes them."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(16))


def _passwords() -> dict[str, str]:
    """Reuse the lab's credentials file when there is one, so a second `up` keeps every password."""
    path = LAB / "stackbill-credentials.txt"
    if path.exists():
        creds = creds_mod.load(path)
        found = {name: getattr(creds, name).password for name in ("mysql", "mongodb", "rabbitmq")}
        if all(found.values()):
            return {name: secret.reveal() for name, secret in found.items()}
    return {name: _password() for name in ("mysql", "mongodb", "rabbitmq")}


def up() -> LabEnv:
    from tests.lab.mariadb import MariaDB
    from tests.lab.mongodb import MongoLab
    from tests.lab.rabbitmq import RabbitMQ

    LAB.mkdir(parents=True, exist_ok=True)
    passwords = _passwords()
    env = LabEnv(LAB)
    env.set("server_ip", primary_ip())

    say("MariaDB")
    mysql = MariaDB.load(LAB / "mariadb") if (LAB / "mariadb" / "lab.json").exists() else MariaDB(LAB / "mariadb").prepare()
    if not mysql.running:
        mysql.start()
    mysql.seed_stackbill(passwords["mysql"])
    env.service("mysql", port=mysql.port, password=passwords["mysql"])
    env.set("mysql.admin_socket", str(mysql.socket)).set("mysql.config_dir", str(mysql.conf_d))
    env.set("mysql.restart_command", str(mysql.restart_script))

    say("MongoDB (SecantusDB)")
    mongo = MongoLab(LAB / "mongodb")
    if not (mongo.running and mongo.read_conf().get("security", {}).get("authorization") == "enabled"):
        mongo.seed_stackbill(passwords["mongodb"])
    env.service("mongodb", port=mongo.port, password=passwords["mongodb"])
    env.set("mongodb.config_file", str(mongo.conf_path)).set("mongodb.restart_command", mongo.restart_command())

    say("RabbitMQ (about 10 s)")
    rabbit = RabbitMQ.load(LAB / "rabbitmq") if (LAB / "rabbitmq" / "lab.json").exists() else RabbitMQ(LAB / "rabbitmq", bind="0.0.0.0")
    if not rabbit.running:
        rabbit.start()
    rabbit.seed_stackbill(passwords["rabbitmq"])
    env.service("rabbitmq", port=rabbit.port, password=passwords["rabbitmq"],
                management=f"http://127.0.0.1:{rabbit.management_port}")
    env.set("rabbitmq.management_port", rabbit.management_port)
    env.set("rabbitmq.ctl_command", rabbit.ctl_command).set("rabbitmq.plugins_command", rabbit.plugins_command)

    say("the living cluster: kube-apiserver + etcd, a node (containerd, kubelet, kube-proxy), the ECR stand-in, "
        "StackBill by Helm (about a minute; the first run builds the Kubernetes binaries, about 7 minutes)")
    from tests.lab import living

    stop_pid_file(LAB / "nfs" / "listener.pid")  # an older lab's NFS listener and API-only cluster
    from tests.lab.kube import stop_detached as stop_kube

    stop_kube(LAB / "kube")
    stop_pid_file(LAB / "portal" / "pid")
    cluster = living.start_detached(LAB / "living", living.services_of({
        "mysql": mysql, "mongodb": mongo, "rabbitmq": rabbit, "passwords": passwords}))
    # What a StackBill host's files say, for this cluster: the servers at the address pods reach them by.
    env.set("server_ip", cluster.node_ip)
    env.service("mysql", host=cluster.host_ip, port=mysql.port, password=passwords["mysql"])
    env.service("mongodb", host=cluster.host_ip, port=mongo.port, password=passwords["mongodb"])
    env.service("rabbitmq", host=cluster.host_ip, port=rabbit.port, password=passwords["rabbitmq"],
                management=f"http://127.0.0.1:{rabbit.management_port}")
    env.set("kubeconfig", str(cluster.kubeconfig))
    env.set("netpath.containerd_state", str(cluster.node.containerd_state))
    # the node's kubelet and containerd, for host.kubelet and host.containerd
    env.set("host.kubelet_healthz", cluster.node.kubelet_healthz)
    env.set("host.containerd_socket", str(cluster.node.containerd_sock))
    cluster.nfs.configure(env)
    env.nfs_server = cluster.host_ip  # the credentials file's NFS Server, as the installer writes it

    env.set("helm.command", helm_binary())  # for helm-rollback and uninstall, as /usr/local/bin/helm would be
    env.set("journal", str(LAB / "journal.log"))
    env.write()
    return env


def helm_binary() -> str:
    """The cached static Helm 3 (scripts/get-helm prints its path, downloading it the first time)."""
    import subprocess

    proc = subprocess.run([str(REPO / "scripts" / "get-helm")], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise RuntimeError(f"scripts/get-helm failed: {proc.stderr.strip()}")
    return proc.stdout.strip().splitlines()[-1]


def start_portal(root: Path) -> int:
    """A detached tests.lab.https server (reused while its pid lives); returns its port."""
    import subprocess
    import time

    pid_file, port_file = root / "pid", root / "port"
    if pid_file.exists() and port_file.exists() and Path(f"/proc/{pid_file.read_text().strip()}").exists():
        return int(port_file.read_text())
    root.mkdir(parents=True, exist_ok=True)
    port_file.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "tests.lab.https", "serve", str(root)], cwd=REPO,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    pid_file.write_text(str(proc.pid))
    end = time.monotonic() + 20
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > end:
            raise RuntimeError("the lab's HTTPS portal did not start")
        time.sleep(0.05)
    return int(port_file.read_text())


def down(purge: bool = False) -> None:
    from tests.lab.mariadb import MariaDB
    from tests.lab.mongodb import MongoLab
    from tests.lab.rabbitmq import RabbitMQ

    if (LAB / "mariadb" / "lab.json").exists():
        MariaDB.load(LAB / "mariadb").stop()
    if (LAB / "mongodb" / "mongod.conf").exists():
        MongoLab(LAB / "mongodb").stop()
    if (LAB / "rabbitmq" / "lab.json").exists():
        RabbitMQ.load(LAB / "rabbitmq").stop()
    stop_pid_file(LAB / "nfs" / "listener.pid")
    stop_pid_file(LAB / "portal" / "pid")
    from tests.lab.kube import stop_detached as stop_kube
    from tests.lab.living import stop_detached as stop_living

    stop_kube(LAB / "kube")
    stop_living(LAB / "living")
    if purge and LAB.exists():
        shutil.rmtree(LAB)


def stop_pid_file(pid_file: Path) -> None:
    """Stop the process a pid file names (gone already is fine), then remove the file."""
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text().strip()), 15)
        except (ProcessLookupError, ValueError):
            pass
        pid_file.unlink()


def say(what: str) -> None:
    print(f"lab: starting {what}", file=sys.stderr, flush=True)


def exports() -> str:
    return (f"export SBOPS_CONFIG={LAB / 'config.yaml'}\n"
            f"export SBOPS_CREDENTIALS={LAB / 'stackbill-credentials.txt'}\n")


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "doctor"
    if command == "up":
        up()
        print(exports(), end="")
        return 0
    if command == "down":
        down(purge="--purge" in argv)
        return 0
    if command == "env":
        print(exports(), end="")
        return 0
    if command == "doctor":
        env = up()
        print("lab: ready; running sbops doctor (the lab stays up: `scripts/lab down` stops it)\n", file=sys.stderr)
        sbops = Path(sys.executable).with_name("sbops")
        os.execv(str(sbops), [str(sbops), "doctor", *argv[1:], "--config", str(env.config_path),
                              "--credentials", str(env.credentials_path)])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
