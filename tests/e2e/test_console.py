"""Issue 20, first part: the IT console the hub serves at `/`, driven in Debian's
Chromium by playwright-core (tests/console/drive.mjs) against the real hub with the real
OpenID provider: people sign in through the provider's own login page, each page is
opened as their role allows, screenshotted into target/console-e2e/ (light and dark) and
checked with axe-core (no serious or critical violation). What devices send is shown as
text: a tool argument holding `<script>` or a spreadsheet formula appears literally and
runs nothing. Roles are enforced by the hub, not by hiding: each role's pages and actions
are exercised, and a request the role may not make is refused by the hub."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess

import anyio
import httpx2 as httpx
import pytest

from conftest import BIN, NODE_BIN, ROOT, Gateway, connect, memory_server, text_of, wait_for, write_config
from test_hub import HUB_BIN
from test_hub_identity import raw_device
from test_hub_sign_in import browse, person, sign_in, signed_in_hub  # noqa: F401  (the fixture)

CHROMIUM = shutil.which("chromium")
DRIVE = ROOT / "tests" / "console" / "drive.mjs"
OUT = ROOT / "target" / "console-e2e"
PAGES = ["overview", "devices", "people", "audit", "alerts", "approvals", "policy"]
HOSTILE = "<script>document.title='pwned'</script><img src=x onerror=alert(1)>"
FORMULA = "=cmd|' /C calc'!A0"

pytestmark = [pytest.mark.anyio,
              pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make console-deps)")]


def drive(hub, email: str, theme: str, *pages: str, **env_extra: str) -> list[dict]:
    OUT.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CHROMIUM": CHROMIUM, **env_extra}
    done = subprocess.run([str(NODE_BIN / "node"), str(DRIVE), hub.url, email, str(OUT), theme, *pages],
                          capture_output=True, text=True, timeout=240, env=env, cwd=DRIVE.parent)
    assert done.returncode == 0, done.stderr + done.stdout
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]


async def a_device_with_records(tmp_path, hub) -> Gateway:
    folder = tmp_path / "laptop"
    folder.mkdir()
    config = write_config(folder / "countersign.toml", {"memory": memory_server(tmp_path / "m.json")},
                          policy={"allow": ["mcp__memory"]}, sync={"interval_secs": 1})
    gw = Gateway(folder, config).start()
    gw.cli("enroll", hub.url, hub.enrollment_token(), "--name", "console-laptop")
    async with connect(gw, "http", "memory") as client:
        r = await client.call_tool("create_entities", {"entities": [
            {"name": HOSTILE, "entityType": FORMULA, "observations": []}]})
        assert not r.is_error, text_of(r)
    gw.cli("sync", "--now")
    wait_for(lambda: any(r.get("tool") == "create_entities" for r in hub.records()), what="the record at the hub")
    return gw


async def test_the_console_signs_in_shows_every_page_and_passes_axe(tmp_path, signed_in_hub):
    hub = signed_in_hub
    gw = await a_device_with_records(tmp_path, hub)
    subprocess.run([str(HUB_BIN), "agent", "create", "builder", "--owner", "nora@example.com", "--purpose",
                    "nightly builds"], env=hub.env, capture_output=True, text=True, check=True)
    try:
        page = httpx.get(f"{hub.url}/")
        assert page.status_code == 200 and "Countersign console" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "unsafe" not in csp and "frame-ancestors 'none'" in csp, csp
        for theme in ["light", "dark"]:
            seen = drive(hub, "ivan@example.com", theme, *PAGES)
            assert "ivan@example.com" in seen[0]["signed_in"] and "admin" in seen[0]["signed_in"], seen[0]
            by_page = {s["page"]: s for s in seen[1:]}
            assert sorted(by_page) == sorted(PAGES)
            for name, s in by_page.items():
                assert s["serious"] == [], f"{name} ({theme}): {s['serious']}"
                assert s["errors"] == [], f"{name} ({theme}): {s['errors']}"
                assert (OUT / f"{name}-{theme}.png").stat().st_size > 10_000, "a screenshot with something on it"
            assert "devices online of 1" in by_page["overview"]["text"], by_page["overview"]["text"]
            assert "memory.create_entities: 1" in by_page["overview"]["text"], by_page["overview"]["text"]
            assert "console-laptop" in by_page["devices"]["text"], by_page["devices"]["text"]
            people = by_page["people"]["text"]
            assert "builder" in people and "nora@example.com" in people and "nightly builds" in people, people
            assert "memory.create_entities" in people, "who used what"
            shown = re.search(r"(\d+) records, newest first", by_page["audit"]["text"])
            assert shown and int(shown.group(1)) == len(hub.records()), by_page["audit"]["text"]
        # Hostile arguments are shown as the text they are; nothing ran (no dialog, the
        # title unchanged: drive.mjs reports page errors and dialogs).
        audit = drive(hub, "ivan@example.com", "light", "audit")[1]
        assert audit["errors"] == [] and audit["serious"] == []
        assert any(HOSTILE in a and FORMULA in a for a in audit["arguments"]), audit["arguments"]
    finally:
        gw.stop()


async def test_an_auditor_reads_what_the_role_allows(signed_in_hub):
    hub = signed_in_hub
    seen = drive(hub, "ana@example.com", "light", "devices", "audit")
    assert "ana@example.com" in seen[0]["signed_in"] and "auditor" in seen[0]["signed_in"], seen[0]
    for page in seen[1:]:
        assert page["serious"] == [] and page["errors"] == [], page
        assert "may not" not in page["text"], page["text"]


def test_a_browser_lands_on_the_console_and_a_person_without_a_role_gets_nothing(signed_in_hub):
    """The callback sends a browser (it asks for HTML) on to the console with its session;
    nora's groups hold no role: refused, no cookie, never the console."""
    hub = signed_in_hub
    browser = person("ivan@example.com")
    browser.headers["Accept"] = "text/html,application/xhtml+xml"
    back = browse(browser, f"{hub.url}/v1/auth/login", f"{hub.url}/v1/auth/callback")
    assert back.status_code == 303 and back.headers["location"] == "/", back.headers
    landed = browser.get(f"{hub.url}/")
    assert landed.status_code == 200 and "Countersign console" in landed.text, landed.text[:200]
    assert "countersign_hub_session" in browser.cookies
    assert browser.get(f"{hub.url}/v1/auth/whoami").json()["actor"] == "person ivan@example.com"
    nobody = person("nora@example.com")
    nobody.headers["Accept"] = "text/html"
    refused = browse(nobody, f"{hub.url}/v1/auth/login", f"{hub.url}/v1/auth/callback")
    assert refused.status_code == 403 and "holds a role" in refused.text, refused.text
    assert "location" not in refused.headers and "countersign_hub_session" not in nobody.cookies


