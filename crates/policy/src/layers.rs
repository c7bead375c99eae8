//! Policy layers and the settings each one holds.
//!
//! Layers, weakest first: built-in defaults < the user's file < the managed OS location <
//! a signed bundle from the hub. The user file and the managed file share the `[policy]`
//! keys (`PolicySettings`); the managed file adds `[managed]` settings only it may hold
//! (the bundle's public key, whether user rules may allow). A higher layer's word holds
//! against a lower one: nothing a user writes can loosen what managed policy set. This
//! module only describes and merges; reading files is the caller's job.

use crate::class::ToolClass;
use crate::decision::Decision;
use crate::grant::{GrantLength, GrantSettings};
use crate::layer::Layer;
use crate::servers::ServerRules;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What happens to each class of tool when no rule decides.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassDefaults {
    pub read: Option<Decision>,
    pub write: Option<Decision>,
    pub sensitive: Option<Decision>,
    pub destructive: Option<Decision>,
}

impl ClassDefaults {
    pub fn get(&self, class: ToolClass) -> Option<Decision> {
        match class {
            ToolClass::Read => self.read,
            ToolClass::Write => self.write,
            ToolClass::Sensitive => self.sensitive,
            ToolClass::Destructive => self.destructive,
        }
    }

    /// The built-in defaults: read → allow, write → ask, sensitive → ask, destructive → deny.
    pub fn builtin(class: ToolClass) -> Decision {
        match class {
            ToolClass::Read => Decision::Allow,
            ToolClass::Write | ToolClass::Sensitive => Decision::Ask,
            ToolClass::Destructive => Decision::Deny,
        }
    }
}

/// A class override: a class alone, or a class with a data label and the argument names
/// whose values the journal must never keep (`redact = ["query"]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
pub enum ClassOverride {
    Class(ToolClass),
    Labelled {
        class: ToolClass,
        #[serde(default)]
        label: Option<String>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        redact: Vec<String>,
    },
}

impl ClassOverride {
    pub fn class(&self) -> ToolClass {
        match self {
            ClassOverride::Class(c) | ClassOverride::Labelled { class: c, .. } => *c,
        }
    }

    pub fn label(&self) -> Option<&str> {
        match self {
            ClassOverride::Class(_) => None,
            ClassOverride::Labelled { label, .. } => label.as_deref(),
        }
    }

    /// Argument names to redact in the journal.
    pub fn redact(&self) -> &[String] {
        match self {
            ClassOverride::Class(_) => &[],
            ClassOverride::Labelled { redact, .. } => redact,
        }
    }
}

/// The `[policy]` table: the same keys in the user config, `managed.toml` and a bundle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicySettings {
    /// Rules whose calls run without asking.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Rules whose calls wait for a person's approval.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ask: Vec<String>,
    /// Rules whose calls are refused. Deny beats ask beats allow, in every layer.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// The decision for each class when no rule decides.
    #[serde(default, skip_serializing_if = "is_default")]
    pub defaults: ClassDefaults,
    /// Class overrides: `"mcp__server__tool"` (globs allowed) → class, or
    /// `{ class = "...", label = "..." }`. In the user file they can only tighten.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub classify: BTreeMap<String, ClassOverride>,
    /// Which grant lengths a person may choose, which tools are never granted beyond
    /// once, and the lockout and prompt limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grants: Option<GrantSettings>,
    /// Which MCP servers may run, and whether AI clients must route through Countersign.
    #[serde(default, skip_serializing_if = "is_default")]
    pub servers: ServerRules,
    /// Who answers a call that asks, by rule (first match; managed layers' routes hold
    /// over the user's): `self` (the default), `owner`, `manager`, an email or
    /// `group:NAME`, with separation of duties and what happens when the hub is away.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub approvers: Vec<crate::approvers::ApproverRule>,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// The `[managed]` table, read only from the managed OS location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ManagedSettings {
    /// The minisign public key (base64, `RW...`) that signs policy bundles. Only this
    /// layer can set it: a bundle is never trusted on its own say-so.
    pub bundle_public_key: Option<String>,
    /// Whether the user's own `allow` rules and class defaults may loosen the built-in
    /// defaults. Managed rules and defaults always hold regardless.
    pub user_may_allow: bool,
    /// Start the desktop app at login whatever the user chose (`true`), or leave it to
    /// the user (absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at_login: Option<bool>,
    /// How much audit the laptop keeps and what happens when the hub is out of reach
    /// for long (`[managed.audit]`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub audit: AuditBuffer,
    /// What the last good signed bundle does once it has expired (the hub out of reach,
    /// sync stopped) and no newer one has replaced it. Either way it never simply drops
    /// away, the tray and `countersign status` warn, and the hub raises an alert.
    #[serde(default, skip_serializing_if = "is_default")]
    pub bundle_expiry: BundleExpiry,
}

impl Default for ManagedSettings {
    fn default() -> Self {
        ManagedSettings {
            bundle_public_key: None,
            user_may_allow: true,
            start_at_login: None,
            audit: Default::default(),
            bundle_expiry: Default::default(),
        }
    }
}

/// What an expired last good bundle does until a newer one arrives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum BundleExpiry {
    /// Its rules stay in force exactly as they were (the default).
    #[default]
    KeepEnforcing,
    /// Every tool it named in a rule (allow, ask or deny), and every class whose default
    /// it set, is denied.
    DenyGoverned,
}

/// The local journal's bounds (`[managed.audit]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AuditBuffer {
    /// Most records the journal keeps. Records the hub has acknowledged go first when room
    /// is needed.
    pub max_records: u64,
    /// Records the hub has acknowledged are removed once older than this many days (0:
    /// kept until room is needed).
    pub retention_days: u32,
    /// What happens when only records the hub has not acknowledged fill the journal.
    pub when_full: WhenFull,
}

