"""Lab servers as pytest fixtures: each module starts private servers on free ports with temp data dirs."""

pytest_plugins = [
    "tests.lab.mariadb",
    "tests.lab.mongodb",
    "tests.lab.rabbitmq",
    "tests.lab.nfs",
    "tests.lab.kube",
    "tests.lab.https",
    "tests.lab.helm",
    "tests.lab.registry",
    "tests.lab.living",
    "tests.lab.podnet",
    "tests.lab.cloudstack",
]
