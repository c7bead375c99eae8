//! The engine's decisions, including the properties that must hold for every policy.

use super::*;
use crate::approvers::Approver;
use crate::grant::{GrantBook, GrantLength, GrantRequest};
use crate::input::{Gate, Identity, ServerOrigin, ServerScope, ToolHints};
use crate::layers::{ManagedFile, ManagedSettings};
use proptest::prelude::*;
use serde_json::{json, Value};

fn settings(toml_text: &str) -> PolicySettings {
    toml::from_str(toml_text).unwrap()
}

fn server(name: &str, trusted: bool) -> ServerInfo {
    ServerInfo {
        name: name.into(),
        origin: ServerOrigin::Command { command: "x".into(), args: vec![] },
        trusted,
        catalog: None,
        scope: None,
    }
}

fn def(name: &str, read_only: Option<bool>, destructive: Option<bool>) -> ToolDef {
    ToolDef {
        name: name.into(),
        hints: ToolHints { read_only, destructive, ..Default::default() },
        ..Default::default()
    }
}

#[derive(Debug, Clone)]
struct Call {
    identity: Identity,
    server: ServerInfo,
    tool: String,
    def: Option<ToolDef>,
    args: Value,
}

fn call(server_name: &str, tool: &str, def: Option<ToolDef>) -> Call {
    Call {
        identity: Identity {
            client_token: "cursor".into(),
            client_name: Some("Cursor".into()),
            session: "s1".into(),
            ..Default::default()
        },
        server: server(server_name, true),
        tool: tool.into(),
        def,
        args: json!({}),
    }
}

fn decide(p: &Policy, c: &Call, grants: Option<&GrantBook>) -> Verdict {
    decide_with(p, c, grants, Gate::default(), None)
}

fn decide_with(p: &Policy, c: &Call, grants: Option<&GrantBook>, gate: Gate<'_>, resolved: Option<&Value>) -> Verdict {
    p.decide(&CallInput {
        identity: &c.identity,
        server: &c.server,
        tool: &c.tool,
        def: c.def.as_ref(),
        arguments: &c.args,
        resolved,
        grants,
        gate,
        now_ms: 1_000,
    })
}

fn read_tool() -> Call {
    call("w", "get_weather", Some(def("get_weather", Some(true), None)))
}
fn write_tool() -> Call {
    call("w", "set_units", Some(def("set_units", Some(false), Some(false))))
}
fn destructive_tool() -> Call {
    call("w", "wipe_history", Some(def("wipe_history", None, Some(true))))
}
fn sensitive_tool() -> Call {
    call("w", "get_api_token", Some(def("get_api_token", Some(true), None)))
}

fn managed(policy: &str, user: &str) -> Policy {
    Policy::from_layers(Layers {
        user: settings(user),
        managed: Some(ManagedFile { policy: settings(policy), managed: ManagedSettings::default() }),
        bundle: None,
    })
    .unwrap()
}

#[test]
fn class_defaults() {
    let p = Policy::compile(&PolicySettings::default()).unwrap();
    assert_eq!(decide(&p, &read_tool(), None).decision, Decision::Allow);
    assert_eq!(decide(&p, &write_tool(), None).decision, Decision::Ask);
    assert_eq!(decide(&p, &destructive_tool(), None).decision, Decision::Deny);
    let v = decide(&p, &sensitive_tool(), None);
    assert_eq!((v.decision, v.class, v.label.as_deref()), (Decision::Ask, ToolClass::Sensitive, Some("credentials")));
    assert_eq!(v.rule, "default:sensitive");
    let strict = Policy::compile(&settings("defaults = { sensitive = \"deny\" }")).unwrap();
    assert_eq!(decide(&strict, &sensitive_tool(), None).decision, Decision::Deny);
}

#[test]
fn rules_go_deny_then_ask_then_allow() {
    let p = Policy::compile(&settings(
        r#"allow = ["mcp__w"]
           ask = ["mcp__w__get_*"]
           deny = ["mcp__w__get_weather"]"#,
    ))
    .unwrap();
    let v = decide(&p, &read_tool(), None);
    assert_eq!((v.decision, v.rule.as_str(), v.layer), (Decision::Deny, "deny:mcp__w__get_weather", Layer::User));
    assert_eq!(decide(&p, &sensitive_tool(), None).rule, "ask:mcp__w__get_*");
    assert_eq!(decide(&p, &destructive_tool(), None).rule, "allow:mcp__w", "an explicit allow beats a class default");
}

