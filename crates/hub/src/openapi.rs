//! The hub API's OpenAPI 3.1 document: served at `/v1/openapi.json` and checked in at
//! `docs/hub-openapi.json` (a test keeps the two equal and the paths equal to the routes).

use serde_json::{json, Value};

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } } })
}

/// The document.
pub fn document() -> Value {
    let staff = json!([{ "apiToken": [] }, { "signInCookie": [] }]);
    let device = json!([{ "deviceCredential": [] }]);
    let unauthorized = error_response("Missing, unknown, expired or revoked credential");
    let forbidden = error_response("The API token's role does not permit this; the message names the roles that do");
    let roles = |r: &[&str]| json!(r);
    let fleet = roles(&["viewer", "auditor", "approver", "policy-admin", "admin"]);
    let auditing = roles(&["auditor", "admin"]);
    let admin_only = roles(&["admin"]);
    let api_token = json!({ "type": "object", "description": "An API token as the hub keeps it: never its secret",
        "properties": { "id": { "type": "string" }, "name": { "type": "string" },
            "role": { "type": "string", "enum": ["viewer", "auditor", "approver", "policy-admin", "admin"] },
            "created_at": { "type": "string", "format": "date-time" }, "created_by": { "type": "string" },
            "expires_at": { "type": ["string", "null"], "format": "date-time" }, "revoked_at": { "type": ["string", "null"], "format": "date-time" } } });
    let too_large = error_response("The body is larger than this route's limit after decompression (nothing was read before the credential was checked)");
    let filters: Vec<Value> = ["user", "device", "client", "server", "tool", "decision", "trace_id", "owner", "approver"]
        .iter()
        .map(|f| json!({ "name": f, "in": "query", "required": false, "schema": { "type": "string" },
                         "description": format!("Only records whose {f} is exactly this") }))
        .chain([
            json!({ "name": "user_verified", "in": "query", "required": false, "schema": { "type": "boolean" },
                    "description": "`true`: only records whose user is a verified identity; `false`: only records whose device said it is not (records from devices older than the field match neither)" }),
            json!({ "name": "from", "in": "query", "schema": { "type": "string", "format": "date-time" }, "description": "Records at or after this time" }),
            json!({ "name": "to", "in": "query", "schema": { "type": "string", "format": "date-time" }, "description": "Records before this time" }),
            json!({ "name": "limit", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 100000, "default": 1000 } }),
            json!({ "name": "format", "in": "query", "schema": { "type": "string", "enum": ["json", "csv"], "default": "json" } }),
            json!({ "name": "order", "in": "query", "schema": { "type": "string", "enum": ["oldest", "newest"], "default": "oldest" },
                    "description": "`newest`: newest first, a page at a time; a full page's `X-Next-Cursor` header starts the next" }),
            json!({ "name": "before", "in": "query", "schema": { "type": "string" },
                    "description": "With `order=newest`: the `X-Next-Cursor` of the page before (keyset paging: every page costs the same)" }),
        ])
        .collect();
    // The records' schemas are values of their own: the document is too deep for one `json!`.
    let wire_record = json!({
        "type": "object",
        "description": "A journal record as stored on the device; `arguments` is the stored JSON text, so the hub can recompute `hash`.",
        "required": ["seq", "id", "time", "kind", "user", "device", "decision"],
        "properties": {
            "seq": { "type": "integer" }, "id": { "type": "string" }, "time": { "type": "string", "format": "date-time" },
            "kind": { "type": "string", "enum": ["call", "rejected", "policy"] }, "user": { "type": "string" },
            "device": { "type": "string" }, "client": { "type": ["string", "null"] }, "client_name": { "type": ["string", "null"] },
            "client_version": { "type": ["string", "null"] }, "session": { "type": ["string", "null"] },
            "server": { "type": ["string", "null"] }, "tool": { "type": ["string", "null"] }, "method": { "type": ["string", "null"] },
            "arguments": { "type": ["string", "null"] }, "decision": { "type": "string", "enum": ["allow", "ask", "deny"] },
            "rule": { "type": ["string", "null"] }, "reason": { "type": ["string", "null"] }, "approval": { "type": ["string", "null"] },
            "policy_version": { "type": ["string", "null"] }, "class": { "type": ["string", "null"] }, "label": { "type": ["string", "null"] },
            "grant_id": { "type": ["string", "null"], "description": "The grant behind the call: the one its approval issued, or the one that let it run; absent when none" },
            "grant_length": { "type": ["string", "null"], "enum": ["session", "15m", "1h", "today", null], "description": "Set when the call's approval issued the grant: how long it lasts from `time`" },
            "trace_id": { "type": ["string", "null"], "pattern": "^[0-9a-f]{32}$", "description": "The W3C trace id of the request's `params._meta.traceparent`, when it carried a valid one; absent when none" },
            "user_verified": { "type": ["string", "null"], "enum": ["true", "false", null], "description": "As stored: whether `user` is a verified identity (the email the person signed in with, or `agent:NAME` for an enterprise agent) rather than the OS account; absent when unset" },
            "os_user": { "type": ["string", "null"], "description": "The OS account running the gateway; absent when unset" },
            "owner": { "type": ["string", "null"], "description": "An agent's accountable owner (an email); set only for agents" },
            "approver": { "type": ["string", "null"], "description": "Who answered a call that asked: `self`, or the verified identity who answered a routed approval; absent when none" },
            "request_id": { "type": ["string", "null"], "description": "The routed approval request that answered it; absent when none" },
            "prev_hash": { "type": ["string", "null"] }, "hash": { "type": ["string", "null"] }
        }
    });
    let audit_record = json!({
        "type": "object", "description": "The fields of `countersign audit export`, plus `device_id` and `seq`.", "additionalProperties": true,
        "properties": {
            "user_verified": { "type": ["boolean", "null"], "description": "As the device recorded it: whether the record's user was a verified identity (the email the person signed in with, or `agent:NAME` for an enterprise agent) rather than the OS account; null for records from devices older than the field" },
            "os_user": { "type": ["string", "null"], "description": "The OS account running the gateway" },
            "owner": { "type": ["string", "null"], "description": "An agent's accountable owner (an email); set only for agents" },
            "approver": { "type": ["string", "null"], "description": "Who answered: `self`, or the verified identity who answered a routed approval" },
            "request_id": { "type": ["string", "null"], "description": "The routed approval request that answered it" }
        }
    });
    let mut doc = json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Countersign hub",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Audit ingestion from enrolled devices, audit queries and alerts, signed policy publishing."
        },
        "components": {
            "securitySchemes": {
                "signInCookie": { "type": "apiKey", "in": "cookie", "name": "countersign_hub_session", "description": "A staff sign-in with the company's IdP (/v1/auth/login); the roles are those the person's groups hold. A request other than GET with it must carry the hub's own Origin" },
                "apiToken": { "type": "http", "scheme": "bearer", "description": "An API token with a role (`countersign-hub api-token create --role ROLE`); each operation's `x-roles` lists the roles it admits. The break-glass admin token (off unless the hub was started with its SHA-256) is admitted as `admin`, and every use raises a `break-glass` alert" },
                "deviceCredential": { "type": "http", "scheme": "bearer", "description": "The credential a device received at enrollment" }
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error"], "properties": { "error": { "type": "string" } } },
                "WireRecord": wire_record,
                "WireOutcome": {
                    "type": "object", "required": ["record_id", "time", "outcome"],
                    "properties": { "record_id": { "type": "string" }, "time": { "type": "string" }, "outcome": { "type": "string" },
                                    "duration_ms": { "type": ["number", "null"] }, "detail": { "type": ["string", "null"] }, "hash": { "type": ["string", "null"] } }
                },
                "Batch": { "type": "object", "properties": {
                    "records": { "type": "array", "items": { "$ref": "#/components/schemas/WireRecord" } },
                    "outcomes": { "type": "array", "items": { "$ref": "#/components/schemas/WireOutcome" } },
                    "grant_columns": { "type": "boolean", "description": "The records name their grant in grant_id and grant_length (absent from older devices, whose grants are read from the reason)" } } },
                "Ack": { "type": "object", "properties": {
                    "records": { "type": "array", "items": { "type": "string" }, "description": "Ids the hub now holds (new or already held)" },
                    "outcomes": { "type": "array", "items": { "type": "string" } },
                    "last_seq": { "type": ["integer", "null"] },
                    "last_hash": { "type": ["string", "null"], "description": "The newest hash of this device's chain the hub holds" },
                    "checkpoint": { "type": ["object", "null"], "description": "The hub's signed statement that it holds the chain up to last_seq (device, seq, hash, time, signature); absent without a signing key" } } },
                "AuditRecord": audit_record,
                "Bundle": { "type": "object", "required": ["version", "document", "signature"], "properties": {
                    "version": { "type": "integer" }, "document": { "type": "string", "description": "The bundle TOML" },
                    "signature": { "type": "string", "description": "Its minisign signature" }, "published_at": { "type": "string" } } }
            }
        },
        "paths": {
            "/healthz": { "get": { "summary": "Liveness", "responses": { "200": { "description": "ok" } } } },
            "/v1/openapi.json": { "get": { "summary": "This document", "responses": { "200": { "description": "The OpenAPI document" } } } },
            "/v1/enroll": { "post": {
                "summary": "Trade a single-use enrollment token for a device credential",
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["token", "name"],
                    "properties": { "token": { "type": "string" }, "name": { "type": "string" } } } } } },
                "responses": { "200": { "description": "Enrolled", "content": { "application/json": { "schema": { "type": "object",
                    "properties": { "device_id": { "type": "string" }, "credential": { "type": "string" } } } } } },
                               "401": error_response("The token is unknown, used or expired"), "413": too_large.clone() } } },
            "/v1/ingest": { "post": {
                "summary": "Send a batch of records (gzip with Content-Encoding: gzip, or plain JSON)",
                "security": device,
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Batch" } } } },
                "responses": { "200": { "description": "Stored; duplicates are acknowledged again", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Ack" } } } },
                               "400": error_response("Not a batch"), "401": unauthorized, "413": too_large.clone(),
                               "422": error_response("A record without a hash from a device whose chain has begun") } } },
            "/v1/checkpoint": { "get": {
                "summary": "The newest checkpoint the hub signed for the calling device (its chain head, signed with the hub's key)",
                "security": device,
                "responses": { "200": { "description": "The checkpoint: device, seq, hash, time, signature" },
                               "404": error_response("No checkpoint yet"), "401": unauthorized } } },
            "/v1/audit": { "get": {
                "summary": "Audit records, filtered; JSON or CSV (a cell that would start a spreadsheet formula begins with a single quote)", "security": staff, "x-roles": auditing, "parameters": filters,
                "responses": { "200": { "description": "Records, oldest first", "content": {
                    "application/json": { "schema": { "type": "array", "items": { "$ref": "#/components/schemas/AuditRecord" } } },
                    "text/csv": { "schema": { "type": "string" } } } }, "401": unauthorized, "403": forbidden } } },
            "/v1/alerts": { "get": { "summary": "Gaps, broken chains, records whose hash does not hold, uses of the break-glass token", "security": staff, "x-roles": fleet,
                "responses": { "200": { "description": "Alerts, oldest first" }, "401": unauthorized, "403": forbidden } } },
            "/v1/devices": { "get": { "summary": "Enrolled devices and the newest record of each chain", "security": staff, "x-roles": fleet,
                "responses": { "200": { "description": "Devices" }, "401": unauthorized, "403": forbidden } } },
            "/v1/entitlements": { "get": { "summary": "For every identity: servers and tools used, grants held (access review)",
                "security": staff, "x-roles": auditing, "parameters": [ { "name": "format", "in": "query", "schema": { "type": "string", "enum": ["json", "csv"] } } ],
                "responses": { "200": { "description": "Identities, or CSV rows per identity, server and tool (a cell that would start a spreadsheet formula begins with a single quote)" }, "401": unauthorized, "403": forbidden } } },
            "/v1/admin-log": { "get": { "summary": "Every staff action with who did it (`actor`: an API token by name and id, `break-glass`, or the hub's CLI), oldest first", "security": staff, "x-roles": auditing,
                "responses": { "200": { "description": "Admin actions" }, "401": unauthorized, "403": forbidden } } },
            "/v1/enrollment-tokens": { "post": { "summary": "Make a single-use enrollment token", "security": staff, "x-roles": admin_only,
                "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object",
                    "properties": { "hours": { "type": "integer", "minimum": 1, "maximum": 2160, "default": 168 },
                                    "user": { "type": "string", "description": "The person whose device enrolls with it; the device's records are stored as this user's" } } } } } },
                "responses": { "200": { "description": "The token (shown once)" }, "401": unauthorized, "403": forbidden, "413": too_large.clone() } } },
            "/v1/policy": { "put": { "summary": "Publish a policy: a TOML document with one `policy` table (a [policy] header, dotted keys or an inline table); the hub builds the bundle from it, checks the signed bundle as a laptop will and publishes it as the next version",
                "security": staff, "x-roles": roles(&["policy-admin", "admin"]), "requestBody": { "required": true, "content": { "text/plain": { "schema": { "type": "string" } } } },
                "responses": { "200": { "description": "Published" }, "401": unauthorized, "403": forbidden, "413": too_large.clone(),
                               "422": error_response("Refused, with the reason a laptop would give; the published version is unchanged") } } },
            "/v1/policy/bundle": { "get": { "summary": "The newest signed bundle; long poll with If-None-Match and wait", "security": device,
                "parameters": [
                    { "name": "wait", "in": "query", "schema": { "type": "integer", "minimum": 0, "maximum": 30 }, "description": "Seconds to wait for a newer bundle" },
                    { "name": "If-None-Match", "in": "header", "schema": { "type": "string" }, "description": "The version held, quoted" } ],
                "responses": { "200": { "description": "A newer bundle", "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Bundle" } } } },
                               "304": { "description": "Nothing newer within the wait" }, "404": { "description": "Nothing published yet" }, "401": unauthorized } } },
            "/v1/api-tokens": {
                "get": { "summary": "Every API token, newest first, without secrets", "security": staff, "x-roles": admin_only,
                    "responses": { "200": { "description": "Tokens", "content": { "application/json": { "schema": { "type": "array", "items": api_token } } } },
                                   "401": unauthorized, "403": forbidden } },
                "post": { "summary": "Make an API token with one role", "security": staff, "x-roles": admin_only,
                    "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["role", "name"], "additionalProperties": false,
                        "properties": { "role": { "type": "string", "enum": ["viewer", "auditor", "approver", "policy-admin", "admin"] },
                                        "name": { "type": "string", "description": "What it is for" },
                                        "expires": { "type": "string", "description": "Its lifetime (`30d`, `12h`; at most 366 days); without it, until revoked" } } } } } },
                    "responses": { "200": { "description": "`token` (shown once) and `api_token`" }, "400": error_response("An unknown role, a lifetime that cannot be read or is too long, no name"),
                                   "401": unauthorized, "403": forbidden, "413": too_large } } },
            "/v1/api-tokens/{id}/revoke": { "post": { "summary": "Revoke an API token: it stops working on its next request", "security": staff, "x-roles": admin_only,
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
                "responses": { "200": { "description": "The token as it now is" }, "404": error_response("No such token"), "401": unauthorized.clone(), "403": forbidden.clone() } } },
            "/v1/auth/login": { "get": { "summary": "Staff sign-in: redirects the browser to the company's IdP (authorization code with PKCE S256, state and nonce)",
                "responses": { "302": { "description": "To the IdP" }, "501": error_response("Sign-in is not configured ([oidc] in hub.toml)"),
                               "502": error_response("The IdP could not be reached or described itself wrongly") } } },
            "/v1/auth/callback": { "get": { "summary": "Where the IdP sends the browser back: the ID token is verified (signature, iss, aud, exp, nonce), the person's groups are mapped to roles (`[roles]` in hub.toml) and a session cookie is set (HttpOnly, SameSite=Strict, Secure on https). Refusals are alerts (`sign-in-refused`) and admin log lines",
                "parameters": [ { "name": "code", "in": "query", "schema": { "type": "string" } }, { "name": "state", "in": "query", "schema": { "type": "string" } },
                                { "name": "error", "in": "query", "schema": { "type": "string" } } ],
                "responses": { "200": { "description": "Signed in: `signed_in` (email), `name`, `roles`, `expires_unix`; the cookie `countersign_hub_session`" },
                               "400": error_response("No state, or a sign-in that is unknown, used or older than ten minutes"),
                               "401": error_response("The IdP refused, or its ID token did not verify"),
                               "403": error_response("None of the person's groups holds a role"), "501": error_response("Sign-in is not configured") } } },
            "/v1/auth/logout": { "post": { "summary": "Ends the caller's sign-in session (with the cookie, the request's Origin must be the hub's)", "security": staff, "x-roles": fleet,
                "responses": { "200": { "description": "Signed out; the cookie cleared" }, "400": error_response("Not a signed-in session"), "401": unauthorized.clone(), "403": forbidden.clone() } } },
            "/v1/auth/whoami": { "get": { "summary": "Who the caller is (`actor`) and their roles", "security": staff, "x-roles": fleet,
                "responses": { "200": { "description": "`actor`, `roles`" }, "401": unauthorized, "403": forbidden } } }
        }
    });
    // The console's policy routes: a value of their own (the document is too deep for one `json!`).
    let policy_routes = json!({
            "/v1/policy/history": { "get": { "summary": "Every published policy version, newest first", "security": staff, "x-roles": fleet.clone(),
                "responses": { "200": { "description": "Versions and when each was published" }, "401": unauthorized, "403": forbidden } } },
            "/v1/policy/versions/{id}": { "get": { "summary": "One published version's policy text (to compare, or to publish again: a roll back is a new version)", "security": staff, "x-roles": fleet.clone(),
                "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "integer" } } ],
                "responses": { "200": { "description": "The version's text" }, "401": unauthorized, "403": forbidden, "404": error_response("No such version") } } },
            "/v1/policy/check": { "post": { "summary": "Check a draft as publishing would (the laptop's own parser and errors); nothing is kept",
                "security": staff, "x-roles": roles(&["policy-admin", "admin"]), "requestBody": { "required": true, "content": { "text/plain": { "schema": { "type": "string" } } } },
                "responses": { "200": { "description": "The draft would publish" }, "401": unauthorized, "403": forbidden, "413": too_large.clone(),
                               "422": error_response("The reason a laptop would refuse it") } } },
            "/v1/policy/preview": { "post": { "summary": "Impact preview: the recorded calls of the last `days` days decided again under the draft and under the published policy (each as the bundle layer); the calls whose decision changes, by change, tool and person, with examples (never arguments)",
                "security": staff, "x-roles": roles(&["policy-admin", "admin"]), "requestBody": { "required": true, "content": { "text/plain": { "schema": { "type": "string" } } } },
                "parameters": [ { "name": "days", "in": "query", "schema": { "type": "integer", "minimum": 1, "maximum": 90, "default": 7 } } ],
                "responses": { "200": { "description": "The impact report" }, "401": unauthorized, "403": forbidden, "413": too_large.clone(),
                               "422": error_response("The draft does not compile") } } }
    });
    if let (Some(paths), Some(more)) = (doc["paths"].as_object_mut(), policy_routes.as_object()) {
        paths.extend(more.clone());
    }
    doc["paths"]["/v1/alerts/{id}/acknowledge"] = json!({ "post": { "summary": "Acknowledge an alert with a note (once; in the admin log); it stays, no longer open",
        "security": staff, "x-roles": roles(&["auditor", "admin"]),
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["note"], "properties": { "note": { "type": "string" } } } } } },
        "responses": { "200": { "description": "Acknowledged" }, "400": error_response("No note"), "401": unauthorized, "403": forbidden, "409": error_response("Unknown, or acknowledged already") } } });
    doc["paths"]["/v1/my-approvals"] = json!({ "get": { "summary": "The console: routed approval requests waiting for the signed-in person (or their groups), with full arguments and each request's nonce; an API token is nobody and gets 403",
        "security": staff, "x-roles": roles(&["viewer", "auditor", "approver", "policy-admin", "admin", "scim"]),
        "responses": { "200": { "description": "Requests, oldest first" }, "401": unauthorized, "403": forbidden } } });
    doc["paths"]["/v1/my-approvals/{id}"] = json!({ "post": { "summary": "The console: the signed-in person answers a request, bound to its nonce and arguments hash, with every check a device's answer gets (eligible now, never the asker under separation of duties, before the deadline; the first valid answer wins)",
        "security": staff, "x-roles": roles(&["viewer", "auditor", "approver", "policy-admin", "admin", "scim"]),
        "parameters": [ { "name": "id", "in": "path", "required": true, "schema": { "type": "string" } } ],
        "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["verdict", "nonce", "args_hash"],
            "properties": { "verdict": { "type": "string", "enum": ["allow", "deny"] }, "nonce": { "type": "string" }, "args_hash": { "type": "string" } } } } } },
        "responses": { "200": { "description": "Answered" }, "401": unauthorized, "403": forbidden, "409": error_response("Wrong nonce or other arguments"), "410": error_response("Answered, withdrawn or expired already") } } });
    doc["paths"]["/v1/policy"]["get"] = json!({ "summary": "The published policy's text, version and time", "security": staff, "x-roles": fleet,
        "responses": { "200": { "description": "The published policy" }, "401": unauthorized, "403": forbidden, "404": error_response("Nothing published yet") } });
    for more in [enrollment_paths(), agent_paths(), approval_paths(), scim_paths()] {
        if let (Some(paths), Value::Object(more)) = (doc["paths"].as_object_mut(), more) {
            paths.extend(more);
        }
    }
    doc
}

