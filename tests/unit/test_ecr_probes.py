"""Pure parts of sbops.probes.ecr from tables: the token decoder, dockerconfigjson, judgements, stuck pods."""

from __future__ import annotations

import base64
import io
import json
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest

from sbops.model import Reason, Status
from sbops.probes import ecr as e

NOW = datetime(2026, 11, 26, 12, 0, tzinfo=timezone.utc)
REGISTRY = "730335576030.dkr.ecr.ap-south-1.amazonaws.com"


def b64(data: str | bytes) -> str:
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


def password(expiration: object) -> str:
    """What `aws ecr get-login-password` prints: base64 of the JSON document."""
    return b64(json.dumps({"payload": "p", "datakey": "d", "version": "2", "type": "DATA_KEY", "expiration": expiration}))


def token(expiration: object) -> str:
    """The authorization token: base64("AWS:" + password)."""
    return b64("AWS:" + password(expiration))


TS = int((NOW + timedelta(hours=11)).timestamp())


@pytest.mark.parametrize("value, expected", [
    (token(TS), NOW + timedelta(hours=11)),
    (password(TS), NOW + timedelta(hours=11)),  # the password alone (get-login-password output)
    (token(str(TS)), NOW + timedelta(hours=11)),  # expiration as a string
    (token(TS).rstrip("="), NOW + timedelta(hours=11)),  # padding stripped
    (token(float(TS)), NOW + timedelta(hours=11)),
    ("", None),
    ("garbage!!", None),
    ("not base64 at all ~~~", None),
    (b64("AWS:not-base64-json"), None),
    (b64("AWS:" + b64("[1, 2]")), None),  # JSON but not an object
    (b64("AWS:" + b64(json.dumps({"payload": "x"}))), None),  # no expiration
    (token("soon"), None),
    (token(None), None),
    (token(True), None),
    (token(10 ** 20), None),  # out of range
    (b64(b"AWS:\xff\xfe"), None),
    (b64("123456789012-auth-token"), None),  # moto's password
    (b64("AWS:123456789012-auth-token"), None),  # moto's token
])
def test_token_expiry(value: str, expected: datetime | None) -> None:
    assert e.token_expiry(value) == expected
    if expected is not None:
        assert e.token_expiry(value).tzinfo is not None


@pytest.mark.parametrize("value, expected", [
    (b64("AWS:secretpart"), "secretpart"),
    ("secretpart", "secretpart"),
    (b64("USER:x"), b64("USER:x")),
    (" " + b64("AWS:abc") + "\n", "abc"),
])
def test_split_token(value: str, expected: str) -> None:
    assert e.split_token(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("2026-11-26T14:00:00Z", datetime(2026, 11, 26, 14, tzinfo=timezone.utc)),
    ("2026-11-26T14:00:00+00:00", datetime(2026, 11, 26, 14, tzinfo=timezone.utc)),
    ("2026-11-26T19:30:00+05:30", datetime(2026, 11, 26, 14, tzinfo=timezone.utc)),
    ("2026-11-26T14:00:00", datetime(2026, 11, 26, 14, tzinfo=timezone.utc)),
    ("tomorrow", None),
    ("", None),
    (None, None),
])
def test_parse_annotation(value: str | None, expected: datetime | None) -> None:
    assert e.parse_annotation(value) == expected


def test_annotation_round_trip() -> None:
    assert e.format_annotation(NOW) == "2026-11-26T12:00:00Z"
    assert e.parse_annotation(e.format_annotation(NOW)) == NOW


@pytest.mark.parametrize("key, host", [
    (REGISTRY, REGISTRY),
    (f"https://{REGISTRY}", REGISTRY),
    (f"https://{REGISTRY}/v2/", REGISTRY),
    (REGISTRY.upper(), REGISTRY),
])
def test_registry_host(key: str, host: str) -> None:
    assert e.registry_host(key) == host


def config_for(registry: str = REGISTRY, pw: str = "pw", **entry: str) -> str:
    return json.dumps({"auths": {registry: entry or {"username": "AWS", "password": pw, "auth": b64("AWS:" + pw)}}})


def test_dockerconfig_round_trip() -> None:
    text = e.dockerconfig(REGISTRY, "abc")
    auths = e.parse_dockerconfig(text)
    entry = e.auth_entry(auths, f"https://{REGISTRY}")
    assert entry["username"] == "AWS" and e.entry_password(entry) == "abc"
    assert base64.b64decode(entry["auth"]) == b"AWS:abc"