async def test_a_policy_admin_checks_previews_and_publishes_from_the_console(tmp_path, signed_in_hub):
    """pia (policy-admin) types a draft that denies the memory server's writes: the hub
    checks it as a laptop would, the impact preview replays the week's recorded calls
    (the known answer: the one create_entities call goes ask → deny, for its person),
    and publishing signs it as version 1, which the laptop then enforces (its next such
    call is denied and never reaches the server)."""
    keys = tmp_path / "keys"
    subprocess.run([str(BIN), "policy", "keygen", str(keys)], input="hub-signing-pass\n", capture_output=True,
                   text=True, check=True)
    hub = signed_in_hub
    hub.kill()
    hub.env["COUNTERSIGN_HUB_SIGNING_KEY"] = str(keys / "bundle.key")
    hub.env["COUNTERSIGN_HUB_SIGNING_KEY_PASSPHRASE"] = "hub-signing-pass"
    hub.start()
    gw = await a_device_with_records(tmp_path, hub)
    (gw.managed / "managed.toml").write_text(
        f'[managed]\nbundle_public_key = "{(keys / "bundle.pub").read_text().strip()}"\n')
    draft = '[policy]\ndeny = ["mcp__memory__create_entities"]\n'
    seen = drive(hub, "pia@example.com", "light", "policy-flow", DRAFT=draft)
    flow = seen[1]
    assert flow["serious"] == [] and flow["errors"] == [], flow
    assert flow["summary"].startswith("1 of 1 calls in 7 days would be decided differently"), flow["summary"]
    assert "ask → deny: 1" in flow["text"] and "memory.create_entities" in flow["text"], flow["text"]
    assert "Published as version 1" in flow["published"], flow["published"]
    published = httpx.get(f"{hub.url}/v1/policy", headers={"Authorization": f"Bearer {hub.admin}"}).json()
    assert published["version"] == 1 and "mcp__memory__create_entities" in published["policy"], published
    log = httpx.get(f"{hub.url}/v1/admin-log", headers={"Authorization": f"Bearer {hub.admin}"}).json()
    assert any(e["action"] == "policy-publish" and e["actor"] == "person pia@example.com" for e in log)

    # The laptop's long poll brings the bundle down and the gateway records taking it up.
    await anyio.to_thread.run_sync(lambda: wait_for(
        lambda: any(r.get("rule") == "policy-reload" for r in gw.audit()), timeout=60,
        what="the laptop to take up the published policy"))
    async with connect(gw, "http", "memory") as client:
        r = await client.call_tool("create_entities", {"entities": [
            {"name": "after-publish", "entityType": "t", "observations": []}]})
    assert r.is_error and "denied" in text_of(r), text_of(r)
    assert "after-publish" not in (tmp_path / "m.json").read_text()
    gw.stop()