/// Routed approvals: requests from devices, answered from approvers' devices.
fn approval_paths() -> Value {
    let device = json!([{ "deviceCredential": [] }]);
    let id = json!({ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } });
    let wait = json!({ "name": "wait", "in": "query", "schema": { "type": "integer", "maximum": 30 }, "description": "Seconds to hold the long poll" });
    let request = json!({ "type": "object", "required": ["id", "client", "server", "tool", "class", "arguments", "args_hash", "reason", "policy_version", "approver", "self_approval", "wait_secs"], "properties": {
        "id": { "type": "string", "pattern": "^[A-Za-z0-9-]{1,64}$" }, "client": { "type": "string" }, "server": { "type": "string" }, "tool": { "type": "string" },
        "class": { "type": "string" }, "arguments": { "description": "As the device's records keep them (redacted)" }, "args_hash": { "type": "string" },
        "rule": { "type": "string" }, "reason": { "type": "string" }, "policy_version": { "type": "string" },
        "approver": { "type": "string", "description": "owner, manager, an email or group:NAME" }, "self_approval": { "type": "boolean" }, "wait_secs": { "type": "integer" } } });
    let answer = json!({ "type": "object", "required": ["verdict", "nonce", "args_hash"], "properties": {
        "verdict": { "enum": ["allow", "deny"] }, "nonce": { "type": "string" }, "args_hash": { "type": "string" } } });
    json!({
        "/v1/approvals": { "post": { "summary": "Raise a routed approval request for a call policy routes to someone else; who asks is the device's verified person or agent; in the admin log", "security": device,
            "requestBody": { "required": true, "content": { "application/json": { "schema": request } } },
            "responses": { "201": { "description": "`id`, `state`, `approver`, `eligible`, `deadline_ms`" }, "400": error_response("Not a request"),
                           "403": error_response("The device is not bound to a verified identity, or its agent is suspended"),
                           "422": error_response("Nobody can answer: no owner, no manager known, an empty group") } } },
        "/v1/approvals/waiting": { "get": { "summary": "What waits for this device's person, each with its nonce; long poll with If-None-Match and wait", "security": device, "parameters": [wait],
            "responses": { "200": { "description": "`waiting`: requests" }, "304": { "description": "Nothing changed" }, "403": error_response("Not a verified person's device") } } },
        "/v1/approvals/{id}": { "get": { "summary": "The asking device's request: its state and who answered; long poll with wait", "security": device, "parameters": [id.clone(), wait],
            "responses": { "200": { "description": "`state` (pending, approved, denied, withdrawn, expired), `answered_by`" }, "404": error_response("No such request of this device") } } },
        "/v1/approvals/{id}/answer": { "post": { "summary": "Answer a request, bound to its nonce and arguments hash; the first valid answer wins; refusals in the admin log", "security": device, "parameters": [id.clone()],
            "requestBody": { "required": true, "content": { "application/json": { "schema": answer } } },
            "responses": { "200": { "description": "`state`, `answered_by`" }, "403": error_response("Not an eligible approver, the asker under separation of duties, or not a verified person's device"),
                           "409": error_response("Wrong nonce or other arguments"), "410": error_response("Answered, withdrawn or expired") } } },
        "/v1/approvals/{id}/withdraw": { "post": { "summary": "The asking device withdraws its pending request", "security": device, "parameters": [id],
            "responses": { "200": { "description": "`withdrawn`" }, "410": error_response("Not pending on this device") } } }
    })
}

