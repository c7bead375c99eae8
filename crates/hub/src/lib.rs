//! countersign-hub: the central service the laptops sync their audit journals to.
//!
//! - [`db`]: SQLite by default, PostgreSQL for production, one schema (sqlx `Any`).
//! - [`auth`]: enrollment tokens, device credentials, the admin token (digests only).
//! - [`roles`]: the staff roles and what each permits; [`api_tokens`]: tokens with a role,
//!   an expiry and a revocation, for automation; [`token_routes`]: their HTTP API.
//! - [`config`]: hub.toml. [`oidc`]: the company's IdP (discovery, code + PKCE, the ID
//!   token verified); [`sign_in`]: staff sign-in routes; [`staff_sessions`]: the
//!   sessions they open and the sign-ins in progress.
//! - [`enroll_device`]: enrollment bound to a verified person (RFC 8628's device
//!   authorization grant, the person signing in with the IdP at the hub's page);
//!   [`guesses`]: wrong user codes counted per address.
//! - [`device_admin`]: an admin revokes a device.
//! - [`agents`]: enterprise agents (service principals with an owner), [`agent_routes`]
//!   their HTTP API. [`people`]: who the IdP provisioned and what deprovisioning does;
//!   [`scim`]: SCIM 2.0 Users and Groups as Okta and Entra ID send them.
//! - [`ingest`]: batches stored once by record id, each device's chain followed, gaps
//!   and broken hashes flagged as alerts.
//! - [`entitlements`]: who used which servers and tools, and which grants they hold.
//! - [`publish`]: policy bundles signed with the hub's key, fetched with a long poll.
//! - [`query`]: the audit trail as JSON (the export's field names) or CSV.
//! - [`csv_export`]: CSV whose cells a spreadsheet never reads as formulas.
//! - [`siem`]: ingested records forwarded as OTLP logs and Splunk HEC events.
//! - [`routes`]: the HTTP API; [`openapi`]: its OpenAPI document; [`gate`]: in front of
//!   every route that takes a body, the credential checked before the body is read, and
//!   the body capped after decompression. Both use [`state`] (what they share),
//!   [`callers`] (the device or member of staff a request comes from, by its headers) and
//!   [`reply`] (error answers).
//!
//! The hub never stores a device credential, enrollment token, API token or admin token
//! in plain text, and never logs one.

pub mod agent_routes;
pub mod agents;
pub mod alert_routes;
pub mod api_tokens;
pub mod approval_requests;
pub mod approval_routes;
pub mod auth;
pub mod callers;
pub mod config;
pub mod console;
pub mod console_approvals;
pub mod csv_export;
pub mod db;
pub mod device_admin;
pub mod enroll_device;
pub mod entitlements;
pub mod gate;
pub mod guesses;
pub mod impact;
pub mod ingest;
pub mod oidc;
pub mod openapi;
pub mod people;
pub mod policy_routes;
pub mod publish;
pub mod query;
pub mod reply;
pub mod roles;
pub mod routes;
pub mod scim;
pub mod siem;
pub mod sign_in;
pub mod staff_sessions;
pub mod state;
pub mod token_routes;