impl Default for AuditBuffer {
    fn default() -> Self {
        AuditBuffer { max_records: 1_000_000, retention_days: 30, when_full: WhenFull::RefuseCalls }
    }
}

/// When the journal is full of records the hub has not acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum WhenFull {
    /// Fail closed: tool calls are refused until the hub acknowledges records.
    RefuseCalls,
    /// Drop the oldest unacknowledged records and write a gap record saying so (the hub
    /// flags the gap too).
    DropOldestWithGap,
}

/// The managed file: `[policy]` plus `[managed]`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ManagedFile {
    #[serde(default)]
    pub policy: PolicySettings,
    #[serde(default)]
    pub managed: ManagedSettings,
}

/// Everything the engine is compiled from.
#[derive(Debug, Clone, Default)]
pub struct Layers {
    pub user: PolicySettings,
    pub managed: Option<ManagedFile>,
    /// A verified bundle's policy and version.
    pub bundle: Option<(PolicySettings, u64)>,
}

impl Layers {
    /// A policy with only the user's settings.
    pub fn user_only(user: PolicySettings) -> Self {
        Layers { user, ..Default::default() }
    }

    /// The layers that hold settings, strongest first.
    pub fn stack(&self) -> Vec<(Layer, &PolicySettings)> {
        let mut out = Vec::new();
        if let Some((b, _)) = &self.bundle {
            out.push((Layer::Bundle, b));
        }
        if let Some(m) = &self.managed {
            out.push((Layer::Managed, &m.policy));
        }
        out.push((Layer::User, &self.user));
        out
    }

    pub fn managed_settings(&self) -> ManagedSettings {
        self.managed.as_ref().map(|m| m.managed.clone()).unwrap_or_default()
    }

    /// The grant settings in force: the strongest layer that sets them, tightened by any
    /// weaker layer (fewer lengths, more once-only tools, sooner lockout, fewer prompts).
    pub fn grant_settings(&self) -> (GrantSettings, Layer) {
        let stack = self.stack();
        let mut set: Option<(GrantSettings, Layer)> = None;
        for (layer, settings) in stack {
            let Some(g) = &settings.grants else { continue };
            set = Some(match set {
                None => (g.clone(), layer),
                Some((strong, at)) => (tighten_grants(strong, g), at),
            });
        }
        set.unwrap_or((GrantSettings::default(), Layer::Builtin))
    }
}

fn tighten_grants(strong: GrantSettings, weak: &GrantSettings) -> GrantSettings {
    let lengths: Vec<GrantLength> = strong.lengths.iter().copied().filter(|l| weak.lengths.contains(l)).collect();
    let mut once_only = strong.once_only.clone();
    once_only.extend(weak.once_only.iter().filter(|r| !strong.once_only.contains(r)).cloned());
    GrantSettings {
        lengths,
        once_only,
        lockout_after: match (strong.lockout_after, weak.lockout_after) {
            (0, w) => w,
            (s, 0) => s,
            (s, w) => s.min(w),
        },
        lockout_window_secs: strong.lockout_window_secs.max(weak.lockout_window_secs),
        lockout_secs: strong.lockout_secs.max(weak.lockout_secs),
        prompts_per_minute: strong.prompts_per_minute.min(weak.prompts_per_minute),
        similar: strong.similar.tighten(&weak.similar),
        plans: strong.plans.tighten(&weak.plans),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_settings_only_tighten_downwards() {
        let managed = GrantSettings {
            lengths: vec![GrantLength::Once, GrantLength::Hour1],
            prompts_per_minute: 5,
            ..Default::default()
        };
        let user = GrantSettings {
            lengths: vec![GrantLength::Once, GrantLength::Today, GrantLength::Hour1],
            prompts_per_minute: 50,
            once_only: vec!["mcp__gh".into()],
            ..Default::default()
        };
        let layers = Layers {
            user: PolicySettings { grants: Some(user), ..Default::default() },
            managed: Some(ManagedFile {
                policy: PolicySettings { grants: Some(managed), ..Default::default() },
                ..Default::default()
            }),
            bundle: None,
        };
        let (g, layer) = layers.grant_settings();
        assert_eq!(layer, Layer::Managed);
        assert_eq!(g.lengths, vec![GrantLength::Once, GrantLength::Hour1], "the user cannot add `today`");
        assert_eq!(g.prompts_per_minute, 5);
        assert!(g.once_only.contains(&"mcp__gh".to_string()), "the user can add once-only tools");
    }

    #[test]
    fn policy_settings_parse_from_toml() {
        let s: PolicySettings = toml::from_str(
            r#"
            allow = ["mcp__fs__read*"]
            deny = ["class:destructive client:cursor"]
            defaults = { sensitive = "deny" }
            [classify]
            "mcp__db__query" = "sensitive"
            "mcp__crm__*" = { class = "read", label = "personal" }
            [grants]
            lengths = ["once", "15m"]
            "#,
        )
        .unwrap();
        assert_eq!(s.defaults.sensitive, Some(Decision::Deny));
        assert_eq!(s.classify["mcp__crm__*"].label(), Some("personal"));
        assert_eq!(s.grants.unwrap().lengths, vec![GrantLength::Once, GrantLength::Minutes15]);
        let bad = toml::from_str::<PolicySettings>("defaults = { write = \"maybe\" }").unwrap_err();
        assert!(bad.to_string().contains("maybe"), "{bad}");
    }
}