def test_an_approver_answers_a_routed_request_in_the_console(signed_in_hub):
    """pia's device raises a request routed to ivan, with hostile arguments; ivan sees it
    in the console with its full arguments (as text: nothing runs) and approves it once:
    the hub records ivan's answer, bound to the request's nonce and arguments hash, and
    the asking device reads it as approved. pia cannot answer her own request from the
    console, and an API token answers nothing."""
    from test_routed_attacks import auth, raise_, state

    hub = signed_in_hub
    pia = raw_device(hub, "pia@example.com")
    hostile = {"entities": [{"name": HOSTILE, "entityType": FORMULA, "observations": []}]}
    raised = raise_(hub, pia, approver="ivan@example.com", arguments=hostile)
    assert raised.status_code == 201, raised.text
    rid = raised.json()["id"]
    # The asker herself, signed in to the console: not an approver of her own request.
    browser, signed = sign_in(hub, "pia@example.com")
    assert browser.get(f"{hub.url}/v1/my-approvals").json() == []
    forged = browser.post(f"{hub.url}/v1/my-approvals/{rid}", headers={"Origin": hub.url},
                          json={"verdict": "allow", "nonce": "0" * 32, "args_hash": "a" * 64})
    assert forged.status_code == 403 and "not an approver" in forged.json()["error"], forged.text
    token = httpx.get(f"{hub.url}/v1/my-approvals", headers=auth(hub.admin))
    assert token.status_code == 403 and "signed in" in token.json()["error"]
    token = httpx.post(f"{hub.url}/v1/my-approvals/{rid}", headers=auth(hub.admin),
                       json={"verdict": "allow", "nonce": "0" * 32, "args_hash": "a" * 64})
    assert token.status_code == 403 and "signed in" in token.json()["error"], "an API token answers nothing"

    flow = drive(hub, "ivan@example.com", "light", "approve-flow")[1]
    assert flow["serious"] == [] and flow["errors"] == [], flow
    assert "pia@example.com on raw wants memory.create_entities" in flow["text"], flow["text"]
    assert any(HOSTILE in a and FORMULA in a for a in flow["arguments"]), flow["arguments"]
    assert flow["answered"] == f"Request {rid} approved.", flow["answered"]
    decided = state(hub, pia, rid).json()
    assert decided["state"] == "approved" and decided["answered_by"] == "ivan@example.com", decided
    log = httpx.get(f"{hub.url}/v1/admin-log", headers=auth(hub.admin)).json()
    assert any(e["action"] == "approval-answered" and e["actor"] == "person ivan@example.com"
               and "(in the console)" in e["detail"] for e in log), log


