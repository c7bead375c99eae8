//! Who this gateway's records say acted. With a person the hub verified for this device
//! (their email in `hub.json`, kept from the hub's answer at enrollment, binding or the
//! sync's refresh), records name them with `user_verified = true`; otherwise the OS
//! account running the gateway, marked unverified. `os_user` is always the OS account.
//!
//! The file is the device's own and can be edited; the hub, not this module, is what
//! makes a verified name trustworthy: it refuses records naming anyone but the person it
//! bound to this device. This module never calls the hub and never holds a credential.

use countersign_audit::Record;
use countersign_local::home::Home;
use countersign_sync::hub_sync::HubLink;

/// Who acts through this gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Who {
    /// The verified email, else the OS account.
    pub user: String,
    pub verified: bool,
    /// The OS account running the gateway.
    pub os_user: String,
}

impl Who {
    /// From the hub's link in `home`, and the OS account.
    pub fn of(home: &Home) -> Who {
        let os_user = crate::shared::os_user();
        match HubLink::load(home).and_then(|l| l.user).filter(|u| !u.trim().is_empty()) {
            Some(user) => Who { user, verified: true, os_user },
            None => Who { user: os_user.clone(), verified: false, os_user },
        }
    }

    /// `alice@example.com`, or `unverified: alice` (what `countersign whoami` prints).
    pub fn shown(&self) -> String {
        if self.verified {
            self.user.clone()
        } else {
            format!("unverified: {}", self.user)
        }
    }

    /// Puts this identity on a record.
    pub fn stamp(&self, record: &mut Record) {
        record.user = self.user.clone();
        record.user_verified = Some(self.verified);
        record.os_user = Some(self.os_user.clone());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_no_person_signed_in_for_is_its_os_account_unverified() {
        let dir = tempfile::tempdir().unwrap();
        let home = Home::at(dir.path().to_path_buf()).unwrap();
        let who = Who::of(&home);
        assert!(!who.verified);
        assert_eq!(who.user, who.os_user);
        assert!(who.shown().starts_with("unverified: "));
        HubLink { url: "https://hub.example".into(), device_id: "d".into(), user: Some("alice@example.com".into()) }
            .save(&home)
            .unwrap();
        let who = Who::of(&home);
        assert!(who.verified);
        assert_eq!(who.shown(), "alice@example.com");
        let mut r = Record::new(countersign_audit::RecordKind::Call, "x", "dev", countersign_audit::Decision::Allow);
        who.stamp(&mut r);
        assert_eq!(
            (r.user.as_str(), r.user_verified, r.os_user.as_deref()),
            ("alice@example.com", Some(true), Some(who.os_user.as_str()))
        );
    }
}