/// Enterprise agents: service principals with an owner.
fn agent_paths() -> Value {
    let staff = json!([{ "apiToken": [] }, { "signInCookie": [] }]);
    let unauthorized = error_response("Missing, unknown, expired or revoked credential");
    let forbidden = error_response("The caller's role does not permit this; the message names the roles that do");
    let agent = json!({ "type": "object", "description": "An agent: id, name, owner, approvers (emails and group:NAME), purpose, review_date, created_at, created_by, suspended_at, suspended_why, review_overdue" });
    json!({
        "/v1/agents": {
            "get": { "summary": "Every agent with its owner, approvers, review date (review_overdue past it) and suspension", "security": staff, "x-roles": ["viewer", "auditor", "approver", "policy-admin", "admin"],
                "responses": { "200": { "description": "The agents", "content": { "application/json": { "schema": { "type": "array", "items": agent } } } }, "401": unauthorized, "403": forbidden } },
            "post": { "summary": "Register an agent; the answer holds its enrollment token, once (`countersign enroll HUB_URL TOKEN --agent NAME` on its host)", "security": staff, "x-roles": ["admin"],
                "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["name", "owner"], "properties": {
                    "name": { "type": "string", "pattern": "^[A-Za-z0-9._-]{1,64}$" }, "owner": { "type": "string", "format": "email" },
                    "approvers": { "type": "array", "items": { "type": "string" }, "description": "Emails or group:NAME (default: the owner)" },
                    "purpose": { "type": "string" }, "review_date": { "type": "string", "format": "date" }, "token_hours": { "type": "integer", "minimum": 1, "maximum": 720, "default": 24 } } } } } },
                "responses": { "201": { "description": "`agent` and `enrollment_token`" }, "400": error_response("A bad name, email, approver or date"),
                               "409": error_response("An agent with this name exists"), "401": unauthorized.clone(), "403": forbidden.clone() } } },
        "/v1/devices/{id}/revoke": { "post": {
            "summary": "Revoke a device: its credential opens nothing from now on (its gateway stops syncing and keeps local policy); its records stay; in the admin log",
            "security": staff, "x-roles": ["admin"],
            "parameters": [{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }],
            "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "why": { "type": "string" } } } } } },
            "responses": { "200": { "description": "`revoked`: the device id" }, "404": error_response("No such live device"), "401": unauthorized.clone(), "403": forbidden.clone() } } },
        "/v1/agents/{name}/{action}": { "post": {
            "summary": "`suspend` (body `why`), `resume` (refused while the owner is deactivated) or `transfer` (body `owner`; ends a suspension for the old owner's deactivation); each in the admin log",
            "security": staff, "x-roles": ["admin"],
            "parameters": [{ "name": "name", "in": "path", "required": true, "schema": { "type": "string" } },
                           { "name": "action", "in": "path", "required": true, "schema": { "enum": ["suspend", "resume", "transfer"] } }],
            "requestBody": { "required": false, "content": { "application/json": { "schema": { "type": "object", "properties": { "why": { "type": "string" }, "owner": { "type": "string" } } } } } },
            "responses": { "200": { "description": "The agent after the change" }, "400": error_response("No owner for a transfer, or one that is deactivated"),
                           "404": error_response("No such agent or action"), "401": unauthorized, "403": forbidden } } }
    })
}

