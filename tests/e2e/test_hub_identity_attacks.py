"""Attacks on enrollment bound to a verified person (issue 18, commit e7f4484): the hub's
device authorization grant (RFC 8628), its /enroll page and confirmation, the device
side, and the hub's refusal of batches that claim another person or device. Each test
performs the attack against a running hub, the real OpenID provider and (where it
matters) a real gateway, and asserts the attack's EFFECT did not happen: no device
enrolled or bound, no record stored under the victim's name, no credential leaked, no
person locked out."""

import re
import sqlite3
import subprocess
import threading
import time
import unicodedata
from urllib.parse import urlsplit

import httpx2 as httpx
import pytest

from conftest import memory_server
from test_hub import HUB_BIN
from test_hub_identity import (Enrolling, Form, answer, confirm_page, enroll_by_code, memory_gateway,  # noqa: F401
                               one_call, os_account, raw_device, record)
from test_hub_sign_in import person, sign_in, signed_in_hub  # noqa: F401  (the fixture)

pytestmark = pytest.mark.anyio

GRANT = "urn:ietf:params:oauth:grant-type:device_code"


# --- helpers -----------------------------------------------------------------------------

def ask(hub, name: str = "attacker-box", os_user: str | None = "mallory", credential: str | None = None,
        **extra) -> httpx.Response:
    headers = {"Authorization": f"Bearer {credential}"} if credential else {}
    body = {"name": name, **({"os_user": os_user} if os_user is not None else {}), **extra}
    return httpx.post(f"{hub.url}/v1/enroll/device_authorization", json=body, headers=headers, timeout=30)


def poll(hub, device_code: str) -> httpx.Response:
    return httpx.post(f"{hub.url}/v1/enroll/token", json={"grant_type": GRANT, "device_code": device_code},
                      timeout=30)


def signed_in_page(hub, email: str, asked: dict) -> tuple[httpx.Client, httpx.Response]:
    browser = person(email)
    return browser, confirm_page(browser, asked["verification_uri_complete"], hub.url)


def confirmation(page: httpx.Response) -> str:
    form = Form()
    form.feed(page.text)
    assert form.action == "/enroll/confirm", page.text
    return form.fields["confirm"]


def db(hub) -> sqlite3.Connection:
    return sqlite3.connect(hub.tmp / "hub-home" / "hub.db", timeout=30)


def devices_in_db(hub) -> list[tuple]:
    with db(hub) as c:
        return c.execute("SELECT id, name, person_email, revoked_at FROM devices ORDER BY enrolled_at").fetchall()


def token_device(hub, name: str, user: str | None = None) -> tuple[str, str]:
    """A device enrolled by token through the API alone: (hub device id, credential)."""
    args = ["enrollment-token", "create", *(["--user", user] if user else [])]
    token = subprocess.run([str(HUB_BIN), *args], env=hub.env, capture_output=True, text=True,
                           check=True).stdout.strip()
    r = httpx.post(f"{hub.url}/v1/enroll", json={"token": token, "name": name})
    assert r.status_code == 200, r.text
    return r.json()["device_id"], r.json()["credential"]


def bearer(credential: str) -> dict:
    return {"Authorization": f"Bearer {credential}"}


def whom(hub, credential: str) -> httpx.Response:
    return httpx.get(f"{hub.url}/v1/device", headers=bearer(credential))


def send(hub, credential: str, *records: dict) -> httpx.Response:
    return httpx.post(f"{hub.url}/v1/ingest", json={"records": list(records), "outcomes": []},
                      headers=bearer(credential))


def revoke(hub, device_id: str):
    """The hub has no route or command that revokes a device (only the column and the
    check on it); a revocation is written the way one would be."""
    with db(hub) as c:
        c.execute("UPDATE devices SET revoked_at = '2026-12-02T00:00:00Z', revoked_why = 'lost laptop' WHERE id = ?",
                  (device_id,))


# --- the /enroll page: what the person sees ----------------------------------------------

