"""Managed policy does not fall away from the user's own home (issue 15, item 7).

Each test performs an attack a user (or malware in their account) can make on the files
and environment they own, against the running gateway, and asserts the signed bundle's
deny STILL denies at the upstream: the hostile fixture server logs every call it
receives, and the denied tool is never in that log.

- the delivered bundle (and the copy kept beside it) deleted;
- the bundle left to expire (the hub out of reach): it keeps enforcing, or denies all it
  governed when the managed file says so; the status warns and the hub raises an alert;
- the rollback floor deleted (then an older signed bundle offered, by hand or by the hub)
  or edited (its version raised);
- `COUNTERSIGN_MANAGED_DIR` pointed at the user's own folder, key and bundle.
"""

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from conftest import BIN, connect, python_server, text_of, until, wait_for

pytestmark = pytest.mark.anyio
PASS = "\n"  # no passphrase: signing takes milliseconds, not the seconds scrypt takes

TOOLS = [{"name": n, "description": f"{n.replace('_', ' ')}", "inputSchema": {"type": "object", "properties": {
    "repo": {"type": "string"}}}} for n in ("delete_repo", "list_repos", "wipe_disk")]


def hostile(tmp_path: Path) -> tuple[dict, Path]:
    spec, calls = tmp_path / "h.json", tmp_path / "h-calls.jsonl"
    spec.write_text(json.dumps({"pages": [TOOLS]}))
    calls.touch()
    return python_server("hostile_server.py", str(spec), str(calls)), calls


def received(calls: Path) -> list[str]:
    return [json.loads(line)["params"]["name"] for line in calls.read_text().splitlines() if line.strip()]


