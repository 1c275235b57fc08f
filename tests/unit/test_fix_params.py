"""A fix declares the keyword arguments it takes (its signature); `sbops fix` has a flag for each, gives a fix
exactly the ones it declares and refuses a fix-specific flag on any other fix. Probes never see CLI flags."""

import ast
import inspect
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import typer

from sbops.cli import app
from sbops.cli.fix import CONSENT, FLAGS, FixOptions
from sbops.errors import UsageError
from sbops.model import Plan
from sbops.registry import Registry, Risk, keyword_params, load_all

REGISTRY = load_all()
FIXES = sorted(REGISTRY.fixes.values(), key=lambda f: f.name)
OPTION_NAMES = [f.name for f in fields(FixOptions)]
SPECIFIC = [n for n in OPTION_NAMES if n not in CONSENT]
SAMPLE = {"allow_restart": True, "workload": "sb-core", "cert_file": "/c.pem", "key_file": "/k.pem",
          "token_file": "-", "profile": "prod", "region": "eu-west-1", "http_port": 31080, "https_port": 31443}
# RESTARTS_SERVICE fixes that restart whatever the flags say: running them is the consent (README, "Risk tiers").
RESTART_IS_THE_POINT = {"restart-workload", "helm-rollback"}
REPO = Path(__file__).resolve().parents[2]


def fix_command_flags() -> set[str]:
    fix = typer.main.get_command(app).commands["fix"]  # type: ignore[attr-defined]
    return {opt for param in fix.params if param.param_type_name == "option" for opt in param.opts}


def test_flags_and_fix_options_name_the_same_keywords():
    assert set(FLAGS) == set(OPTION_NAMES) == set(SAMPLE)
    assert set(FLAGS.values()) <= fix_command_flags()


@pytest.mark.parametrize("spec", FIXES, ids=lambda f: f.name)
def test_every_keyword_a_fix_declares_has_a_flag(spec):
    assert set(spec.params) <= set(FLAGS), f"fix {spec.name} takes {spec.params}; flags exist for {sorted(FLAGS)}"
    signature = inspect.signature(spec.plan)
    assert tuple(signature.parameters)[1:] == spec.params
    signature.bind(object(), **FixOptions().params_for(spec))  # what the CLI passes binds to the declaration


@pytest.mark.parametrize("name", SPECIFIC)
def test_every_fix_specific_flag_belongs_to_some_fix(name):
    assert any(name in spec.params for spec in FIXES), f"{FLAGS[name]} is accepted by no fix"


@pytest.mark.parametrize("spec", FIXES, ids=lambda f: f.name)
@pytest.mark.parametrize("name", SPECIFIC)
def test_a_fix_specific_flag_reaches_its_fix_and_is_refused_elsewhere(spec, name):
    options = FixOptions(**{name: SAMPLE[name]})
    if name in spec.params:
        assert options.params_for(spec)[name] == SAMPLE[name]
    else:
        with pytest.raises(UsageError, match=f"^{FLAGS[name]}: does not apply to fix {spec.name}$"):
            options.params_for(spec)


@pytest.mark.parametrize("spec", FIXES, ids=lambda f: f.name)
def test_restart_consent_is_given_only_to_fixes_that_take_it(spec):
    params = FixOptions(allow_restart=True).params_for(spec)  # accepted by every fix, as before
    assert params.get("allow_restart") is (True if "allow_restart" in spec.params else None)
    if spec.risk is Risk.RESTARTS_SERVICE and spec.name not in RESTART_IS_THE_POINT:
        assert "allow_restart" in spec.params, f"{spec.name} restarts a service without asking for --restart"
    if "allow_restart" in spec.params:
        assert spec.risk is Risk.RESTARTS_SERVICE


def test_unset_flags_are_passed_as_their_defaults():
    spec = REGISTRY.fixes["istio-nodeports"]
    assert FixOptions().params_for(spec) == {"allow_restart": False, "http_port": None, "https_port": None}
    assert FixOptions().params_for(REGISTRY.fixes["mysql-user"]) == {}


def test_the_registry_reads_keywords_from_the_signature_and_refuses_loose_ones():
    def good(ctx, *, allow_restart: bool = False, workload: str | None = None) -> Plan:
        return Plan()

    def positional(ctx, opts) -> Plan:
        return Plan()

    def no_default(ctx, *, workload: str) -> Plan:
        return Plan()

    def no_ctx(*, workload: str | None = None) -> Plan:
        return Plan()

    assert keyword_params("good", good) == ("allow_restart", "workload")
    assert keyword_params("none", lambda ctx: Plan()) == ()
    for bad in (positional, no_default):
        with pytest.raises(ValueError, match="keyword-only with a default"):
            keyword_params("bad", bad)
    with pytest.raises(ValueError, match="Context as first argument"):
        keyword_params("bad", no_ctx)


def test_fixflow_calls_the_plan_with_the_params(tmp_path):
    from sbops.context import Context
    from sbops.fixflow import EXIT_FIXED, run_fix
    from sbops.registry import Fix
    from sbops.settings import Settings

    seen = []

    def plan(ctx, *, workload: str | None = None) -> Plan:
        seen.append(workload)
        return Plan(nothing_to_do="fine")

    reg = Registry()
    reg.add_fix(Fix("t-fix", "t", (), Risk.SAFE, plan, keyword_params("t-fix", plan)))
    ctx = Context(Settings.load(env={}, flags={"journal": str(tmp_path / "journal.log")}), None)
    assert run_fix(ctx, reg, reg.fixes["t-fix"], yes=True, dry_run=True, params={"workload": "sb-core"}) == EXIT_FIXED
    assert seen == ["sb-core"]
    with pytest.raises(ValueError, match="accepts no region"):
        run_fix(ctx, reg, reg.fixes["t-fix"], yes=True, dry_run=True, params={"region": "x"})


def test_the_cli_refuses_a_flag_the_fix_does_not_take():
    proc = subprocess.run([sys.executable, "-m", "sbops", "fix", "mysql-user", "--dry-run", "--cert", "/c.pem"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip() == "sbops: error: --cert: does not apply to fix mysql-user"


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("path", sorted((REPO / "sbops" / "probes").rglob("*.py")), ids=lambda p: p.name)
def test_probes_never_import_the_cli_registry_or_engine(path):
    upward = ("sbops.cli", "sbops.registry", "sbops.engine", "sbops.fixflow", "sbops.checks", "sbops.fixes")
    found = sorted(m for m in _imported_modules(path) if m.startswith(upward))
    assert found == [], f"{path.relative_to(REPO)} imports {found}"
