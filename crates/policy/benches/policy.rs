//! The policy engine's cost: one decision against 1,000 rules and 500 grants, and the
//! classification of a 200-tool `tools/list`. Targets (issue 3): ≤ 5 µs median per
//! decision, ≤ 1 ms per 200-tool classification.

use countersign_policy::{
    CallInput, GrantBook, GrantLength, GrantRequest, Identity, Policy, PolicySettings, ServerInfo, ServerOrigin,
    ToolClass, ToolDef,
};
use criterion::{criterion_group, criterion_main, Criterion};
use serde_json::json;
use std::hint::black_box;

/// 1,000 rules of every kind: tool globs, class and client selectors, argument conditions.
fn big_policy() -> Policy {
    let mut s = PolicySettings::default();
    for i in 0..1000 {
        let rule = match i % 5 {
            0 => format!("mcp__srv{i}__*"),
            1 => format!("mcp__fs__tool_{i}"),
            2 => format!("mcp__gh__*_{i}(repo=acme/r{i}/**)"),
            3 => format!("mcp__db{i}__query class:write"),
            _ => format!("mcp__*__delete_{i} client:cursor"),
        };
        match i % 3 {
            0 => s.deny.push(rule),
            1 => s.ask.push(rule),
            _ => s.allow.push(rule),
        }
    }
    Policy::compile(&s).unwrap()
}

fn bench(c: &mut Criterion) {
    let policy = big_policy();
    let server = ServerInfo {
        name: "fs".into(),
        origin: ServerOrigin::Command {
            command: "npx".into(),
            args: vec!["@modelcontextprotocol/server-filesystem".into()],
        },
        trusted: true,
        catalog: None,
        scope: None,
    };
    let (settings, _) = policy.grant_settings();
    let mut book = GrantBook::default();
    for i in 0..500 {
        let args = json!({"path": format!("/work/{i}.txt")});
        let tool = format!("t{}", i % 50);
        let req = GrantRequest {
            id: format!("g{i}"),
            client_token: "cursor",
            session: "s",
            server: if i % 2 == 0 { "fs" } else { "gh" },
            tool: &tool,
            arguments: &args,
            length: if i % 3 == 0 { GrantLength::Once } else { GrantLength::Hour1 },
            condition: None,
            similar: None,
            plan: false,
        };
        book.issue(req, settings, policy.once_only(), ToolClass::Write, 0, 1).unwrap();
    }
    let identity = Identity {
        client_token: "cursor".into(),
        client_name: Some("Cursor".into()),
        session: "s".into(),
        ..Default::default()
    };
    let def = ToolDef {
        name: "write_file".into(),
        description: "Create a new file or completely overwrite an existing file.".into(),
        input_schema: json!({"type": "object", "properties": {"path": {"type": "string"}, "content": {"type": "string"}}}),
        ..Default::default()
    };
    let args = json!({"path": "/work/notes/today.md", "content": "hello"});
    let call = CallInput {
        identity: &identity,
        server: &server,
        tool: "write_file",
        def: Some(&def),
        arguments: &args,
        grants: Some(&book),
        resolved: None,
        gate: Default::default(),
        now_ms: 1,
    };
    assert_eq!(policy.decide(&call).decision, countersign_policy::Decision::Ask);
    c.bench_function("decide: 1,000 rules, 500 grants", |b| b.iter(|| black_box(policy.decide(black_box(&call)))));
    let classified = policy.classify(&server, "write_file", Some(&def));
    c.bench_function("decide with the class cached", |b| {
        b.iter(|| black_box(policy.decide_classified(black_box(&call), &classified)))
    });

    let unknown = ServerInfo {
        name: "svc".into(),
        origin: ServerOrigin::Command { command: "svc-mcp".into(), args: vec![] },
        ..server.clone()
    };
    let tools: Vec<ToolDef> = (0..200)
        .map(|i| {
            let verb = ["get", "list", "create", "update", "delete", "search", "send", "read"][i % 8];
            ToolDef::from_json(&json!({
                "name": format!("{verb}_item_{i}"),
                "description": format!("Does {verb} on item {i}, with options described at length for the model."),
                "inputSchema": {"type": "object", "properties": {"id": {"type": "string"}, "options": {"type": "object"}}},
                "annotations": {"readOnlyHint": i % 2 == 0}
            }))
            .unwrap()
        })
        .collect();
    c.bench_function("classify a 200-tool tools/list", |b| {
        b.iter(|| {
            for t in &tools {
                black_box(policy.classify(&unknown, &t.name, Some(t)));
            }
        })
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