#[test]
fn class_and_client_selectors_decide() {
    let p = Policy::compile(&settings(r#"allow = ["class:write client:cursor"]"#)).unwrap();
    assert_eq!(decide(&p, &write_tool(), None).decision, Decision::Allow);
    let mut other = write_tool();
    other.identity.client_token = "claude".into();
    other.identity.client_name = Some("claude-code".into());
    assert_eq!(decide(&p, &other, None).decision, Decision::Ask);
}

#[test]
fn a_client_is_who_its_token_says_never_what_it_claims() {
    // Finding 4: a token named `mallory` that declares itself `trusted-bot` in `initialize`.
    let p = Policy::compile(&settings(
        r#"allow = ["class:write client:trusted-bot"]
           deny = ["client:mallory class:destructive"]"#,
    ))
    .unwrap();
    let mut c = write_tool();
    c.identity.client_token = "mallory".into();
    c.identity.client_name = Some("trusted-bot".into());
    assert_eq!(decide(&p, &c, None).decision, Decision::Ask, "the claimed name gets no allow");
    let mut d = destructive_tool();
    d.identity.client_token = "mallory".into();
    d.identity.client_name = Some("anyone-else".into());
    assert_eq!(decide(&p, &d, None).rule, "deny:client:mallory class:destructive");
    let mut honest = write_tool();
    honest.identity.client_token = "trusted-bot".into();
    honest.identity.client_name = None;
    assert_eq!(decide(&p, &honest, None).decision, Decision::Allow);
}

fn decide_gated(p: &Policy, c: &Call, gate: Gate<'_>, resolved: Option<&Value>) -> Verdict {
    decide_with(p, c, None, gate, resolved)
}

#[test]
fn the_gate_decides_before_any_rule() {
    let p = Policy::compile(&settings(r#"allow = ["mcp__w"]"#)).unwrap();
    let c = write_tool();
    assert_eq!(decide(&p, &c, None).decision, Decision::Allow);
    let paused = decide_gated(&p, &c, Gate { paused: true, ..Default::default() }, None);
    assert_eq!((paused.decision, paused.rule.as_str()), (Decision::Deny, "paused"));
    let blocked = Gate { paused: false, standing: Standing::Blocked { rule: "quarantine", why: "it hides text" } };
    let v = decide_gated(&p, &c, blocked, None);
    assert_eq!((v.decision, v.rule.as_str(), v.reason.as_str()), (Decision::Deny, "quarantine", "it hides text"));
    let unlisted = decide_gated(&p, &c, Gate { paused: false, standing: Standing::Unlisted }, None);
    assert_eq!((unlisted.decision, unlisted.rule.as_str()), (Decision::Deny, "unlisted"));
    assert_eq!(unlisted.class, ToolClass::Write, "the record still says what the tool is taken for");
}

#[test]
fn a_projects_server_serves_only_that_projects_token() {
    // Issue 15, item 10: a server added from a cloned repository answers only the token
    // its project's entries connect with; for every other client it is as if denied
    // whole: no call, no listing, not started.
    let p = Policy::compile(&settings(r#"allow = ["mcp__w"]"#)).unwrap();
    let mut c = write_tool();
    c.server.scope =
        Some(ServerScope { project: "/home/ana/src/repo".into(), client_token: "project-repo-0123456789ab".into() });
    let v = decide(&p, &c, None);
    assert_eq!((v.decision, v.rule.as_str()), (Decision::Deny, "scope:project"));
    assert!(v.reason.contains("/home/ana/src/repo"), "{}", v.reason);
    let gate = p.server_gate(&c.server, "cursor", false).expect("another client is kept out");
    assert_eq!(gate.rule, "scope:project");
    assert!(!c.server.serves("cursor") && c.server.serves("project-repo-0123456789ab"));

    c.identity.client_token = "project-repo-0123456789ab".into();
    assert_eq!(decide(&p, &c, None).decision, Decision::Allow, "its own project's entries reach it");
    assert!(p.server_gate(&c.server, "project-repo-0123456789ab", false).is_none());
}

#[test]
fn conditions_read_the_arguments_as_the_server_will() {
    // Finding 3: the client writes a relative path; the gateway resolved it against the
    // server's root. The rule judges the resolved path; the hash stays the client's.
    let p = Policy::compile(&settings(
        r#"deny = ["mcp__w__set_units(path=/x/secret/**)"]
           allow = ["mcp__w__set_units(path=/x/projects/**)"]"#,
    ))
    .unwrap();
    let mut c = write_tool();
    c.args = json!({"path": "projects/link/secret.txt"});
    let through_link = json!({"path": "/x/secret/secret.txt"});
    assert_eq!(decide_gated(&p, &c, Gate::default(), Some(&through_link)).decision, Decision::Deny);
    let honest = json!({"path": "/x/projects/a.txt"});
    assert_eq!(decide_gated(&p, &c, Gate::default(), Some(&honest)).decision, Decision::Allow);
    // A value the gateway could not resolve: caught by deny, never let through by allow.
    let unknown = json!({"path": null});
    assert_eq!(decide_gated(&p, &c, Gate::default(), Some(&unknown)).decision, Decision::Deny);
    let only_allow = Policy::compile(&settings(r#"allow = ["mcp__w__set_units(path=/x/projects/**)"]"#)).unwrap();
    assert_eq!(decide_gated(&only_allow, &c, Gate::default(), Some(&unknown)).decision, Decision::Ask);
    // Decomposed Unicode is the same name as composed.
    let nfd = json!({"path": "/x/secre\u{301}t/a"});
    let accented = Policy::compile(&settings("deny = [\"mcp__w__set_units(path=/x/secr\u{e9}t/**)\"]")).unwrap();
    assert_eq!(decide_gated(&accented, &c, Gate::default(), Some(&nfd)).decision, Decision::Deny);
    assert_eq!(p.path_keys().iter().collect::<Vec<_>>(), ["path"]);
}

fn access(p: &Policy, server: &str, token: &str, a: Access<'_>, paused: bool) -> Verdict {
    let identity = Identity { client_token: token.into(), ..Default::default() };
    let info = self::server(server, false);
    p.decide_access(&AccessInput { identity: &identity, server: &info, access: a, paused })
}

#[test]
fn resources_prompts_and_server_requests_are_decided_too() {
    let p = Policy::compile(&settings(
        r#"deny = ["mcp__secrets", "mcp__fs client:intern", "mcp__sketchy request:sampling/*"]"#,
    ))
    .unwrap();
    let read = Access::ReadResource { uri: "file:///x" };
    assert_eq!(access(&p, "fs", "cursor", read, false).decision, Decision::Allow);
    assert_eq!(access(&p, "fs", "intern", read, false).decision, Decision::Deny, "per client token");
    for a in [read, Access::GetPrompt { name: "p" }, Access::Complete, Access::List { method: "tools/list" }] {
        let v = access(&p, "secrets", "cursor", a, false);
        assert_eq!((v.decision, v.rule.as_str()), (Decision::Deny, "deny:server"), "{a:?}");
    }
    assert_eq!(access(&p, "fs", "cursor", read, true).rule, "paused");
    assert_eq!(access(&p, "fs", "cursor", Access::List { method: "tools/list" }, true).decision, Decision::Allow);
    let sampling = Access::ServerRequest { method: "sampling/createMessage" };
    assert_eq!(access(&p, "sketchy", "cursor", sampling, false).decision, Decision::Deny);
    assert_eq!(access(&p, "fs", "cursor", sampling, false).decision, Decision::Allow);
    let elicit = Access::ServerRequest { method: "elicitation/create" };
    assert_eq!(access(&p, "sketchy", "cursor", elicit, false).decision, Decision::Allow);
    // A `request:` rule never touches a tool call, and only deny lists may hold one.
    let mut c = write_tool();
    c.server = server("sketchy", true);
    assert_ne!(decide(&p, &c, None).decision, Decision::Deny);
    let err = Policy::compile(&settings(r#"allow = ["request:sampling/*"]"#)).unwrap_err();
    assert_eq!(err.list, "allow");
}

#[test]
fn an_ask_for_a_whole_server_or_a_stricter_read_default_holds_for_its_resources_and_prompts() {
    let read = Access::ReadResource { uri: "e://x" };
    let asks = Policy::compile(&settings(r#"ask = ["mcp__e"]"#)).unwrap();
    for a in [read, Access::GetPrompt { name: "p" }, Access::Complete] {
        assert_eq!(access(&asks, "e", "c", a, false).decision, Decision::Ask, "{a:?}");
    }
    assert_eq!(access(&asks, "other", "c", read, false).decision, Decision::Allow);
    assert_eq!(access(&asks, "e", "c", Access::List { method: "resources/list" }, false).decision, Decision::Allow);
    let one_tool = Policy::compile(&settings(r#"ask = ["mcp__e__write_file"]"#)).unwrap();
    assert_eq!(
        access(&one_tool, "e", "c", read, false).decision,
        Decision::Allow,
        "a rule for one tool is not the server"
    );
    let no_reads = Policy::compile(&settings("[defaults]\nread = \"deny\"")).unwrap();
    assert_eq!(access(&no_reads, "e", "c", read, false).decision, Decision::Deny);
    let reads_ask = Policy::compile(&settings(r#"ask = ["class:read"]"#)).unwrap();
    assert_eq!(access(&reads_ask, "e", "c", read, false).decision, Decision::Ask);
}

#[test]
fn argument_conditions_decide() {
    let p = Policy::compile(&settings(r#"allow = ["mcp__w__set_units(path=/work/**)"]"#)).unwrap();
    let mut c = write_tool();
    c.args = json!({"path": "/work/x"});
    assert_eq!(decide(&p, &c, None).decision, Decision::Allow);
    c.args = json!({"path": "/work/../home/me/.ssh/id_ed25519"});
    assert_eq!(decide(&p, &c, None).decision, Decision::Ask);
}

#[test]
fn managed_policy_holds_against_the_user() {
    // Managed asks for every write; the user's allow cannot loosen it.
    let p = managed("defaults = { write = \"ask\" }\nask = [\"mcp__w__get_weather\"]", "allow = [\"mcp__w\"]");
    let v = decide(&p, &write_tool(), None);
    assert_eq!((v.decision, v.layer), (Decision::Ask, Layer::Managed));
    assert_eq!(decide(&p, &read_tool(), None).decision, Decision::Ask);
    // The user can still tighten.
    let p = managed("allow = [\"mcp__w\"]", "deny = [\"mcp__w__set_units\"]");
    assert_eq!(decide(&p, &write_tool(), None).decision, Decision::Deny);
    // Without a managed default, the user's allow applies, unless managed forbids it.
    let p = managed("", "allow = [\"mcp__w\"]");
    assert_eq!(decide(&p, &write_tool(), None).decision, Decision::Allow);
    let locked = Policy::from_layers(Layers {
        user: settings("allow = [\"mcp__w\"]\ndefaults = { write = \"allow\" }"),
        managed: Some(ManagedFile {
            policy: PolicySettings::default(),
            managed: ManagedSettings { user_may_allow: false, ..Default::default() },
        }),
        bundle: None,
    })
    .unwrap();
    assert_eq!(decide(&locked, &write_tool(), None).decision, Decision::Ask);
}

#[test]
fn classification_overrides_by_layer() {
    // The user may only tighten: marking a destructive tool read changes nothing.
    let p = Policy::compile(&settings(
        "[classify]\n\"mcp__w__wipe_history\" = \"read\"\n\"mcp__w__set_units\" = \"destructive\"",
    ))
    .unwrap();
    assert_eq!(decide(&p, &destructive_tool(), None).class, ToolClass::Destructive);
    let v = decide(&p, &write_tool(), None);
    assert_eq!((v.class, v.class_source, v.decision), (ToolClass::Destructive, ClassSource::User, Decision::Deny));
    // Managed policy may loosen or tighten.
    let p = managed("[classify]\n\"mcp__w__wipe_history\" = { class = \"write\", label = \"weather\" }", "");
    let v = decide(&p, &destructive_tool(), None);
    assert_eq!(
        (v.class, v.class_source, v.label.as_deref()),
        (ToolClass::Write, ClassSource::Managed, Some("weather"))
    );
}

#[test]
fn grants_turn_ask_into_allow_never_deny() {
    let p = Policy::compile(&PolicySettings::default()).unwrap();
    let mut book = GrantBook::default();
    let (s, _) = p.grant_settings();
    for (id, c) in [("g1", write_tool()), ("g2", destructive_tool())] {
        let req = GrantRequest {
            id: id.into(),
            client_token: "cursor",
            session: "s1",
            server: "w",
            tool: &c.tool,
            arguments: &c.args,
            length: GrantLength::Once,
            condition: None,
            similar: None,
            plan: false,
        };
        book.issue(req, s, p.once_only(), ToolClass::Write, 0, 1).unwrap();
    }
    let v = decide(&p, &write_tool(), Some(&book));
    assert_eq!((v.decision, v.grant.as_deref()), (Decision::Allow, Some("g1")));
    assert_eq!(decide(&p, &destructive_tool(), Some(&book)).decision, Decision::Deny);
}

#[test]
fn a_locked_tool_is_denied_without_asking() {
    let p = Policy::compile(&PolicySettings::default()).unwrap();
    let mut book = GrantBook::default();
    let (s, _) = p.grant_settings();
    for t in 0..s.lockout_after as u64 {
        book.record_denial("cursor", "w", "set_units", t, s);
    }
    let v = decide(&p, &write_tool(), Some(&book));
    assert_eq!((v.decision, v.rule.as_str()), (Decision::Deny, "lockout"));
}

#[test]
fn sec_14_deny_rules_catch_case_homoglyphs_and_padding() {
    let p = Policy::compile(&settings("deny = [\"mcp__gh__delete_repo\"]")).unwrap();
    for name in ["delete_repo", "Delete_Repo", "delete_repo ", "d\u{0435}lete_repo", "delete\u{200B}_repo"] {
        let c = call("gh", name, None);
        assert_eq!(decide(&p, &c, None).decision, Decision::Deny, "{name:?}");
    }
    // The allow list stays exact: a look-alike of an allowed tool is not allowed.
    let p = Policy::compile(&settings("allow = [\"mcp__gh__get_repo\"]")).unwrap();
    assert_eq!(decide(&p, &call("gh", "g\u{0435}t_repo", None), None).decision, Decision::Ask);
}

#[test]
fn unknown_tools_ask_and_the_reason_says_why() {
    let p = Policy::compile(&PolicySettings::default()).unwrap();
    let v = decide(&p, &call("w", "frobnicate", None), None);
    assert_eq!((v.decision, v.class, v.class_source), (Decision::Ask, ToolClass::Write, ClassSource::Default));
    assert!(v.reason.contains("never listed"), "{}", v.reason);
}

#[test]
fn the_version_changes_with_any_layer() {
    let a = Policy::compile(&PolicySettings::default()).unwrap();
    let b = managed("deny = [\"mcp__x\"]", "");
    assert_ne!(a.version(), b.version());
    assert!(a.version().starts_with("sha256:"));
}

const VOCAB: &[&str] = &[
    "mcp__w",
    "mcp__w__get_*",
    "mcp__w__set_units",
    "mcp__*__wipe*",
    "class:read",
    "class:write",
    "class:destructive",
    "class:sensitive",
    "client:cursor",
    "mcp__w__set_units(path=/work/**)",
    "mcp__w__* client:curs*",
];

fn rules() -> impl Strategy<Value = Vec<String>> {
    proptest::collection::vec(proptest::sample::select(VOCAB).prop_map(str::to_string), 0..4)
}

fn decision() -> impl Strategy<Value = Option<Decision>> {
    proptest::option::of(proptest::sample::select(vec![Decision::Allow, Decision::Ask, Decision::Deny]))
}

prop_compose! {
    fn policy_settings()(allow in rules(), ask in rules(), deny in rules(),
                         read in decision(), write in decision(), sensitive in decision(), destructive in decision())
                         -> PolicySettings {
        PolicySettings { allow, ask, deny, defaults: ClassDefaults { read, write, sensitive, destructive }, ..Default::default() }
    }
}

fn any_call() -> impl Strategy<Value = Call> {
    (0..4usize, any::<bool>(), any::<bool>()).prop_map(|(which, cursor, in_work)| {
        let mut c = [read_tool, write_tool, destructive_tool, sensitive_tool][which]();
        if !cursor {
            c.identity.client_token = "claude".into();
            c.identity.client_name = None;
        }
        c.args = json!({"path": if in_work { "/work/a" } else { "/etc/a" }});
        c
    })
}

proptest! {
    /// Whatever a user writes, a decision that managed policy made is never loosened.
    #[test]
    fn a_user_layer_never_loosens_a_managed_one(m in policy_settings(), u in policy_settings(), c in any_call()) {
        let alone = Policy::from_layers(Layers { user: PolicySettings::default(), managed: Some(ManagedFile { policy: m.clone(), ..Default::default() }), bundle: None }).unwrap();
        let both = Policy::from_layers(Layers { user: u, managed: Some(ManagedFile { policy: m, ..Default::default() }), bundle: None }).unwrap();
        let a = decide(&alone, &c, None);
        let b = decide(&both, &c, None);
        if a.layer.is_managed() {
            prop_assert!(b.decision >= a.decision, "managed said {:?} ({}), with the user layer {:?} ({})", a.decision, a.rule, b.decision, b.rule);
        }
    }

    /// A matching deny rule wins over every allow, in any layer.
    #[test]
    fn deny_always_beats_allow(m in policy_settings(), u in policy_settings(), c in any_call(), deny_in_user in any::<bool>()) {
        let (mut m, mut u) = (m, u);
        let everything = "mcp__w".to_string();
        m.allow.insert(0, everything.clone());
        u.allow.insert(0, everything.clone());
        if deny_in_user { u.deny.push(everything) } else { m.deny.push(everything) }
        let p = Policy::from_layers(Layers { user: u, managed: Some(ManagedFile { policy: m, ..Default::default() }), bundle: None }).unwrap();
        prop_assert_eq!(decide(&p, &c, None).decision, Decision::Deny);
    }

    /// A once-grant covers its exact arguments and nothing else.
    #[test]
    fn a_grant_never_covers_other_arguments(a in "[a-z/]{0,12}", b in "[a-z/]{0,12}", n in 0i64..3, m in 0i64..3) {
        let p = Policy::compile(&PolicySettings::default()).unwrap();
        let (s, _) = p.grant_settings();
        let mut book = GrantBook::default();
        let approved = json!({"path": a, "n": n});
        let req = GrantRequest { id: "g".into(), client_token: "cursor", session: "s1", server: "w", tool: "set_units",
                                 arguments: &approved, length: GrantLength::Once, condition: None, similar: None, plan: false };
        book.issue(req, s, p.once_only(), ToolClass::Write, 0, 1).unwrap();
        let mut c = write_tool();
        c.args = json!({"path": b, "n": m});
        let same = c.args == approved;
        prop_assert_eq!(decide(&p, &c, Some(&book)).decision == Decision::Allow, same);
    }
}

fn fs_call(tool: &str, args: Value) -> Call {
    let mut c = call("fs", tool, Some(def(tool, Some(false), Some(true))));
    c.server.origin = ServerOrigin::Command {
        command: "npx".into(),
        args: vec!["@modelcontextprotocol/server-filesystem".into(), "/home/al".into()],
    };
    c.args = args;
    c
}

/// Issues the similar grant the policy offers for `approved` (its project `/home/al/site`).
fn similar_book(p: &Policy, approved: &Call) -> GrantBook {
    let project = |path: &str| path.starts_with("/home/al/site/").then(|| "/home/al/site".to_string());
    let offer = p.similar_offer(&approved.server, &approved.tool, ToolClass::Write, "cursor", &approved.args, &project);
    let offer = offer.unwrap();
    let mut book = GrantBook::default();
    let (s, _) = p.grant_settings();
    let req = GrantRequest {
        id: "sim".into(),
        client_token: "cursor",
        session: "s1",
        server: "fs",
        tool: &approved.tool,
        arguments: &approved.args,
        length: offer.length,
        condition: None,
        similar: Some(&offer),
        plan: false,
    };
    book.issue(req, s, p.once_only(), ToolClass::Write, 0, 1).unwrap();
    book
}

#[test]
fn a_similar_grant_covers_the_servers_writes_in_the_project_and_nothing_else() {
    let p = Policy::compile(&PolicySettings::default()).unwrap();
    let approved = fs_call("write_file", json!({"path": "/home/al/site/src/a.js", "content": "x"}));
    assert_eq!(decide(&p, &approved, None).decision, Decision::Ask);
    let book = similar_book(&p, &approved);
    let inside = fs_call("edit_file", json!({"path": "/home/al/site/docs/b.md", "edits": []}));
    let v = decide(&p, &inside, Some(&book));
    assert_eq!((v.decision, v.grant.as_deref()), (Decision::Allow, Some("sim")));
    assert!(v.reason.contains("writes under /home/al/site/ via fs"), "{}", v.reason);
    let mkdir = fs_call("create_directory", json!({"path": "/home/al/site/tests"}));
    assert_eq!(decide(&p, &mkdir, Some(&book)).decision, Decision::Allow);
    // Outside the project, in its .git, a destructive tool, another client: not covered.
    for (c, want) in [
        (fs_call("write_file", json!({"path": "/home/al/other/a"})), Decision::Ask),
        (fs_call("write_file", json!({"path": "/home/al/site/.git/hooks/pre-commit"})), Decision::Ask),
        (fs_call("move_file", json!({"source": "/home/al/site/a", "destination": "/home/al/site/b"})), Decision::Deny),
    ] {
        assert_eq!(decide(&p, &c, Some(&book)).decision, want, "{:?}", c.args);
    }
    let mut other = inside.clone();
    other.identity.client_token = "claude".into();
    assert_eq!(decide(&p, &other, Some(&book)).decision, Decision::Ask);
    // A tool the policy keeps to once is not covered by a grant for several tools.
    let strict = Policy::compile(&settings("[grants]\nonce_only = [\"mcp__fs__create_directory\"]\n")).unwrap();
    assert_eq!(decide(&strict, &mkdir, Some(&book)).decision, Decision::Ask);
    // No offer for a destructive tool, a tool kept to once, or when policy says no.
    let project = |_: &str| None;
    let mv = fs_call("move_file", json!({"source": "/home/al/site/a", "destination": "/home/al/site/b"}));
    assert!(p.similar_offer(&mv.server, "move_file", ToolClass::Destructive, "cursor", &mv.args, &project).is_err());
    assert!(strict
        .similar_offer(&mkdir.server, "create_directory", ToolClass::Write, "cursor", &mkdir.args, &project)
        .is_err());
    let off = Policy::compile(&settings("[grants.similar]\nenabled = false\n")).unwrap();
    assert!(off
        .similar_offer(&inside.server, "edit_file", ToolClass::Write, "cursor", &inside.args, &project)
        .is_err());
    let no_hour = Policy::compile(&settings("[grants]\nlengths = [\"once\", \"15m\"]\n")).unwrap();
    assert!(no_hour
        .similar_offer(&inside.server, "edit_file", ToolClass::Write, "cursor", &inside.args, &project)
        .is_err());
}

proptest! {
    /// Whatever path a later call names, a similar grant lets it through only when the
    /// path, normalised, lies strictly inside the project and outside its `.git`.
    #[test]
    fn a_similar_grant_never_covers_a_path_outside_its_scope(
        parts in proptest::collection::vec(prop_oneof![
            Just("site"), Just(".."), Just("."), Just(".git"), Just("src"), Just("al"), Just("home"), Just(""),
            Just("a*b"), Just("[x]"), Just("SITE"),
        ], 0..7)
    ) {
        static ONCE: std::sync::OnceLock<(Policy, GrantBook)> = std::sync::OnceLock::new();
        let (p, book) = ONCE.get_or_init(|| {
            let p = Policy::compile(&PolicySettings::default()).unwrap();
            let approved = fs_call("write_file", json!({"path": "/home/al/site/src/a.js", "content": "x"}));
            let book = similar_book(&p, &approved);
            (p, book)
        });
        let path = format!("/home/al/site/{}", parts.join("/"));
        let c = fs_call("write_file", json!({"path": path}));
        let v = decide(p, &c, Some(book));
        let norm = crate::rule::normalise(&path);
        let inside = norm.strip_prefix("/home/al/site/").is_some_and(|rest| {
            !rest.is_empty() && !rest.split('/').any(|s| s == ".git")
        });
        prop_assert_eq!(v.decision == Decision::Allow, inside, "{} → {}", path, norm);
    }
}

#[test]
fn a_grant_given_here_never_answers_a_call_routed_elsewhere() {
    let p = Policy::compile(&settings(
        "[[approvers]]\nrule = \"mcp__w__set_units(path=/prod/**)\"\napprover = \"nora@example.com\"\n",
    ))
    .unwrap();
    let mut book = GrantBook::default();
    let (s, _) = p.grant_settings();
    let c = write_tool();
    let req = GrantRequest {
        id: "g".into(),
        client_token: "cursor",
        session: "s1",
        server: "w",
        tool: &c.tool,
        arguments: &c.args,
        length: GrantLength::Hour1,
        condition: None,
        similar: None,
        plan: false,
    };
    book.issue(req, s, p.once_only(), ToolClass::Write, 0, 1).unwrap();
    assert_eq!(decide(&p, &write_tool(), Some(&book)).decision, Decision::Allow, "not routed: the grant holds");
    let mut prod = write_tool();
    prod.args = json!({"path": "/prod/payroll"});
    let v = decide(&p, &prod, Some(&book));
    assert_eq!((v.decision, v.grant), (Decision::Ask, None), "routed to nora: the grant given here does not answer");
    assert_eq!(v.route.unwrap().approver, Approver::Person("nora@example.com".into()));
}

#[test]
fn a_call_that_asks_names_its_approver_and_others_name_none() {
    let p = Policy::from_layers(Layers {
        user: settings("[[approvers]]\nrule = \"class:write\"\napprover = \"bob@example.com\"\n"),
        managed: Some(ManagedFile {
            policy: settings(
                "[[approvers]]\nrule = \"mcp__w__set_units\"\napprover = \"group:it\"\nself_approval = false\n",
            ),
            ..Default::default()
        }),
        bundle: None,
    })
    .unwrap();
    let v = decide(&p, &write_tool(), None);
    let route = v.route.expect("an ask names who answers");
    assert_eq!(
        (route.approver.clone(), route.self_approval, route.layer),
        (Approver::Group("it".into()), false, Layer::Managed)
    );
    assert!(route.who().contains("never the asker"), "{}", route.who());
    assert_eq!(decide(&p, &read_tool(), None).route, None, "an allowed call asks nobody");
    let bad = Policy::compile(&settings("[[approvers]]\nrule = \"class:write\"\napprover = \"nobody\"\n"));
    let err = bad.unwrap_err();
    assert_eq!((err.list, err.index), ("approvers", 0));
    assert!(err.to_string().starts_with("policy.approvers[0]: approver `nobody`"), "{err}");
}

#[test]
fn a_similar_grant_for_writes_never_covers_a_tool_nobody_classified() {
    let p = Policy::compile(&PolicySettings::default()).unwrap();
    let approved = fs_call("write_file", json!({"path": "/home/al/site/src/a.js", "content": "x"}));
    let book = similar_book(&p, &approved);
    // A tool the look-alike server lists later: not in the catalog, a write by default.
    let mut run = fs_call("run_command", json!({"path": "/home/al/site/x", "command": "sh"}));
    run.def = None;
    let v = decide_with(&p, &run, Some(&book), Gate { standing: Standing::Listed, ..Default::default() }, None);
    assert_eq!(v.decision, Decision::Ask, "{v:?}");
}