def test_device_words_on_the_page_are_inert_markup(signed_in_hub):
    """A device name or account carrying HTML/script is shown as text, on a page that runs
    no script, cannot be framed and is not cached; the admin log keeps it as text too."""
    hub = signed_in_hub
    name = '<script>alert(1)</script><img src=x onerror=alert(2)>"\'&'
    os_user = '</b><a href="https://evil.example/">click</a>'
    asked = ask(hub, name=name, os_user=os_user).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    assert page.status_code == 200
    for raw in ("<script", "<img", "onerror=alert(2)>", '<a href="https://evil.example/">', '"\'&'):
        assert raw not in page.text, raw
    assert "&lt;script&gt;" in page.text and "&lt;/b&gt;&lt;a href=&quot;https://evil.example/&quot;&gt;" in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "script-src" not in csp
    assert page.headers["x-frame-options"] == "DENY" and page.headers["cache-control"] == "no-store"
    # The only form posts to the hub itself; the only link-like thing is the hub's.
    assert re.findall(r"<form[^>]*action=\"([^\"]*)\"", page.text) == ["/enroll/confirm"]
    assert not re.search(r"<(a|img|script|iframe|link|style|object|embed)\b", page.text, re.I)


def test_device_words_cannot_reorder_or_hide_the_pages_own_text(signed_in_hub):
    """Adversary 4: a device name with Unicode format characters (right-to-left override,
    isolates, zero-width characters) reorders what follows it on the confirmation page:
    the hub's own sentence naming the code and the warning read backwards or differently.
    No character of categories Cf/Zl/Zp that the device sent may reach the page."""
    hub = signed_in_hub
    name = "nora-laptop\u202e\u2066 gnol\u200b\ufeff\u2028x"
    os_user = "nora\u202e"
    asked = ask(hub, name=name, os_user=os_user).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    assert page.status_code == 200
    smuggled = sorted({f"U+{ord(c):04X}" for c in page.text if unicodedata.category(c) in ("Cf", "Zl", "Zp")})
    assert smuggled == [], f"the device's format characters reach the confirmation page: {smuggled}"


# --- the confirmation: origin, once, races -------------------------------------------------

def test_an_answer_without_the_hubs_origin_enrolls_nothing(signed_in_hub):
    hub = signed_in_hub
    asked = ask(hub).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    token = confirmation(page)
    port = urlsplit(hub.url).port
    for origin in (None, "null", "http://evil.example", f"{hub.url}/", f"http://localhost:{port}",
                   f"https://127.0.0.1:{port}", hub.url.upper()):
        headers = {"Origin": origin} if origin is not None else {}
        for client in (browser, httpx.Client()):
            r = client.post(f"{hub.url}/enroll/confirm", data={"confirm": token, "decision": "approve"},
                            headers=headers)
            assert r.status_code == 403, (origin, r.status_code, r.text)
    # Nothing moved: the device still waits, no device exists, no approval was logged.
    assert poll(hub, asked["device_code"]).json()["error"] == "authorization_pending"
    assert devices_in_db(hub) == []
    assert not [e for e in hub.get("/v1/admin-log").json() if e["action"].startswith("device-enrollment")]
    # The same confirmation from the hub's own page still works (so the refusals were the Origin's).
    assert answer(browser, page, hub.url, "deny").status_code == 200
    assert poll(hub, asked["device_code"]).json()["error"] == "access_denied"
    assert devices_in_db(hub) == []


def test_a_confirmation_is_used_once_even_when_answers_race(signed_in_hub):
    """Approve and deny sent at once with one confirmation (and approve again after): one
    answer counts, the device learns that one, and at most one device exists."""
    hub = signed_in_hub
    asked = ask(hub).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    token = confirmation(page)
    results: dict[str, int] = {}
    barrier = threading.Barrier(6)

    def post(decision: str, i: int):
        barrier.wait()
        r = httpx.post(f"{hub.url}/enroll/confirm", data={"confirm": token, "decision": decision},
                       headers={"Origin": hub.url}, timeout=30)
        results[f"{decision}{i}"] = r.status_code

    threads = [threading.Thread(target=post, args=(d, i)) for i in range(3) for d in ("approve", "deny")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results.values()).count(200) == 1, results
    won = next(k for k, v in results.items() if v == 200).rstrip("0123456789")
    log = [e["action"] for e in hub.get("/v1/admin-log").json() if e["action"].startswith("device-enrollment")]
    assert log == [f"device-enrollment-{'approved' if won == 'approve' else 'denied'}"], log
    got = poll(hub, asked["device_code"])
    if won == "approve":
        assert got.status_code == 200 and got.json()["user"] == "nora@example.com"
    else:
        assert got.json()["error"] == "access_denied"
        assert devices_in_db(hub) == []
    # Approving after the answer (with the used confirmation) changes nothing.
    again = httpx.post(f"{hub.url}/enroll/confirm", data={"confirm": token, "decision": "approve"},
                       headers={"Origin": hub.url})
    assert again.status_code == 404
    assert len(devices_in_db(hub)) == (1 if won == "approve" else 0)
    assert poll(hub, asked["device_code"]).json()["error"] == "invalid_grant"


