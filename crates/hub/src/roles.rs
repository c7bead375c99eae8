//! Who may do what on the hub: the staff roles and what each permits, as one table every
//! route asks. Pure: it never reads a request, a credential or the database.
//!
//! A role is a set of permissions, not a rank: an auditor reads the audit trail but does
//! not publish policy, a policy admin publishes but does not read the audit trail. Only
//! `admin` holds every permission.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// A staff role, as API tokens carry it (and, with the IdP, as groups map to it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// Sees the fleet: devices and alerts.
    Viewer,
    /// Reads the audit trail and its exports (entitlements, the admin log).
    Auditor,
    /// Answers requests routed to them; sees the fleet.
    Approver,
    /// Publishes managed policy; sees the fleet.
    PolicyAdmin,
    /// Everything: enrollment, API tokens, roles, and all the above.
    Admin,
    /// The company's IdP provisioning people and groups over SCIM (an API token only).
    Scim,
}

/// What a route needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Permission {
    /// Devices and alerts.
    ReadFleet,
    /// Audit records, entitlements, the admin log.
    ReadAudit,
    /// Publishing policy.
    PublishPolicy,
    /// Enrollment tokens for devices.
    Enroll,
    /// API tokens: create, list, revoke.
    ManageTokens,
    /// Enterprise agents: register, suspend, resume, transfer.
    ManageAgents,
    /// SCIM: people and groups provisioned and deprovisioned by the IdP.
    Provision,
    /// Saying who one is, signing out: every role.
    Identify,
}

impl Role {
    pub const ALL: [Role; 6] =
        [Role::Viewer, Role::Auditor, Role::Approver, Role::PolicyAdmin, Role::Admin, Role::Scim];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Auditor => "auditor",
            Role::Approver => "approver",
            Role::PolicyAdmin => "policy-admin",
            Role::Admin => "admin",
            Role::Scim => "scim",
        }
    }

    /// Whether this role permits `permission`: the one table.
    pub fn permits(self, permission: Permission) -> bool {
        use Permission::*;
        match self {
            Role::Admin => true,
            Role::Viewer | Role::Approver => matches!(permission, ReadFleet | Identify),
            Role::Auditor => matches!(permission, ReadFleet | ReadAudit | Identify),
            Role::PolicyAdmin => matches!(permission, ReadFleet | PublishPolicy | Identify),
            Role::Scim => matches!(permission, Provision | Identify),
        }
    }

    /// The roles that permit `permission`, for refusals that say what would do.
    pub fn permitting(permission: Permission) -> Vec<Role> {
        Role::ALL.into_iter().filter(|r| r.permits(permission)).collect()
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
#[error("`{0}` is not a role; roles: viewer, auditor, approver, policy-admin, admin, scim")]
pub struct UnknownRole(pub String);

impl FromStr for Role {
    type Err = UnknownRole;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL.into_iter().find(|r| r.as_str() == s).ok_or_else(|| UnknownRole(s.chars().take(64).collect()))
    }
}

impl Permission {
    pub fn describe(self) -> &'static str {
        match self {
            Permission::ReadFleet => "see devices and alerts",
            Permission::ReadAudit => "read the audit trail and its exports",
            Permission::PublishPolicy => "publish policy",
            Permission::Enroll => "make enrollment tokens",
            Permission::ManageTokens => "manage API tokens",
            Permission::ManageAgents => "manage agents",
            Permission::Provision => "provision people over SCIM",
            Permission::Identify => "say who they are",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_say_which_exist() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>().unwrap(), role);
            assert_eq!(serde_json::to_value(role).unwrap(), role.as_str());
        }
        let e = "root".parse::<Role>().unwrap_err().to_string();
        assert!(e.contains("`root` is not a role") && e.contains("policy-admin"), "{e}");
    }

    #[test]
    fn only_admin_makes_credentials_and_auditors_do_not_publish() {
        assert_eq!(Role::permitting(Permission::Enroll), [Role::Admin]);
        assert_eq!(Role::permitting(Permission::ManageTokens), [Role::Admin]);
        assert_eq!(Role::permitting(Permission::ManageAgents), [Role::Admin]);
        assert_eq!(Role::permitting(Permission::PublishPolicy), [Role::PolicyAdmin, Role::Admin]);
        assert_eq!(Role::permitting(Permission::ReadAudit), [Role::Auditor, Role::Admin]);
        assert_eq!(Role::permitting(Permission::ReadFleet), Role::ALL[..5]);
        assert_eq!(Role::permitting(Permission::Identify), Role::ALL);
        assert_eq!(Role::permitting(Permission::Provision), [Role::Admin, Role::Scim]);
    }
}