def rfc3339(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class It:
    """A signing key trusted by the gateway's managed file (the OS location). Made by
    `countersign policy keygen` without a passphrase, which keeps each signature quick."""

    def __init__(self, gw, tmp_path: Path, name: str = "it-keys", managed_extra: str = ""):
        self.dir = tmp_path / name
        self.tmp = tmp_path
        self.gw = gw
        gw.cli("policy", "keygen", str(self.dir), input=PASS)
        self.pub = (self.dir / "bundle.pub").read_text().strip()
        self.managed_text = f'[managed]\nbundle_public_key = "{self.pub}"\n{managed_extra}'

    def trust(self, managed_dir: Path):
        (managed_dir / "managed.toml").write_text(self.managed_text)

    def bundle(self, version: int, policy: str, expires: str = "2099-01-01T00:00:00Z") -> Path:
        out = self.tmp / f"{self.dir.name}-bundle-{version}.toml"
        out.write_text(f'[bundle]\nversion = {version}\nexpires = "{expires}"\n[policy]\n{policy}')
        self.gw.cli("policy", "sign", "--key", str(self.dir / "bundle.key"), str(out), input=PASS)
        return out


def policy_dir(gw) -> Path:
    return gw.home / "policy"


def deliver(gw, bundle: Path):
    """Puts a signed bundle where the hub delivers it and has the gateway read it now."""
    dest = policy_dir(gw) / "bundle.toml"
    Path(str(dest) + ".minisig").write_bytes(Path(str(bundle) + ".minisig").read_bytes())
    dest.write_bytes(bundle.read_bytes())
    gw.cli("policy", "reload")


def in_force(gw, version: int):
    wait_for(lambda: gw.status()["policy_version"].startswith(f"bundle-{version}+"), what=f"bundle {version} in force")


async def call(gw, tool: str):
    async with connect(gw, "http", "h") as client:
        await client.list_tools()
        return await client.call_tool(tool, {"repo": "prod"})


async def assert_denied(gw, calls: Path, tool: str = "delete_repo"):
    r = await call(gw, tool)
    assert r.is_error, f"{tool} was allowed: {text_of(r)}"
    assert tool not in received(calls), f"the upstream received {tool}"


def setup(make_gateway, tmp_path, managed_extra: str = ""):
    server, calls = hostile(tmp_path)
    # The user allows everything on the server; only managed policy stands in the way.
    gw = make_gateway({"h": server}, policy={"allow": ["mcp__h"]})
    it = It(gw, tmp_path, managed_extra=managed_extra)
    it.trust(gw.managed)
    return gw, it, calls


async def test_iss15_07_deleting_the_delivered_bundle_keeps_its_deny(make_gateway, tmp_path):
    gw, it, calls = setup(make_gateway, tmp_path)
    deliver(gw, it.bundle(5, 'deny = ["mcp__h__delete_repo"]\n'))
    in_force(gw, 5)
    await assert_denied(gw, calls)
    # The user deletes everything in their data folder's policy directory: the delivered
    # bundle, its signature and the copy kept beside it.
    for f in policy_dir(gw).iterdir():
        f.unlink()
    gw.cli("policy", "reload")
    await assert_denied(gw, calls)
    assert gw.status()["policy_version"].startswith("bundle-5+")
    gw.wait_audit(lambda r: r["rule"] == "policy-layer" and "missing; the last good bundle (version 5)"
                  in (r["reason"] or ""), "the deletion recorded")
    # After a restart the copy in the managed location (writable only by an administrator;
    # this test's stand-in for it) still holds it.
    gw.stop()
    gw.start()
    await assert_denied(gw, calls)
    assert (gw.managed / "last-good-bundle.toml").exists()
    r = await call(gw, "list_repos")
    assert not r.is_error and received(calls) == ["list_repos"], "the rest still works"


async def test_iss15_07_an_expired_bundle_keeps_denying_warns_and_alerts_the_hub(make_gateway, tmp_path):
    from test_hub import Hub

    hub = Hub(tmp_path, "sqlite").start()
    try:
        gw, it, calls = setup(make_gateway, tmp_path)
        gw.cli("enroll", hub.url, hub.enrollment_token())
        expires = time.time() + 4
        deliver(gw, it.bundle(5, 'deny = ["mcp__h__delete_repo"]\n', expires=rfc3339(expires)))
        in_force(gw, 5)
        assert gw.status().get("policy_warning") is None
        # Sync stops (the hub is out of reach for policy): nothing replaces the bundle
        # before it expires.
        wait_for(lambda: time.time() > expires + 1.5, timeout=15, what="the bundle's expiry to pass")
        await assert_denied(gw, calls)
        gw.cli("policy", "reload")
        await assert_denied(gw, calls)
        warning = wait_for(lambda: gw.status().get("policy_warning"), what="the expiry warning in the status")
        assert "bundle 5 expired" in warning and "stay in force" in warning, warning
        assert "Warning: managed policy bundle 5 expired" in gw.cli("status").stdout
        record = gw.wait_audit(lambda r: r["rule"] == "policy-bundle-expired", "the expiry record for the hub")
        assert len(record) == 1 and record[0]["decision"] == "deny"
        gw.cli("sync", "--now")
        alert = wait_for(lambda: [a for a in hub.alerts() if a["kind"] == "policy-expired"], what="the hub's alert")
        assert "bundle 5 expired" in alert[0]["detail"], alert
    finally:
        hub.kill()


async def test_iss15_07_an_expired_bundle_denies_all_it_governed_when_managed_policy_says_so(make_gateway, tmp_path):
    gw, it, calls = setup(make_gateway, tmp_path, managed_extra='bundle_expiry = "deny-governed"\n')
    expires = time.time() + 4
    deliver(gw, it.bundle(5, 'deny = ["mcp__h__delete_repo"]\nallow = ["mcp__h__list_repos"]\n',
                          expires=rfc3339(expires)))
    in_force(gw, 5)
    r = await call(gw, "list_repos")
    assert not r.is_error
    # No reload asked for: the gateway itself re-reads the policy when the bundle expires.
    await until(lambda: gw.status().get("policy_warning"), timeout=20, what="the gateway to see the expiry")
    await assert_denied(gw, calls)
    before = received(calls).count("list_repos")
    r = await call(gw, "list_repos")
    assert r.is_error and "is denied by the bundle policy rule" in text_of(r), text_of(r)
    assert received(calls).count("list_repos") == before, "what the bundle governed is denied once expired"
    assert "every tool it governed is denied" in gw.status()["policy_warning"]


async def test_iss15_07_deleting_the_rollback_floor_lets_no_older_bundle_in(make_gateway, tmp_path):
    gw, it, calls = setup(make_gateway, tmp_path)
    older = it.bundle(4, "")  # signed by IT once, long ago, with no deny
    deliver(gw, it.bundle(5, 'deny = ["mcp__h__delete_repo"]\n'))
    in_force(gw, 5)
    for name in ("accepted.toml", "accepted.toml.minisig"):
        (policy_dir(gw) / name).unlink()
    deliver(gw, older)
    await assert_denied(gw, calls)
    assert gw.status()["policy_version"].startswith("bundle-5+")
    gw.wait_audit(lambda r: r["rule"] == "policy-layer" and "rollback refused" in (r["reason"] or ""),
                  "the rollback refused and recorded")


async def test_iss15_07_the_hub_offering_a_bundle_older_than_the_floor_is_refused(make_gateway, tmp_path):
    """IT's newest bundle (7) arrived; the hub still publishes version 1 (a database
    restored from a backup, or a replay). Every fetch compares the hub's version with the
    floor: version 1 is refused and never written, even once the floor file is gone."""
    import subprocess

    import httpx2 as httpx
    from test_hub import Hub

    keys = tmp_path / "hub-keys"
    subprocess.run([str(BIN), "policy", "keygen", str(keys)], input=PASS, capture_output=True,
                   text=True, check=True)
    hub = Hub(tmp_path, "sqlite", signing=(keys / "bundle.key", "")).start()
    try:
        server, calls = hostile(tmp_path)
        gw = make_gateway({"h": server}, policy={"allow": ["mcp__h"]})
        (gw.managed / "managed.toml").write_text(f'[managed]\nbundle_public_key = "{(keys / "bundle.pub").read_text().strip()}"\n')
        published = httpx.put(f"{hub.url}/v1/policy", content='[policy]\ndeny = ["mcp__h__wipe_disk"]\n',
                              headers={"Authorization": f"Bearer {hub.admin}"})
        assert published.json()["version"] == 1, published.text
        newest = tmp_path / "bundle-7.toml"
        newest.write_text('[bundle]\nversion = 7\nexpires = "2099-01-01T00:00:00Z"\n[policy]\ndeny = ["mcp__h__delete_repo"]\n')
        gw.cli("policy", "sign", "--key", str(keys / "bundle.key"), str(newest), input=PASS)
        deliver(gw, newest)
        in_force(gw, 7)
        gw.cli("enroll", hub.url, hub.enrollment_token())
        gw.wait_audit(lambda r: r["rule"] == "policy-layer" and "rollback refused" in (r["reason"] or ""),
                      "the hub's older bundle refused")
        for name in ("accepted.toml", "accepted.toml.minisig"):
            (policy_dir(gw) / name).unlink()
        gw.cli("policy", "reload")
        await assert_denied(gw, calls)
        assert gw.status()["policy_version"].startswith("bundle-7+")
        assert "version = 7" in (policy_dir(gw) / "bundle.toml").read_text(), "the older bundle was never written"
    finally:
        hub.kill()


async def test_iss15_07_editing_the_rollback_floor_does_not_disable_the_bundle(make_gateway, tmp_path):
    gw, it, calls = setup(make_gateway, tmp_path)
    deliver(gw, it.bundle(5, 'deny = ["mcp__h__delete_repo"]\n'))
    in_force(gw, 5)
    floor = policy_dir(gw) / "accepted.toml"
    floor.write_text(floor.read_text().replace("version = 5", "version = 999"))
    gw.cli("policy", "reload")
    await assert_denied(gw, calls)
    assert gw.status()["policy_version"].startswith("bundle-5+")
    gw.wait_audit(lambda r: r["rule"] == "policy-layer" and "accepted.toml" in (r["reason"] or "")
                  and "does not verify" in r["reason"], "the edited floor named as ignored")


async def test_iss15_07_a_users_own_managed_dir_and_key_never_replace_the_os_location(make_gateway, tmp_path):
    gw, it, calls = setup(make_gateway, tmp_path)
    it.managed_text += '[policy]\ndeny = ["mcp__h__wipe_disk"]\n'
    it.trust(gw.managed)
    deliver(gw, it.bundle(5, 'deny = ["mcp__h__delete_repo"]\n'))
    in_force(gw, 5)
    # The user's own folder, key and bundle (allowing everything), and a deny of their own.
    mine = tmp_path / "mine"
    mine.mkdir()
    me = It(gw, tmp_path, name="my-keys")
    (mine / "managed.toml").write_text(me.managed_text + 'user_may_allow = true\n[policy]\nallow = ["mcp__h"]\n'
                                                         'deny = ["mcp__h__list_repos"]\n')
    own = me.bundle(99, 'allow = ["mcp__h"]\n')
    dest = policy_dir(gw) / "bundle.toml"
    Path(str(dest) + ".minisig").write_bytes(Path(str(own) + ".minisig").read_bytes())
    dest.write_bytes(own.read_bytes())
    gw.stop()
    gw.env["COUNTERSIGN_MANAGED_DIR"] = str(mine)
    gw.start()
    await assert_denied(gw, calls, "delete_repo")
    await assert_denied(gw, calls, "wipe_disk")
    assert gw.status()["policy_version"].startswith("bundle-5+")
    # What the user's folder adds can only tighten: their deny holds.
    await assert_denied(gw, calls, "list_repos")
    assert "COUNTERSIGN_MANAGED_DIR only adds deny and ask rules" in gw.log_path.read_text()
