use super::*;

fn env(text: &str) -> Envelope {
    Envelope::parse(text).unwrap()
}

fn json_of(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

#[test]
fn the_handshake_is_answered_from_discover_in_the_clients_revision_claiming_nothing_not_carried() {
    let init = env(
        r#"{"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"c","version":"1"}}}"#,
    );
    let discovered = json!({
        "supportedVersions": ["2026-07-28"],
        "capabilities": {"tools": {"listChanged": true}, "resources": {"subscribe": true, "listChanged": true}, "logging": {}},
        "instructions": "be brief",
        "_meta": {"io.modelcontextprotocol/serverInfo": {"name": "modern", "version": "2"}}
    });
    let answer = json_of(&initialize_answer(&init, &discovered));
    assert_eq!(
        answer,
        json!({"jsonrpc": "2.0", "id": "a", "result": {
            "protocolVersion": "2025-06-18",
            "capabilities": {"tools": {}, "resources": {}, "logging": {}},
            "serverInfo": {"name": "modern", "version": "2"},
            "instructions": "be brief"
        }})
    );
    let unknown = env(r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"1999-01-01"}}"#);
    assert_eq!(json_of(&initialize_answer(&unknown, &json!({})))["result"]["protocolVersion"], "2025-11-25");
}

#[test]
fn a_request_goes_with_the_revisions_envelope_and_the_level_the_client_set() {
    let mut level = None;
    let set = r#"{"jsonrpc":"2.0","id":1,"method":"logging/setLevel","params":{"level":"debug"}}"#;
    assert_eq!(
        outgoing("s", &env(set), set, &mut level),
        Outgoing::Answer(r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.into())
    );
    let call = r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"echo","arguments":{"x":1},"_meta":{"progressToken":5}}}"#;
    let Outgoing::Send(sent) = outgoing("s", &env(call), call, &mut level) else { panic!("not sent") };
    let sent = json_of(&sent);
    assert_eq!(sent["params"]["arguments"], json!({"x": 1}));
    let meta = &sent["params"]["_meta"];
    assert_eq!(meta["progressToken"], 5);
    assert_eq!(meta["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
    assert_eq!(meta["io.modelcontextprotocol/clientCapabilities"], json!({}));
    assert_eq!(meta["io.modelcontextprotocol/logLevel"], "debug");
    let list = r#"{"jsonrpc":"2.0","id":3,"method":"tools/list"}"#;
    let Outgoing::Send(sent) = outgoing("s", &env(list), list, &mut level) else { panic!("not sent") };
    assert_eq!(json_of(&sent)["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"], "2026-07-28");
}

#[test]
fn what_the_revision_removed_is_answered_here_and_never_sent() {
    let mut level = None;
    let ping = r#"{"jsonrpc":"2.0","id":9,"method":"ping"}"#;
    assert_eq!(
        outgoing("s", &env(ping), ping, &mut level),
        Outgoing::Answer(r#"{"jsonrpc":"2.0","id":9,"result":{}}"#.into())
    );
    let sub = r#"{"jsonrpc":"2.0","id":4,"method":"resources/subscribe","params":{"uri":"file:///a"}}"#;
    let Outgoing::Answer(refused) = outgoing("modern", &env(sub), sub, &mut level) else { panic!("sent") };
    let refused = json_of(&refused);
    assert_eq!(refused["error"]["code"], -32601);
    assert!(refused["error"]["message"].as_str().unwrap().contains("modern speaks only MCP 2026-07-28"), "{refused}");
    let done = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(outgoing("s", &env(done), done, &mut level), Outgoing::Drop);
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":2}}"#;
    assert_eq!(outgoing("s", &env(cancel), cancel, &mut level), Outgoing::Send(cancel.into()));
}

#[test]
fn an_answer_asking_for_input_becomes_an_error_for_its_id_and_other_answers_pass_unchanged() {
    let asks = r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","inputRequests":{"a":{}}}}"#;
    let got = json_of(&incoming("modern", asks.to_string()));
    assert_eq!((got["id"].clone(), got.get("result").is_none()), (json!(7), true), "{got}");
    assert!(got["error"]["message"].as_str().unwrap().contains("modern asked for input"), "{got}");
    let done = r#"{"jsonrpc":"2.0","id":8,"result":{"resultType":"complete","content":[]}}"#;
    assert_eq!(incoming("modern", done.to_string()), done);
    let note = r#"{"jsonrpc":"2.0","method":"notifications/progress","params":{"progressToken":1,"progress":1}}"#;
    assert_eq!(incoming("modern", note.to_string()), note);
}

#[test]
fn an_answer_asking_for_input_in_disguise_is_an_error_too() {
    // A member nested past the parser's depth, a number no double holds: the gateway could
    // not see `resultType`, so it must not pass the answer on as if it were complete.
    let deep = format!("{}1{}", "[".repeat(300), "]".repeat(300));
    let disguised = [
        format!(r#"{{"jsonrpc":"2.0","id":7,"result":{{"resultType":"input_required","inputRequests":{{}},"x":{deep}}}}}"#),
        r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"input_required","inputRequests":{},"x":1e400}}"#.into(),
        r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"INPUT_REQUIRED","content":[{"type":"text","text":"done"}]}}"#
            .into(),
        r#"{"jsonrpc":"2.0","id":7,"result":{"resultType":"task","content":[]}}"#.into(),
    ];
    for text in disguised {
        let got = json_of(&incoming("modern", text.clone()));
        assert_eq!((got["id"].clone(), got.get("result").is_none()), (json!(7), true), "{text}: {got}");
        assert_eq!(got["error"]["code"], code::UPSTREAM_ERROR, "{got}");
    }
    let plain = r#"{"jsonrpc":"2.0","id":8,"result":{"content":[]}}"#;
    assert_eq!(incoming("modern", plain.to_string()), plain);
    let error = r#"{"jsonrpc":"2.0","id":9,"error":{"code":-1,"message":"no"}}"#;
    assert_eq!(incoming("modern", error.to_string()), error);
}
