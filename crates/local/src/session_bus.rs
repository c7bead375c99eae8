//! The D-Bus session bus the keychain is reached on (the Secret Service, on Linux), for
//! a stdio shim started with a trimmed environment.
//!
//! Clients start stdio servers with few environment variables (the Python MCP SDK keeps
//! only HOME, LOGNAME, PATH, SHELL, TERM and USER), so the shim may have no
//! `DBUS_SESSION_BUS_ADDRESS`, and then cannot read its token from the keychain. The
//! gateway records the address it runs with in its runtime file (`gateway.json`, 0600 in
//! the data folder; see [`crate::home`]); the shim, before anything opens the keychain,
//! adopts that address when its own environment has none. The address is not a secret:
//! the bus lets in only processes of the same user.
//!
//! This module never replaces an address the environment gives, never adopts anything
//! but a `unix:` address, and changes the process environment only through [`adopt`],
//! which must run before the process starts any thread.

/// The variable D-Bus libraries read the session bus address from.
pub const VAR: &str = "DBUS_SESSION_BUS_ADDRESS";

/// The session bus this process reaches: the variable, else the `$XDG_RUNTIME_DIR/bus`
/// socket when there is one. `None` off Linux (the keychain there is not on D-Bus).
pub fn current() -> Option<String> {
    if !cfg!(target_os = "linux") {
        return None;
    }
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    var(VAR).or_else(|| {
        let socket = std::path::Path::new(&var("XDG_RUNTIME_DIR")?).join("bus");
        socket.exists().then(|| format!("unix:path={}", socket.display()))
    })
}

/// The address to adopt, given this process's own (`own`) and the one the gateway
/// recorded: the recorded one, only when there is no own one and it is a `unix:` address.
pub fn choose(own: Option<&str>, recorded: Option<&str>) -> Option<String> {
    if own.is_some_and(|v| !v.is_empty()) {
        return None;
    }
    recorded.filter(|r| r.starts_with("unix:") && !r.contains(['\n', '\0'])).map(str::to_string)
}

/// Sets `DBUS_SESSION_BUS_ADDRESS` to `recorded`, the session bus the running gateway
/// recorded (`Home::recorded_session_bus`), when this process's environment has none.
/// Returns whether it did.
///
/// It changes the process environment: call it before any thread starts (the CLI does,
/// before it builds its runtime).
pub fn adopt(recorded: Option<&str>) -> bool {
    let own = std::env::var(VAR).ok();
    match choose(own.as_deref(), recorded) {
        Some(address) => {
            std::env::set_var(VAR, address);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_missing_address_is_filled_and_only_with_a_unix_one() {
        let recorded = Some("unix:path=/tmp/dbus-abc,guid=0123");
        assert_eq!(choose(None, recorded).as_deref(), recorded);
        assert_eq!(choose(Some(""), recorded).as_deref(), recorded, "an empty variable is no address");
        assert_eq!(choose(Some("unix:path=/run/user/1000/bus"), recorded), None, "the environment's wins");
        assert_eq!(choose(None, Some("tcp:host=evil.example,port=1")), None);
        assert_eq!(choose(None, None), None);
    }
}