@pytest.mark.parametrize("entry, pw", [
    ({"password": "x"}, "x"),
    ({"auth": b64("AWS:y")}, "y"),
    ({"auth": "!!"}, ""),
    ({"auth": b64("nocolon")}, ""),
    ({}, ""),
])
def test_entry_password(entry: dict, pw: str) -> None:
    assert e.entry_password(entry) == pw


@pytest.mark.parametrize("text", ["", "{", "[]", '{"auths": []}', '{"credHelpers": {}}'])
def test_parse_dockerconfig_garbage(text: str) -> None:
    assert e.parse_dockerconfig(text) is None


def state(**kw) -> e.SecretState:
    base = dict(name="awscred", namespace="sb-apps", exists=True, type=e.DOCKERCONFIGJSON, config=config_for())
    base.update(kw)
    return e.SecretState(**base)


GOOD = [e.Workload("Deployment", "sb-core", ("awscred",)), e.Workload("Deployment", "sb-ui", ("other", "awscred"))]


@pytest.mark.parametrize("st, workloads, status, reason, code", [
    (state(), GOOD, Status.OK, Reason.NONE, "SB6210"),
    (state(), [], Status.OK, Reason.NONE, "SB6210"),
    (state(exists=False, type="", config=None), GOOD, Status.FAIL, Reason.MISSING, "SB6211"),
    (state(type="Opaque"), GOOD, Status.FAIL, Reason.MISCONFIGURED, "SB6212"),
    (state(type="kubernetes.io/dockercfg"), GOOD, Status.FAIL, Reason.MISCONFIGURED, "SB6212"),
    (state(config="not json"), GOOD, Status.FAIL, Reason.MISCONFIGURED, "SB6213"),
    (state(config=None), GOOD, Status.FAIL, Reason.MISCONFIGURED, "SB6213"),
    (state(config=config_for("docker.io")), GOOD, Status.FAIL, Reason.MISCONFIGURED, "SB6214"),
    (state(config=config_for(f"https://{REGISTRY}")), GOOD, Status.OK, Reason.NONE, "SB6210"),
    (state(), GOOD + [e.Workload("Deployment", "sb-help", ())], Status.FAIL, Reason.MISCONFIGURED, "SB6215"),
])
def test_judge_secret(st, workloads, status, reason, code) -> None:
    result = e.judge_secret(st, REGISTRY, workloads)
    assert (result.code, result.status, result.reason) == (code, status, reason)
    assert "pw" not in json.dumps(result.details) and "pw" not in json.dumps(result.args)
    assert "sbops fix" not in result.summary


def test_judge_secret_names_workloads_without_pull_secret() -> None:
    result = e.judge_secret(state(), REGISTRY, GOOD + [e.Workload("Deployment", "sb-help", ("x",))])
    assert result.details["without_pull_secret"] == ["Deployment/sb-help"]


def annotated(when: str) -> dict[str, str]:
    return {e.EXPIRY_ANNOTATION: when}


@pytest.mark.parametrize("st, status, reason, code, expires", [
    (state(config=config_for(pw=password(TS))), Status.OK, Reason.NONE, "SB6220", NOW + timedelta(hours=11)),
    (state(config=config_for(pw=token(TS))), Status.OK, Reason.NONE, "SB6220", NOW + timedelta(hours=11)),
    (state(config=config_for(pw=token(int((NOW + timedelta(hours=1)).timestamp())))), Status.WARN, Reason.EXPIRING, "SB6223",
     NOW + timedelta(hours=1)),
    (state(config=config_for(pw=token(int((NOW - timedelta(hours=1)).timestamp())))), Status.FAIL, Reason.EXPIRED, "SB6222",
     NOW - timedelta(hours=1)),
    (state(config=config_for(pw=token(int(NOW.timestamp())))), Status.FAIL, Reason.EXPIRED, "SB6222", NOW),
    # no expiry in the token: sbops's annotation
    (state(annotations=annotated("2026-11-26T20:00:00Z")), Status.OK, Reason.NONE, "SB6220", datetime(2026, 11, 26, 20, tzinfo=timezone.utc)),
    (state(annotations=annotated("2026-11-26T13:00:00Z")), Status.WARN, Reason.EXPIRING, "SB6223", datetime(2026, 11, 26, 13, tzinfo=timezone.utc)),
    (state(annotations=annotated("2015-01-01T00:00:00Z")), Status.FAIL, Reason.EXPIRED, "SB6222", datetime(2015, 1, 1, tzinfo=timezone.utc)),
    # the token wins over a stale annotation
    (state(config=config_for(pw=token(TS)), annotations=annotated("2015-01-01T00:00:00Z")), Status.OK, Reason.NONE, "SB6220",
     NOW + timedelta(hours=11)),
    # cannot tell
    (state(), Status.WARN, Reason.MISCONFIGURED, "SB6221", None),
    (state(config=config_for(pw="garbage")), Status.WARN, Reason.MISCONFIGURED, "SB6221", None),
    (state(annotations=annotated("garbage")), Status.WARN, Reason.MISCONFIGURED, "SB6221", None),
    (state(config="{"), Status.WARN, Reason.MISCONFIGURED, "SB6221", None),
])
def test_judge_expiry(st, status, reason, code, expires) -> None:
    result = e.judge_expiry(st, REGISTRY, NOW, 2.0)
    assert (result.code, result.status, result.reason) == (code, status, reason)
    assert result.expires_at == expires
    if expires is not None:
        assert result.expires_at.tzinfo is not None


