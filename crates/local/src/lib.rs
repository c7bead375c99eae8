//! countersign-local: this user's local state, shared by the gateway, the CLI and the
//! desktop app. The data folder and what lives in it ([`home`]: tokens, the runtime file,
//! the device id), client tokens ([`tokens`]), the config file, where it is found and how it
//! is edited in place ([`config`], [`config_file`], [`config_edit`]), plain-text secrets
//! moved into the keychain ([`secret_import`]), AI clients routed through Countersign and
//! back ([`client_routing`]), and how a CLI or app finds and proves the running gateway
//! ([`gateway_link`], [`session_bus`]).
//!
//! It never relays MCP, decides a call or writes the audit journal: that is the gateway's.
//! It never writes a secret into a file: secrets go to the keychain, files get references.

pub mod client_routing;
pub mod clock;
pub mod config;
pub mod config_edit;
pub mod config_file;
pub mod gateway_link;
pub mod home;
pub mod managed_bundle;
pub mod managed_files;
pub mod secret_import;
pub mod session_bus;
pub mod tokens;

pub use config::Config;
pub use home::Home;