def test_two_polls_at_once_get_one_credential(signed_in_hub):
    hub = signed_in_hub
    asked = ask(hub).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    assert answer(browser, page, hub.url, "approve").status_code == 200
    replies: list[httpx.Response] = []
    barrier = threading.Barrier(8)

    def race():
        barrier.wait()
        replies.append(poll(hub, asked["device_code"]))

    threads = [threading.Thread(target=race) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    granted = [r.json()["credential"] for r in replies if r.status_code == 200]
    assert len(granted) == 1, [(r.status_code, r.text) for r in replies]
    assert len(devices_in_db(hub)) == 1
    enrolled = [e for e in hub.get("/v1/admin-log").json() if e["action"] == "device-enrolled"]
    assert len(enrolled) == 1
    assert whom(hub, granted[0]).json()["user"] == "nora@example.com"


def test_an_expired_code_enrolls_nothing(signed_in_hub):
    hub = signed_in_hub
    asked = ask(hub).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    # Ten minutes pass (the hub's clock is not ours to move: the row's deadline is).
    with db(hub) as c:
        c.execute("UPDATE device_authorizations SET expires_unix = expires_unix - 3600")
    late = answer(browser, page, hub.url, "approve")
    assert late.status_code == 404
    again = person("nora@example.com").get(asked["verification_uri_complete"])
    assert again.status_code == 404 and "location" not in again.headers
    assert poll(hub, asked["device_code"]).json()["error"] == "expired_token"
    assert poll(hub, asked["device_code"]).json()["error"] == "invalid_grant"
    assert devices_in_db(hub) == []


def test_polling_too_fast_slows_down_and_gets_nothing_early(signed_in_hub):
    hub = signed_in_hub
    asked = ask(hub).json()
    said = [poll(hub, asked["device_code"]).json() for _ in range(4)]
    assert said[0]["error"] == "authorization_pending"
    assert [s["error"] for s in said[1:]] == ["slow_down"] * 3
    assert [re.search(r"every (\d+) seconds", s["error_description"]).group(1) for s in said[1:]] == ["10", "15", "20"]
    assert devices_in_db(hub) == []
    # Once approved, the device is answered whatever its pace.
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    answer(browser, page, hub.url, "approve")
    assert poll(hub, asked["device_code"]).status_code == 200


# --- redirects -------------------------------------------------------------------------

@pytest.mark.parametrize("return_to", [
    "https://evil.example/", "http://evil.example:80/", "http://127.0.0.1.evil.example:80/",
    "http://localhost.evil.example:80/", "http://127.0.0.1:80@evil.example/", "http://evil.example@127.0.0.1/",
    "http://user:pw@127.0.0.1:1/", "http://[::1]:1/", "http://localhost./", "http://localhost.:80/",
    "//evil.example/", "/relative", "javascript:alert(1)//127.0.0.1:1", "data:text/html,hi", "http://127.0.0.1/",
    "http://127.0.0.1:1/x?next=https://evil.example", "http://127.0.0.1:1/#https://evil.example",
    "http:\\\\evil.example\\", "https://127.0.0.1:1/", "ftp://127.0.0.1:1/",
])
def test_return_to_cannot_send_the_browser_anywhere_but_loopback(signed_in_hub, return_to):
    hub = signed_in_hub
    r = ask(hub, return_to=return_to)
    if r.status_code == 200:
        # Accepted only if the browser then lands on this machine's loopback.
        browser, page = signed_in_page(hub, "nora@example.com", r.json())
        done = answer(browser, page, hub.url, "deny")
        where = urlsplit(done.headers.get("location", hub.url))
        assert where.scheme == "http" and where.hostname in ("127.0.0.1", "localhost") and not where.username \
            and not where.query and not where.fragment, done.headers.get("location")
    else:
        assert r.status_code == 400 and "device_code" not in r.text
    assert devices_in_db(hub) == []


def test_the_enroll_page_redirects_only_to_the_idp(signed_in_hub):
    hub = signed_in_hub
    asked = ask(hub).json()
    issuer = None
    for typed in (asked["user_code"], asked["user_code"].lower(), asked["user_code"].replace("-", " ")):
        r = httpx.get(f"{hub.url}/enroll", params={"user_code": typed})
        assert r.status_code == 302
        where = urlsplit(r.headers["location"])
        issuer = issuer or (where.scheme, where.netloc)
        assert (where.scheme, where.netloc) == issuer and where.netloc != urlsplit(hub.url).netloc
    for junk in ("https://evil.example/", "<script>", "BCDF-GHJK%0d%0aLocation:%20https://evil.example"):
        r = httpx.get(f"{hub.url}/enroll", params={"user_code": junk, "return_to": "https://evil.example/"})
        assert r.status_code in (400, 404) and "location" not in r.headers and "<script>" not in r.text


# --- guessing and flooding ---------------------------------------------------------------

def test_guessing_user_codes_gives_no_real_chance_at_a_waiting_code(signed_in_hub):
    """GET /enroll answers an unknown code 404 and a waiting one with a redirect to the IdP:
    an oracle. With the hub's most waiting codes (1000) in a code's ten minutes, the chance
    that one unauthenticated client hits one must stay negligible (RFC 8628 §5.1: limit
    guesses)."""
    hub = signed_in_hub
    alphabet = "BCDFGHJKLMNPQRSTVWXZ"
    import random
    guesses = ["".join(random.choice(alphabet) for _ in range(8)) for _ in range(600)]
    answered = []
    client = httpx.Client()
    for g in guesses:
        answered.append(client.get(f"{hub.url}/enroll", params={"user_code": g}).status_code)
    looked_up = sum(1 for s in answered if s in (302, 404))
    # The hub looks up 30 wrong codes a minute from one address and answers the rest 429:
    # ten minutes of guessing at 1000 waiting codes hit one with a chance of 300 * 1000 / 20^8.
    assert looked_up <= 30 and answered.count(429) == len(guesses) - looked_up, answered[:40]
    chance = 30 * 10 * 1000 / len(alphabet) ** 8
    assert chance < 1e-4


def test_a_flood_of_device_authorizations_does_not_lock_people_out(signed_in_hub):
    """Anyone may ask; the hub caps waiting enrollments at 1000 for everyone. One client
    asking 1000 times must not stop a genuine device from getting a code."""
    hub = signed_in_hub
    client = httpx.Client()
    statuses = [client.post(f"{hub.url}/v1/enroll/device_authorization", json={"name": f"junk{i}"}).status_code
                for i in range(1000)]
    with db(hub) as c:
        (waiting,) = c.execute("SELECT count(*) FROM device_authorizations").fetchone()
    assert waiting <= 1000, "the table is bounded"
    # One address holds at most 100 of the 1000 places: the other 900 stay for everyone
    # else (every client of this test shares 127.0.0.1, so a second address is not tried).
    assert statuses.count(200) == 100 and statuses.count(503) == 900, statuses[:3]
    assert waiting == 100


def test_a_flood_of_enroll_page_visits_does_not_lock_staff_out(signed_in_hub):
    """GET /enroll?user_code=<one waiting code> is unauthenticated, ungated, and stores a
    pending sign-in each time; 10,000 of those fill oidc_pending for every person."""
    hub = signed_in_hub
    code = ask(hub).json()["user_code"]
    stop = threading.Event()
    counts = {"302": 0, "other": 0}

    def visit(n: int):
        c = httpx.Client()
        for _ in range(n):
            if stop.is_set():
                return
            s = c.get(f"{hub.url}/enroll", params={"user_code": code}).status_code
            counts["302" if s == 302 else "other"] += 1
            if s == 503:
                stop.set()

    threads = [threading.Thread(target=visit, args=(2600,)) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    browser, signed = sign_in(hub, "ana@example.com")
    assert signed.status_code == 200, (f"after {counts} visits to one code's page, staff sign-in answers "
                                       f"{signed.status_code}: {signed.text[:200]}")


# --- device credentials: A binding B, revoked, rebinding -------------------------------------

def test_device_a_credential_cannot_bind_device_b(signed_in_hub):
    hub = signed_in_hub
    a_id, a = token_device(hub, "device-a")
    b_id, b = token_device(hub, "device-b")
    asked = ask(hub, name="device-b", credential=a, bind_device=b_id, device_id=b_id, device=b_id).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    answer(browser, page, hub.url, "approve")
    got = poll(hub, asked["device_code"]).json()
    assert got["device_id"] == a_id and "credential" not in got
    assert whom(hub, b).json()["user"] is None and whom(hub, b).json()["user_verified"] is False
    assert whom(hub, a).json()["user"] == "nora@example.com"
    # B still may not speak for Nora.
    refused = send(hub, b, record("b-local", "nora@example.com", True))
    assert refused.status_code == 422
    assert not [r for r in hub.records() if r["user"] == "nora@example.com"]
    # A garbage or staff credential asks for nothing.
    for cred in ("csd_" + "0" * 64, hub.admin):
        r = ask(hub, credential=cred)
        assert r.status_code == 401 and "device_code" not in r.text


def test_a_revoked_device_can_neither_ask_nor_be_bound_nor_send(signed_in_hub):
    hub = signed_in_hub
    dev, cred = token_device(hub, "lost-laptop")
    # It asked to be bound while still good; then it was revoked; then someone approved.
    asked = ask(hub, name="lost-laptop", credential=cred).json()
    revoke(hub, dev)
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    # The hub no longer offers to approve it; had it, the poll would still be refused.
    assert page.status_code == 403 and "revoked" in page.text
    got = poll(hub, asked["device_code"])
    assert got.status_code == 400 and got.json()["error"] in ("invalid_grant", "authorization_pending")
    assert devices_in_db(hub)[0][2] is None, "not bound to Nora"
    # Its credential opens nothing from now on.
    again = ask(hub, name="lost-laptop", credential=cred)
    assert again.status_code == 401 and "device_code" not in again.text
    assert whom(hub, cred).status_code == 401
    r = send(hub, cred, record("lost-local", "raw", False))
    assert r.status_code == 401
    assert hub.records() == []


def test_a_device_bound_to_one_person_is_not_rebound_to_another(signed_in_hub):
    """Nora's device (bound to her by sign-in) asks again with its credential and gets Ana
    (phished, or colluding) to approve. The page says only 'already enrolled with this hub,
    asks to be bound to you', never that it is Nora's; if the hub then rebinds, everything
    Nora does from it is recorded as Ana's, verified, and no alert says so."""
    hub = signed_in_hub
    nora = raw_device(hub, "nora@example.com")
    asked = ask(hub, name="ana-laptop", os_user="ana", credential=nora).json()
    browser, page = signed_in_page(hub, "ana@example.com", asked)
    # Ana is told whose device it is and offered nothing to approve.
    assert page.status_code == 403 and "bound to nora@example.com" in page.text and "confirm" not in page.text
    poll(hub, asked["device_code"])
    assert whom(hub, nora).json()["user"] == "nora@example.com", "Nora's device now speaks for Ana, verified"
    assert send(hub, nora, record("nora-local", "ana@example.com", True)).status_code == 422
    assert not [r for r in hub.records() if r["user"] == "ana@example.com"]


async def test_records_made_before_a_rebinding_still_reach_the_hub(make_gateway, tmp_path, signed_in_hub):
    """A device bound to Nora has calls recorded as hers, not yet synced; it is bound again
    (to Ana). Whatever the hub decides about the rebinding, Nora's pending records must
    still arrive: a batch holding them must not be refused for ever."""
    hub = signed_in_hub
    # No background sync in between: Nora's calls are still pending when Ana approves.
    gw = make_gateway({"memory": memory_server(tmp_path / "m.json")}, policy={"allow": ["mcp__memory"]},
                      sync={"interval_secs": 3600})
    enroll_by_code(gw, hub, "nora@example.com")
    await one_call(gw, "nora-before")
    assert not [r for r in hub.records() if r["kind"] == "call"], "nothing synced yet"
    enrolling = Enrolling(gw, hub.url, "--no-browser", "--name", "laptop-of-nora")
    browser = person("ana@example.com")
    page = confirm_page(browser, enrolling.address(), hub.url)
    assert page.status_code == 403, "Ana is not offered Nora's device"
    enrolling.proc.kill()
    enrolling.proc.wait(10)
    await one_call(gw, "after")
    gw.cli("sync", "--now", check=False)
    gw.cli("sync", "--now", check=False)
    local = {r["id"] for r in gw.audit() if r["kind"] == "call"}
    remote = {r["id"] for r in hub.records() if r["kind"] == "call"}
    assert local <= remote, (f"{len(local - remote)} of {len(local)} calls never reach the hub; alerts: "
                             f"{[a['detail'][:160] for a in hub.alerts()]}")


def test_a_device_it_assigned_to_one_person_is_not_bound_to_another(signed_in_hub):
    """IT enrolled a laptop by token for Ana ('the hub stores the device's records as this
    user's, whatever they claim'). Its holder gets Nora to approve a binding: the hub must
    not make Nora the verified person of Ana's laptop behind IT's assignment."""
    hub = signed_in_hub
    dev, cred = token_device(hub, "ana-mdm-laptop", user="ana@example.com")
    asked = ask(hub, name="ana-mdm-laptop", os_user="ana", credential=cred).json()
    browser, page = signed_in_page(hub, "nora@example.com", asked)
    assert page.status_code == 403 and "IT assigned this device to ana@example.com" in page.text
    poll(hub, asked["device_code"])
    me = whom(hub, cred).json()
    assert me["user"] in (None, "ana@example.com"), f"IT's laptop for Ana is now verified as {me['user']}"


async def test_a_laptop_enrolled_again_after_revocation_still_reaches_the_hub(make_gateway, tmp_path,
                                                                               signed_in_hub):
    """A revoked laptop 'keeps its local policy until enrolled again'. Enrolled again (a
    new token from IT), its new records carry the same local device id, which the revoked
    device's row still holds: claims_refused takes that for 'another enrolled device' and
    refuses every batch for ever."""
    hub = signed_in_hub
    gw = memory_gateway(make_gateway, tmp_path)
    gw.cli("enroll", hub.url, hub.enrollment_token(), "--name", "laptop")
    await one_call(gw, "first")
    gw.cli("sync", "--now")
    first = [r for r in hub.records() if r["tool"] == "create_entities"]
    assert len(first) == 1
    revoke(hub, first[0]["device_id"])
    gw.cli("enroll", hub.url, hub.enrollment_token(), "--name", "laptop")
    await one_call(gw, "second")
    gw.cli("sync", "--now", check=False)
    names = {r["arguments"]["entities"][0]["name"] for r in hub.records() if r["tool"] == "create_entities"}
    assert "second" in names, [a["detail"][:200] for a in hub.alerts()]


# --- records claiming another person or device ------------------------------------------------

def test_no_record_is_stored_under_another_persons_name(signed_in_hub):
    hub = signed_in_hub
    nora = raw_device(hub, "nora@example.com")
    ana = raw_device(hub, "ana@example.com")
    _, unbound = token_device(hub, "unbound")
    assert send(hub, ana, record("ana-local", "ana@example.com", True)).status_code == 200
    before = {r["id"] for r in hub.records()}
    attempts = [
        (unbound, record("unbound-local", "ana@example.com", True)),            # no one bound: any verified claim
        (nora, record("nora-local", "ANA@example.com", True)),                   # case
        (nora, record("nora-local", "ana@example.com ", True)),                  # space
        (nora, record("nora-local", "ana@example.com", True, seq=5)),
        (nora, record("ana-local", "nora@example.com", True)),                   # Ana's device id
    ]
    for cred, rec in attempts:
        r = send(hub, cred, rec)
        assert r.status_code == 422, (rec["user"], rec["device"], r.status_code, r.text)
    # Unverified spellings of "true" do not make a record Ana's either.
    for verified in ("True", "TRUE", "1", "yes"):
        rec = {**record("nora-local", "ana@example.com", False), "user_verified": verified}
        send(hub, nora, rec)
    after = [r for r in hub.records() if r["id"] not in before]
    assert not [r for r in after if r["user"] == "ana@example.com" or r["device"] == "ana-local"], after
    assert not [r for r in after if r.get("user_verified") is True and r["user"] != "nora@example.com"], after


def test_no_record_names_another_person_as_its_owner(signed_in_hub):
    """`owner` (an agent's accountable owner, an email) is stored and served (GET
    /v1/audit?owner=, CSV, OTLP, HEC) as the device sent it, checked against nothing:
    Nora's device can file records that a search for Ana's accountability finds."""
    hub = signed_in_hub
    nora = raw_device(hub, "nora@example.com")
    forged = {**record("nora-local", "nora@example.com", True), "owner": "ana@example.com"}
    send(hub, nora, forged)
    owned = hub.get("/v1/audit", owner="ana@example.com").json()
    assert owned == [], f"records from Nora's device name Ana as their owner: {owned}"


def test_a_device_bound_since_enrollment_cannot_shed_its_person_by_saying_unverified(signed_in_hub):
    """Nora's device was enrolled by her sign-in: it has no history before her. She (the
    employee covering her tracks: hub.json is hers to edit, the credential is in her
    keychain) sends records marked unverified under her OS account. The hub stores them
    as the OS account's, unverified, with no alert: a search for Nora's records misses
    them, though the hub knows the device answers for her."""
    hub = signed_in_hub
    nora = raw_device(hub, "nora@example.com")
    assert send(hub, nora, record("nora-local", "nora@example.com", True)).status_code == 200
    hidden = record("nora-local", "raw", False, seq=2)
    send(hub, nora, hidden)
    stored = [r for r in hub.records() if r["id"] == hidden["id"]]
    found = [r["id"] for r in hub.get("/v1/audit", user="nora@example.com").json()]
    alerted = [a for a in hub.alerts() if a["kind"] == "identity" and hidden["id"] in a["detail"]]
    assert not stored or hidden["id"] in found or alerted, (
        f"stored as {[(r['user'], r['user_verified']) for r in stored]}, not under nora@example.com, no alert")


# --- secrets -------------------------------------------------------------------------------

def test_no_device_code_confirmation_or_credential_leaks(make_gateway, tmp_path, signed_in_hub):
    hub = signed_in_hub
    gw = memory_gateway(make_gateway, tmp_path)
    gw.cli("enroll", hub.url, hub.enrollment_token(), "--name", "mdm")
    enrolling = Enrolling(gw, hub.url, "--no-browser", "--name", "laptop")
    browser = person("nora@example.com")
    page = confirm_page(browser, enrolling.address(), hub.url)
    answer(browser, page, hub.url, "approve")
    code, out, err = enrolling.finish()
    assert code == 0, err
    # And by the API, where we know each secret.
    asked = ask(hub).json()
    b2, p2 = signed_in_page(hub, "ana@example.com", asked)
    confirm_token = confirmation(p2)
    answer(b2, p2, hub.url, "approve")
    credential = poll(hub, asked["device_code"]).json()["credential"]
    secrets = [asked["device_code"], confirm_token, credential]
    gw.cli("sync", "--now")
    places = {
        "hub log": (hub.tmp / "hub.log").read_bytes(),
        "hub database": b"".join(p.read_bytes() for p in (hub.tmp / "hub-home").glob("hub.db*")),
        "admin log": hub.get("/v1/admin-log").content,
        "alerts": hub.get("/v1/alerts").content,
        "audit": hub.get("/v1/audit").content,
        "gateway log": gw.log_path.read_bytes(),
        "enroll output": (out + err).encode(),
        "whoami": gw.cli("whoami", "--json").stdout.encode(),
    }
    for f in gw.home.rglob("*"):
        if f.is_file():
            places[str(f)] = f.read_bytes()
    for where, data in places.items():
        for s in secrets:
            assert s.encode() not in data, (where, s[:6])
        # The CLI-run enrollment's secrets, by their prefixes.
        for prefix in (rb"csdc_[0-9a-zA-Z]", rb"csdk_[0-9a-zA-Z]", rb"csd_[0-9a-zA-Z]"):
            assert not re.search(prefix, data), (where, prefix)