def test_an_admin_suspends_an_agent_and_an_auditor_cannot(signed_in_hub):
    """ivan (admin) suspends the agent from People and agents with a reason: the hub holds
    it suspended and logs who did it. ana (auditor) sees no such control, and the hub
    refuses her the same request made with her session."""
    from test_routed_attacks import auth

    hub = signed_in_hub
    subprocess.run([str(HUB_BIN), "agent", "create", "builder", "--owner", "nora@example.com"], env=hub.env,
                   capture_output=True, text=True, check=True)
    browser, _ = sign_in(hub, "ana@example.com")
    refused = browser.post(f"{hub.url}/v1/agents/builder/suspend", headers={"Origin": hub.url}, json={"why": "x"})
    assert refused.status_code == 403 and "may not" in refused.json()["error"], refused.text
    seen = drive(hub, "ana@example.com", "light", "people")[1]
    assert "Suspend" not in seen["text"] and seen["errors"] == [] and seen["serious"] == [], seen
    flow = drive(hub, "ivan@example.com", "light", "suspend-flow", WHY="lost laptop")[1]
    assert flow["errors"] == [] and "suspended: lost laptop" in flow["text"], flow
    agent = next(a for a in httpx.get(f"{hub.url}/v1/agents", headers=auth(hub.admin)).json() if a["name"] == "builder")
    assert agent["suspended_why"] == "lost laptop", agent
    log = httpx.get(f"{hub.url}/v1/admin-log", headers=auth(hub.admin)).json()
    assert any(e["actor"] == "person ivan@example.com" and "suspend" in e["action"] for e in log), log


def test_an_alert_is_acknowledged_with_a_note_in_the_admin_log(signed_in_hub):
    """nora's refused sign-in is an alert; ivan acknowledges it from the console with a
    note: it is no longer open, says who and why, and the admin log has the same line.
    The hub takes no second acknowledgement, and none without a note."""
    from test_routed_attacks import auth

    hub = signed_in_hub
    nobody, refused = sign_in(hub, "nora@example.com")
    assert refused.status_code == 403
    [alert] = [a for a in hub.alerts() if a["kind"] == "sign-in-refused"]
    assert alert["acknowledged_at"] is None
    flow = drive(hub, "ivan@example.com", "light", "ack-flow", NOTE="nora is not IT; told her")[1]
    assert flow["errors"] == [] and flow["serious"] == [], flow
    assert "Acknowledged (1)" in flow["text"] and "by ivan@example.com: nora is not IT; told her" in flow["text"], flow
    [after] = [a for a in hub.alerts() if a["id"] == alert["id"]]
    assert after["acknowledged_by"] == "person ivan@example.com" and after["note"] == "nora is not IT; told her"
    log = httpx.get(f"{hub.url}/v1/admin-log", headers=auth(hub.admin)).json()
    assert any(e["action"] == "alert-acknowledged" and e["actor"] == "person ivan@example.com" for e in log)
    again = httpx.post(f"{hub.url}/v1/alerts/{alert['id']}/acknowledge", json={"note": "x"}, headers=auth(hub.admin))
    assert again.status_code == 409, again.text
    empty = httpx.post(f"{hub.url}/v1/alerts/{alert['id']}/acknowledge", json={"note": " "}, headers=auth(hub.admin))
    assert empty.status_code == 400 and "note" in empty.json()["error"], empty.text


