"""The registry of checks and fixes. Layer modules declare theirs with the @check and @fix decorators."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import pkgutil
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Callable

from sbops.errors import UsageError
from sbops.model import Plan, Result, Severity

if TYPE_CHECKING:
    from sbops.context import Context

# Layer names are part of the interface (CLI --layer, JSON, metrics), in the order they are reported.
LAYERS = ("host", "mysql", "mongodb", "rabbitmq", "nfs", "kubernetes", "ecr", "tls", "istio", "workloads", "helm",
          "netpath", "app", "cloudstack")


# The client libraries each layer's probes use. The engine imports them once, in one thread, before the
# checks start: concurrent first imports of the same package from several threads can observe a partially
# initialised module (ImportError "cannot import name ... partially initialized module"), and serial
# imports are also faster than threads contending for the import lock and the GIL.
KUBE_MODULES = ("urllib3", "yaml", "sbops.kuberest")
CLIENT_MODULES: dict[str, tuple[str, ...]] = {
    "host": ("psutil",),
    "mysql": ("pymysql",),
    "mongodb": ("pymongo", "psutil"),
    "rabbitmq": ("pika", "requests"),
    "nfs": ("psutil",),
    # the Kubernetes layers use sbops's own REST client (sbops.kuberest on urllib3), never the kubernetes
    # package: importing it costs about 0.2 s (its typed models are built with pydantic)
    **{layer: KUBE_MODULES for layer in ("kubernetes", "ecr", "istio", "workloads", "helm")},
    "tls": (*KUBE_MODULES, "cryptography.x509"),
    # the parent only reads the API and containerd's files; the clients run in the child it starts
    "netpath": KUBE_MODULES,
    "app": ("ssl", "http.client"),
    "cloudstack": ("requests", "cs"),
}


# What sbops itself needs to run a layer's checks: the credentials file's password for the data services, a
# kubeconfig for the cluster's layers. Without it such a check fails for want of sbops's own access, which
# says nothing about the portal, so correlation never names it as a likely cause.
NEEDS_PASSWORD = ("mysql", "mongodb", "rabbitmq")
NEEDS_KUBECONFIG = ("kubernetes", "ecr", "tls", "istio", "workloads", "helm", "netpath")


class Risk(str, Enum):
    SAFE = "safe"  # changes settings or objects; nothing restarts, no data changes
    RESTARTS_SERVICE = "restarts-service"
    CHANGES_DATA = "changes-data"


@dataclass(frozen=True)
class Check:
    id: str
    layer: str
    title: str
    severity: Severity
    probe: Callable[["Context"], Result]
    requires: tuple[str, ...] = ()
    fix: str | None = None
    no_fix: str = ""  # why there is no automatic fix, when fix is None
    # How long a long-running caller (the exporter) may reuse a result instead of probing again. Set it on
    # checks whose probe is costly or rate-limited (anything calling AWS must); 0 = probe on every run.
    cache_seconds: float = 0.0
    # Checks whose results may explain this check's failure. The engine runs them in the same run (when it is
    # given the registry) and its post-pass attaches the likely cause (sbops.correlate); never run from a probe.
    relates: tuple[str, ...] = ()

    @property
    def runbook(self) -> str:
        return f"runbooks/{self.id}.md"


@dataclass(frozen=True)
class Fix:
    name: str
    title: str
    repairs: tuple[str, ...]
    risk: Risk
    plan: Callable[..., Plan]  # plan(ctx, **params)
    params: tuple[str, ...] = ()  # the keyword arguments plan accepts (the CLI turns flags into them)


class Registry:
    def __init__(self) -> None:
        self.checks: dict[str, Check] = {}
        self.fixes: dict[str, Fix] = {}

    def add_check(self, item: Check) -> None:
        if item.id in self.checks:
            raise ValueError(f"check {item.id} registered twice")
        if item.layer not in LAYERS:
            raise ValueError(f"check {item.id}: unknown layer {item.layer}")
        self.checks[item.id] = item

    def add_fix(self, item: Fix) -> None:
        if item.name in self.fixes:
            raise ValueError(f"fix {item.name} registered twice")
        self.fixes[item.name] = item

    def ordered(self) -> list[Check]:
        return sorted(self.checks.values(), key=lambda c: (LAYERS.index(c.layer), list(self.checks).index(c.id)))

    def select(self, layers: list[str] | None = None, patterns: list[str] | None = None) -> list[Check]:
        """Checks in the given layers and matching any of the id globs; unknown names are usage errors."""
        for layer in layers or []:
            if layer not in LAYERS:
                raise UsageError(f"--layer: unknown layer '{layer}' (known: {', '.join(LAYERS)})")
        for pattern in patterns or []:
            if not any(fnmatch.fnmatchcase(cid, pattern) for cid in self.checks):
                raise UsageError(f"--check: no check matches '{pattern}' (see `sbops doctor --list`)")
        chosen = []
        for item in self.ordered():
            if layers and item.layer not in layers:
                continue
            if patterns and not any(fnmatch.fnmatchcase(item.id, p) for p in patterns):
                continue
            chosen.append(item)
        return chosen

    def with_related(self, checks: list[Check]) -> list[Check]:
        """`checks` plus the checks they relate to, in report order (each once)."""
        wanted = {c.id for c in checks}
        wanted.update(r for c in checks for r in c.relates if r in self.checks)
        extra = [c for c in checks if c.id not in self.checks]  # checks of another registry (tests)
        return extra + [c for c in self.ordered() if c.id in wanted]

    def fix_for(self, name: str) -> Fix:
        if name not in self.fixes:
            raise UsageError(f"unknown fix '{name}' (see `sbops fix --list`)")
        return self.fixes[name]


REGISTRY = Registry()


def check(
    id: str,
    *,
    layer: str,
    title: str,
    severity: Severity,
    requires: tuple[str, ...] = (),
    fix: str | None = None,
    no_fix: str = "",
    cache_seconds: float = 0.0,
    relates: tuple[str, ...] = (),
) -> Callable[[Callable[["Context"], Result]], Callable[["Context"], Result]]:
    def register(probe: Callable[["Context"], Result]) -> Callable[["Context"], Result]:
        REGISTRY.add_check(Check(id, layer, title, severity, probe, tuple(requires), fix, no_fix, cache_seconds,
                                 tuple(relates)))
        return probe

    return register


def keyword_params(name: str, plan: Callable[..., Plan]) -> tuple[str, ...]:
    """The keyword arguments a fix declaration accepts, read from its signature: `def plan(ctx, *,
    allow_restart: bool = False)`. Each has a default, so a fix runs with none of them given."""
    parameters = list(inspect.signature(plan).parameters.values())
    if not parameters or parameters[0].kind not in (inspect.Parameter.POSITIONAL_ONLY,
                                                    inspect.Parameter.POSITIONAL_OR_KEYWORD):
        raise ValueError(f"fix {name}: its plan takes the Context as first argument")
    for item in parameters[1:]:
        if item.kind is not inspect.Parameter.KEYWORD_ONLY or item.default is inspect.Parameter.empty:
            raise ValueError(f"fix {name}: parameter {item.name} must be keyword-only with a default (after `*`)")
    return tuple(item.name for item in parameters[1:])


def fix(
    name: str, *, title: str, repairs: tuple[str, ...], risk: Risk
) -> Callable[[Callable[..., Plan]], Callable[..., Plan]]:
    def register(plan: Callable[..., Plan]) -> Callable[..., Plan]:
        REGISTRY.add_fix(Fix(name, title, tuple(repairs), risk, plan, keyword_params(name, plan)))
        return plan

    return register


_loaded = False


def load_all() -> Registry:
    """Import every module of sbops.checks and sbops.fixes so they register (cheap: no heavy imports)."""
    global _loaded
    if not _loaded:
        for package_name in ("sbops.checks", "sbops.fixes"):
            package = importlib.import_module(package_name)
            for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
                importlib.import_module(f"{package_name}.{info.name}")
        _loaded = True
    return REGISTRY
