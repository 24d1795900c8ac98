"""`auth.keys` objects: secrets (env, sha256), names, scope, limits, budgets, policy; the
runtime-key validator the admin API uses; what check-config says about keys."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import pytest
import yaml

from gateway.access.keyring import KeyRing
from gateway.access.runtime_keys import MemoryKeyStore
from gateway.check_config import check_config_main
from gateway.config import ConfigError, parse_config
from gateway.config.keys import digest_of, runtime_key
from gateway.config.validate import Context, Reader

SECRET = "team-a-secret-0123456789"
BASE: dict[str, Any] = {
    "providers": {"p": {"kind": "openai", "base_url": "http://127.0.0.1:1/v1"}},
    "deployments": {
        "eu-small": {"provider": "p", "model": "a", "region": "eu"},
        "us-big": {"provider": "p", "model": "b", "region": "us"},
    },
    "routes": {"chat": {"deployments": ["eu-small", "us-big"]}},
}


def with_keys(*keys: Any, **extra: Any) -> dict[str, Any]:
    return {**BASE, "auth": {"keys": list(keys)}, **extra}


def problems(data: dict[str, Any], env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, env or {})
    return info.value.problems


def test_a_key_object_parses_with_its_scope_limits_budget_and_policy() -> None:
    team_a = {
        "key": "env:TEAM_A_KEY",
        "name": "team-a",
        "routes": ["chat"],
        "rpm": 60,
        "tpm": 100_000,
        "budget_usd": {"daily": 5, "monthly": 100},
        "pii": {"email": "block"},
        "data_residency": ["eu"],
        "allow_direct_deployments": True,
        "metadata": {"team": "a", "owner": "ops"},
    }
    digest = hashlib.sha256(b"ops-secret").hexdigest()
    config = parse_config(
        with_keys(team_a, "plain-secret-1", {"key": f"sha256:{digest}", "name": "ops"}),
        {"TEAM_A_KEY": SECRET},
    )
    a, plain, ops = config.auth.keys
    assert a.name == "team-a" and a.digest == digest_of(SECRET)
    assert a.routes == ("chat",) and (a.rpm, a.tpm) == (60, 100_000)
    assert (a.budget_daily_usd, a.budget_monthly_usd) == (5.0, 100.0)
    assert a.pii == {"email": "block"} and a.data_residency == ("eu",)
    assert a.allow_direct_deployments is True and a.metadata == {"team": "a", "owner": "ops"}
    assert plain.name == "key-2" and plain.routes is None and plain.budget_daily_usd is None
    assert ops.secret is None and ops.digest == bytes.fromhex(digest)
    # the secrets the config holds (for scrubbing): not the sha256 one, which it does not hold
    assert [s.reveal() for s in config.auth.secrets] == [SECRET, "plain-secret-1"]
    assert SECRET not in repr(config.auth)


def test_a_number_budget_is_daily() -> None:
    config = parse_config(with_keys({"key": "k-0123456789", "budget_usd": 2.5}), {})
    (key,) = config.auth.keys
    assert (key.budget_daily_usd, key.budget_monthly_usd) == (2.5, None)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        (["a-secret-1", {"key": "b-secret-2", "name": "key-1"}], "auth.keys[1].name: duplicate"),
        ([{"key": "a-secret-1", "name": "team a"}], "auth.keys[0].name: must be 1-64 characters"),
        ([{"key": "a-secret-1", "name": "admin"}], "auth.keys[0].name: 'admin' is reserved"),
        ([{"key": "a-secret-1", "name": "x" * 65}], "auth.keys[0].name: must be 1-64"),
        ([{"name": "team-a"}], "auth.keys[0].key: is required"),
        ([{"key": "sha256:abc"}], "auth.keys[0].key: sha256: needs 64 hex digits"),
        ([{"key": "a-secret-1", "routes": ["chatt"]}], "auth.keys[0].routes[0]: unknown route"),
        ([{"key": "a-secret-1", "rpm": 0}], "auth.keys[0].rpm: must be an integer >= 1"),
        ([{"key": "a-secret-1", "budget_usd": "5"}], "auth.keys[0].budget_usd: must be a number"),
        ([{"key": "a-secret-1", "budget_usd": {"weekly": 1}}], "budget_usd.weekly: unknown key"),
        ([{"key": "a-secret-1", "data_residency": ["mars"]}], "unknown region 'mars'"),
        ([{"key": "a-secret-1", "pii": {"email": "shout"}}], "auth.keys[0].pii.email: must be"),
        ([{"key": "a-secret-1", "rmp": 5}], "auth.keys[0].rmp: unknown key (did you mean 'rpm'?)"),
        (["same-secret-1", {"key": "same-secret-1", "name": "b"}], "duplicate of auth.keys[0]"),
        ([{"key": "env:NOPE"}], "auth.keys[0].key: environment variable NOPE is not set"),
    ],
)
def test_a_bad_key_is_reported_with_its_path(keys: list[Any], problem: str) -> None:
    found = problems(with_keys(*keys))
    assert any(problem in p for p in found), found
    assert not any("secret-1" in p for p in found)  # a secret never shows in a message


def test_a_route_key_may_name_a_deployment_too() -> None:
    config = parse_config(with_keys({"key": "a-secret-1", "routes": ["chat", "us-big"]}), {})
    assert config.auth.keys[0].routes == ("chat", "us-big")


def test_empty_keys_need_the_admin_api_to_make_keys() -> None:
    assert "auth.keys: at least one key is required" in problems(with_keys())[0]
    config = parse_config(with_keys(admin={"key": "admin-0123456789"}), {})
    assert config.auth.enabled and config.auth.keys == ()
    assert not parse_config(BASE, {}).auth.enabled


def test_governance_keys_move_onto_the_key_objects() -> None:
    data = with_keys(
        "a-secret-1",
        {"key": "b-secret-2", "name": "team-b"},
        governance={"keys": {"team-b": {"pii": {"email": "block"}, "data_residency": ["eu"]}}},
    )
    config = parse_config(data, {})
    b = config.auth.keys[1]
    assert b.pii == {"email": "block"} and b.data_residency == ("eu",)
    data["auth"]["keys"][1]["pii"] = {"phone": "redact"}
    assert any(
        "governance.keys.team-b: the key object in auth.keys sets pii" in p for p in problems(data)
    )
    data = with_keys("a-secret-1", governance={"keys": {"key-2": {"pii": {"email": "block"}}}})
    assert problems(data)[0].startswith(
        "governance.keys.key-2: unknown key id (auth.keys gives key-1)"
    )


def test_direct_deployments_are_off_unless_allowed() -> None:
    assert parse_config(BASE, {}).routing.allow_direct_deployments is False
    config = parse_config({**BASE, "routing": {"allow_direct_deployments": True}}, {})
    assert config.routing.allow_direct_deployments is True
    assert config.routing.feedback_window_s == 86_400
    assert (
        "routing.feedback_window_s: must be a number > 0"
        in problems({**BASE, "routing": {"feedback_window_s": 0}})[0]
    )


def test_runtime_keys_are_validated_by_the_same_rules() -> None:
    ctx = Context({})
    body = {"routes": ["chat"], "rpm": 10, "budget_usd": {"monthly": 20}, "metadata": {"t": 1}}
    key = runtime_key(Reader(ctx, "", body), "rk-1", b"d" * 32, ["chat"], ("eu", "us"))
    assert not ctx.problems
    assert key.runtime and key.rpm == 10 and key.budget_monthly_usd == 20.0
    ctx = Context({})
    runtime_key(Reader(ctx, "", {"routes": ["nope"], "key": "x"}), "n", b"", ["chat"], None)
    assert ctx.problems == ["routes[0]: unknown route 'nope'", "key: unknown key"]


def test_the_key_ring_finds_a_key_by_its_secret_or_its_sha256() -> None:
    digest = hashlib.sha256(b"ops-secret").hexdigest()
    config = parse_config(
        with_keys("plain-secret-1", {"key": f"sha256:{digest}", "name": "ops"}), {}
    )
    ring = KeyRing(config, MemoryKeyStore())
    found = ring.authenticate("ops-secret")
    assert found is not None and found.name == "ops"
    plain = ring.authenticate("plain-secret-1")
    assert plain is not None and plain.name == "key-1"
    assert ring.authenticate("plain-secret-") is None and ring.authenticate("") is None
    assert ring.authenticate(f"sha256:{digest}") is None  # the digest is not the key


def check(tmp_path: Path, data: dict[str, Any]) -> tuple[int, str, str]:
    path = tmp_path / "gateway.yaml"
    path.write_text(yaml.safe_dump(data))
    out, err = io.StringIO(), io.StringIO()
    return check_config_main(str(path), out=out, err=err), out.getvalue(), err.getvalue()


def test_check_config_summarizes_scoped_keys(tmp_path: Path) -> None:
    data = with_keys(
        "plain-secret-1",
        {
            "key": "a-secret-2",
            "name": "team-a",
            "routes": ["chat"],
            "rpm": 60,
            "budget_usd": {"daily": 5, "monthly": 100},
            "data_residency": ["eu"],
            "allow_direct_deployments": True,
        },
        routing={"allow_direct_deployments": False},
    )
    code, out, _ = check(tmp_path, data)
    assert code == 0
    assert "auth=2 keys" in out
    line = "  key team-a: routes chat; rpm 60; $5/day; $100/month; residency eu; "
    assert line + "direct deployments on" in out
    assert "key key-1" not in out and "a-secret-2" not in out and "plain-secret-1" not in out


def test_check_config_reports_key_problems_with_paths(tmp_path: Path) -> None:
    data = with_keys({"key": "a-secret-2", "name": "bad name", "routes": ["chatt"]})
    code, _, err = check(tmp_path, data)
    assert code == 1
    assert "auth.keys[0].name: must be 1-64 characters" in err
    assert "auth.keys[0].routes[0]: unknown route 'chatt' (did you mean 'chat'?)" in err
    assert "a-secret-2" not in err