def test_an_admin_revokes_a_device_and_its_credential_stops_working(signed_in_hub):
    """ivan revokes pia's device from Devices with a reason: the device's credential is
    refused at once (its next request is a 401 naming the reason)."""
    from test_routed_attacks import auth

    hub = signed_in_hub
    pia = raw_device(hub, "pia@example.com")
    assert httpx.get(f"{hub.url}/v1/device", headers=auth(pia)).status_code == 200
    flow = drive(hub, "ivan@example.com", "light", "revoke-flow", WHY="laptop stolen")[1]
    assert flow["errors"] == [] and "revoked: laptop stolen" in flow["text"], flow
    gone = httpx.get(f"{hub.url}/v1/device", headers=auth(pia))
    assert gone.status_code == 401 and "laptop stolen" in gone.json()["error"], gone.text


async def test_a_preview_names_people_only_to_those_who_may_read_the_audit_trail(tmp_path, signed_in_hub):
    """A policy-admin API token (publishes, does not read the audit trail) previews a draft:
    the counts by change and tool, no people and no records; an auditor-and-policy-admin
    sees them. Every preview is in the admin log, by the draft's digest."""
    from test_routed_attacks import auth

    hub = signed_in_hub
    gw = await a_device_with_records(tmp_path, hub)
    gw.stop()
    publisher = subprocess.run([str(HUB_BIN), "api-token", "create", "--role", "policy-admin", "--name", "ci"],
                               env=hub.env, capture_output=True, text=True, check=True).stdout.strip()
    draft = '[policy]\ndeny = ["mcp__memory__create_entities"]\n'
    r = httpx.post(f"{hub.url}/v1/policy/preview", content=draft, headers=auth(publisher))
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["people_shown"] is False and report["truncated"] is False
    assert report["impact"]["changed"] == 1 and report["impact"]["by_tool"][0]["name"] == "memory.create_entities"
    assert report["impact"]["by_person"] == [] and report["impact"]["examples"] == [], report
    full = httpx.post(f"{hub.url}/v1/policy/preview", content=draft, headers=auth(hub.admin)).json()
    assert full["people_shown"] is True and full["impact"]["by_person"][0]["name"], full
    log = httpx.get(f"{hub.url}/v1/admin-log", headers=auth(hub.admin)).json()
    previews = [e for e in log if e["action"] == "policy-preview"]
    assert len(previews) == 2 and "sha256" in previews[0]["detail"] and "deny" not in previews[0]["detail"], previews


def test_a_callback_link_from_someone_elses_sign_in_opens_nothing(signed_in_hub):
    """Login CSRF: ivan starts a sign-in and, instead of finishing it, sends the callback
    link to ana. Her browser did not start it: no session is opened (she is not signed in
    as ivan), the refusal is an alert, and the link is spent for ivan too."""
    from urllib.parse import urljoin

    from test_hub_sign_in import Form

    hub = signed_in_hub
    ivan = person("ivan@example.com")
    response = ivan.get(f"{hub.url}/v1/auth/login")
    link = None
    for _ in range(20):
        if response.status_code in (302, 303):
            url = urljoin(str(response.url), response.headers["location"])
            if url.startswith(f"{hub.url}/v1/auth/callback"):
                link = url
                break
            response = ivan.get(url)
        else:
            form = Form()
            form.feed(response.text)
            form.fields.update(ivan.login)
            response = ivan.post(urljoin(str(response.url), form.action), data=form.fields)
    assert link, "the provider sent ivan back with a code"
    ana = person("ana@example.com")
    ana.headers["Accept"] = "text/html"
    clicked = ana.get(link)
    assert clicked.status_code == 400 and "started in another browser" in clicked.json()["error"], clicked.text
    assert "countersign_hub_session" not in ana.cookies
    assert ana.get(f"{hub.url}/v1/auth/whoami").status_code == 401
    assert any(a["kind"] == "sign-in-refused" and "another browser" in a["detail"] for a in hub.alerts())
    late = ivan.get(link)
    assert late.status_code == 400 and "already used" in late.json()["error"], late.text