def pod(name: str, *waiting: str, init: str = "") -> dict:
    statuses = [{"name": f"c{i}", "state": {"waiting": {"reason": w}} if w else {"running": {}}} for i, w in enumerate(waiting)]
    status = {"containerStatuses": statuses}
    if init:
        status["initContainerStatuses"] = [{"name": "init", "state": {"waiting": {"reason": init}}}]
    return {"metadata": {"name": name}, "status": status}


def test_stuck_pods() -> None:
    pods = [pod("a", "ImagePullBackOff"), pod("b", "", "ErrImagePull"), pod("c", ""), pod("d", "CrashLoopBackOff"),
            pod("e", init="ImagePullBackOff"), {"metadata": {"name": "f"}, "status": {}}, pod("g", "ContainerCreating")]
    assert e.stuck_pods(pods) == ["a", "b", "e"]


@pytest.mark.parametrize("text, pw, expires", [
    (token(TS), password(TS), NOW + timedelta(hours=11)),
    (password(TS) + "\n", password(TS), NOW + timedelta(hours=11)),
    (b64("AWS:opaque"), "opaque", None),
])
def test_token_from_text(text: str, pw: str, expires) -> None:
    t = e.token_from_text(text, "test")
    assert t.password.reveal() == pw and t.expires_at == expires
    assert pw not in repr(t) and pw not in str(t.password)


def test_token_from_text_fallback_expiry() -> None:
    assert e.token_from_text(b64("AWS:opaque"), "aws", NOW).expires_at == NOW


@pytest.mark.parametrize("text", ["", "  \n", "two words"])
def test_token_from_text_rejects(text: str) -> None:
    with pytest.raises(e.TokenError):
        e.token_from_text(text, "test")


def fake_ctx(**settings) -> SimpleNamespace:
    values = {"ecr.token_file": "", "ecr.profile": "", "ecr.region": "ap-south-1", "ecr.endpoint_url": ""}
    values.update(settings)
    return SimpleNamespace(settings=values, net_timeout=1.0)


def test_get_token_sources(tmp_path) -> None:
    path = tmp_path / "token"
    path.write_text(token(TS) + "\n")
    assert e.get_token(fake_ctx(**{"ecr.token_file": str(path)}), env={}).source == f"file {path}"
    from_stdin = e.get_token(fake_ctx(**{"ecr.token_file": "-"}), env={}, stdin=io.StringIO(password(TS)))
    assert from_stdin.source == "standard input" and from_stdin.expires_at == NOW + timedelta(hours=11)
    from_env = e.get_token(fake_ctx(), env={e.TOKEN_ENV: token(TS)})
    assert from_env.source == f"env {e.TOKEN_ENV}" and from_env.password.reveal() == password(TS)
    with pytest.raises(e.TokenError, match="cannot read"):
        e.get_token(fake_ctx(**{"ecr.token_file": str(tmp_path / "absent")}), env={})


def test_secret_body_masks_nothing_but_holds_token() -> None:
    body = e.secret_body("awscred", "sb-apps", REGISTRY, e.Token(e.Secret(password(TS)), NOW, "test"))
    assert body["type"] == e.DOCKERCONFIGJSON
    assert body["metadata"]["annotations"] == {e.EXPIRY_ANNOTATION: "2026-11-26T12:00:00Z"}
    config = base64.b64decode(body["data"][".dockerconfigjson"]).decode()
    entry = e.auth_entry(e.parse_dockerconfig(config), REGISTRY)
    assert entry["username"] == "AWS" and entry["password"] == password(TS)