/// SCIM 2.0 (RFC 7644) for the company's IdP: an API token of the `scim` role.
fn scim_paths() -> Value {
    let scim = json!([{ "apiToken": [] }]);
    let roles = json!(["scim", "admin"]);
    let body = json!({ "required": true, "content": { "application/scim+json": { "schema": { "type": "object" } }, "application/json": { "schema": { "type": "object" } } } });
    let id = json!([{ "name": "id", "in": "path", "required": true, "schema": { "type": "string" } }]);
    let list = json!([{ "name": "filter", "in": "query", "schema": { "type": "string" }, "description": "`ATTRIBUTE eq \"VALUE\"`" },
                      { "name": "startIndex", "in": "query", "schema": { "type": "integer" } }, { "name": "count", "in": "query", "schema": { "type": "integer" } }]);
    let answer = |what: &str| json!({ "description": what, "content": { "application/scim+json": {} } });
    let errors = |ok: &str| json!({ "200": answer(ok), "400": answer("SCIM error: a bad body or filter"), "401": answer("No bearer API token"), "403": answer("Not the scim or admin role"), "404": answer("No such resource") });
    json!({
        "/scim/v2/Users": {
            "get": { "summary": "People (filter userName, externalId or emails.value eq)", "security": scim, "x-roles": roles, "parameters": list, "responses": errors("ListResponse") },
            "post": { "summary": "Provision a person (active: false deprovisions at once)", "security": scim, "x-roles": roles, "requestBody": body, "responses": { "201": answer("The User"), "409": answer("uniqueness: userName or email exists"), "400": answer("SCIM error") } } },
        "/scim/v2/Users/{id}": {
            "get": { "summary": "A person", "security": scim, "x-roles": roles, "parameters": id, "responses": errors("The User") },
            "put": { "summary": "Replace a person; active true → false deprovisions: devices revoked, sign-ins ended, agents suspended", "security": scim, "x-roles": roles, "parameters": id, "requestBody": body, "responses": errors("The User") },
            "patch": { "summary": "PatchOp replace/add of active (boolean or \"True\"/\"False\"), displayName, userName, externalId; deactivation deprovisions", "security": scim, "x-roles": roles, "parameters": id, "requestBody": body, "responses": errors("The User") },
            "delete": { "summary": "Deprovision a person (their row kept for the audit trail)", "security": scim, "x-roles": roles, "parameters": id, "responses": { "204": { "description": "Deprovisioned" }, "404": answer("No such User") } } },
        "/scim/v2/Groups": {
            "get": { "summary": "Groups (filter displayName eq)", "security": scim, "x-roles": roles, "parameters": list, "responses": errors("ListResponse") },
            "post": { "summary": "A group with its members (people ids)", "security": scim, "x-roles": roles, "requestBody": body, "responses": { "201": answer("The Group"), "400": answer("SCIM error") } } },
        "/scim/v2/Groups/{id}": {
            "patch": { "summary": "Members added, removed (also `members[value eq \"ID\"]`) or replaced; displayName replaced", "security": scim, "x-roles": roles, "parameters": id, "requestBody": body, "responses": errors("The Group") },
            "delete": { "summary": "Delete a group", "security": scim, "x-roles": roles, "parameters": id, "responses": { "204": { "description": "Deleted" }, "404": answer("No such Group") } } }
    })
}

