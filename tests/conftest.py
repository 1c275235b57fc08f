"""Lab servers as pytest fixtures: each module starts private servers on free ports with temp data dirs."""

import pytest

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


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own hook, which reads the groups into the test ids
def pytest_collection_modifyitems(config, items):  # noqa: ANN001 - pytest's hook signature
    """Under pytest-xdist (`scripts/test` runs two workers with --dist loadgroup), every test on a living
    cluster runs in one worker: the session's cluster is started once, and two clusters (the session's and
    `scripts/lab`'s) never compete for the two cores. Other tests spread over the workers, each with its own
    private lab servers (free ports, temp dirs, netns names of its own)."""
    for item in items:
        uses_living = "living_cluster" in getattr(item, "fixturenames", ())
        if uses_living or item.module.__name__.rsplit(".", 1)[-1] in ("test_lab_stack",):
            item.add_marker(pytest.mark.xdist_group("living"))