/// Enrollment bound to a person (RFC 8628's device authorization grant) and the device's
/// own view of who it answers for.
fn enrollment_paths() -> Value {
    let oauth_error = json!({ "description": "An OAuth error (RFC 6749 §5.2): `error` is authorization_pending, slow_down, access_denied, expired_token, invalid_grant or unsupported_grant_type; `error_description` says it in words",
        "content": { "application/json": { "schema": { "type": "object", "properties": { "error": { "type": "string" }, "error_description": { "type": "string" } } } } } });
    let html = |what: &str| json!({ "description": what, "content": { "text/html": {} } });
    json!({
        "/v1/enroll/device_authorization": { "post": {
            "summary": "A device asks to be enrolled as the person who will sign in and confirm it (RFC 8628 §3.1); with its device credential, an enrolled device asks to be bound to its person",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["name"], "properties": {
                "name": { "type": "string", "description": "The device's name as the person will see it" },
                "os_user": { "type": "string", "description": "The OS account, shown to the person" },
                "return_to": { "type": "string", "description": "http://127.0.0.1:PORT/… (or localhost): where the hub's page sends the browser once the person answered; carries nothing" } } } } } },
            "responses": { "200": { "description": "device_code (for the device alone), user_code (ABCD-EFGH), verification_uri, verification_uri_complete, expires_in, interval" },
                           "400": error_response("No name, or a return_to that is not this device's loopback"),
                           "401": error_response("A device credential was given and is unknown or revoked"),
                           "501": error_response("The hub has no [oidc] sign-in"), "503": error_response("Too many enrollments wait") } } },
        "/v1/enroll/token": { "post": {
            "summary": "The device polls (RFC 8628 §3.4); once the person approved: its credential and the person it answers for",
            "requestBody": { "required": true, "content": { "application/json": { "schema": { "type": "object", "required": ["grant_type", "device_code"], "properties": {
                "grant_type": { "const": "urn:ietf:params:oauth:grant-type:device_code" }, "device_code": { "type": "string" } } } } } },
            "responses": { "200": { "description": "device_id, user (the verified email), user_verified, and credential (absent when an enrolled device was bound)" },
                           "400": oauth_error } } },
        "/enroll": { "get": {
            "summary": "The person's page: asks for the code, or (with ?user_code=) sends the browser to sign in with the company's IdP, whose answer shows the device to approve or deny",
            "parameters": [{ "name": "user_code", "in": "query", "required": false, "schema": { "type": "string" } }],
            "responses": { "200": html("The form for the code"), "302": { "description": "To the IdP" }, "404": html("No device waits with this code"), "501": error_response("The hub has no [oidc] sign-in") } } },
        "/enroll/confirm": { "post": {
            "summary": "The person's answer from the hub's own page (its Origin), bound to them by the one-time confirmation the page carries",
            "requestBody": { "required": true, "content": { "application/x-www-form-urlencoded": { "schema": { "type": "object", "required": ["confirm", "decision"], "properties": {
                "confirm": { "type": "string" }, "decision": { "enum": ["approve", "deny"] } } } } } },
            "responses": { "200": html("Answered"), "303": { "description": "Answered; back to the device's loopback address" },
                           "403": html("Not from the hub's own page"), "404": html("Unknown, used or expired") } } },
        "/v1/device": { "get": {
            "summary": "Who the calling device answers for: the verified person (user, user_verified, verified_at) or none yet, and the person IT named on its token (assigned_user)",
            "security": [{ "deviceCredential": [] }],
            "responses": { "200": { "description": "device_id, name, user, user_verified, verified_at, assigned_user" },
                           "401": error_response("Unknown or revoked device credential") } } }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The checked-in copy is the served document (`UPDATE_GOLDEN=1` rewrites it), and it
    /// documents exactly the routes the router serves.
    #[test]
    fn the_checked_in_document_matches_and_covers_every_route() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/hub-openapi.json");
        let text = serde_json::to_string_pretty(&document()).unwrap() + "\n";
        if std::env::var_os("UPDATE_GOLDEN").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text, "docs/hub-openapi.json is stale: UPDATE_GOLDEN=1");
        let doc = document();
        let mut documented: Vec<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(p, ops)| ops.as_object().unwrap().keys().map(move |m| (m.to_uppercase(), p.clone())))
            .collect();
        documented.sort();
        let mut served: Vec<(String, String)> =
            crate::routes::ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
        served.sort();
        assert_eq!(documented, served);
    }
}
