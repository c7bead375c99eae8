//! "Allow similar": derivation, scope and settings, against hostile paths.
use super::*;
use serde_json::json;

fn fs_rule() -> SimilarRule {
    SimilarRule {
        tools: SimilarTools::Writes,
        folder: vec!["path".into()],
        exact: vec![],
        words: "writes under {folder} via {server}".into(),
        strict_paths: false,
    }
}

fn call<'a>(tool: &'a str, class: ToolClass, args: &'a Value) -> SimilarCall<'a> {
    SimilarCall { server: "fs", tool, class, arguments: args }
}

fn no_project(_: &str) -> Option<String> {
    None
}

#[test]
fn a_file_write_offers_its_project_in_words_and_covers_only_inside_it() {
    let args = json!({"path": "/home/al/site/src/app.js", "content": "x"});
    let project = |p: &str| p.starts_with("/home/al/site/").then(|| "/home/al/site".to_string());
    let offer =
        derive(&fs_rule(), call("write_file", ToolClass::Write, &args), &SimilarSettings::default(), &project).unwrap();
    assert_eq!(offer.folder.as_deref(), Some("/home/al/site"));
    assert!(offer.words.starts_with("writes under /home/al/site/ via fs"), "{}", offer.words);
    assert!(offer.words.ends_with("for 1 hour"), "{}", offer.words);
    let scope = SimilarScope::compile(&offer).unwrap();
    let w = Some(ToolClass::Write);
    assert!(scope.covers("edit_file", w, &json!({"path": "/home/al/site/docs/a.md"})));
    assert!(scope.covers("create_directory", w, &json!({"path": "/home/al/site/tests"})));
    assert!(!scope.covers("write_file", w, &json!({"path": "/home/al/other/a"})), "outside the project");
    assert!(!scope.covers("write_file", w, &json!({"path": "/home/al/site"})), "the folder itself is not inside");
    assert!(!scope.covers("write_file", w, &json!({"path": "/home/al/site/../x"})), "normalised first");
    assert!(!scope.covers("write_file", w, &json!({"path": null})), "unresolved");
    assert!(!scope.covers("write_file", w, &json!({"content": "no path at all"})));
    assert!(!scope.covers("move_file", Some(ToolClass::Destructive), &json!({"path": "/home/al/site/a"})));
    assert!(!scope.covers("read_file", Some(ToolClass::Read), &json!({"path": "/home/al/site/a"})), "writes only");
    // On Linux a backslash is part of a name: `..\\x` is a file in `autostart`.
    let tricky = "/home/al/.config/autostart/..\\site\\evil.desktop";
    assert!(!scope.covers("write_file", w, &json!({"path": tricky})), "{tricky}");
    for runs_code in [
        "/home/al/site/.mcp.json",
        "/home/al/site/.husky/pre-commit",
        "/home/al/site/docs/HEAD",
        "/home/al/site/docs/config",
        "/home/al/site/.claude/settings.json",
    ] {
        assert!(!scope.covers("write_file", w, &json!({"path": runs_code})), "{runs_code}");
    }
    assert!(!scope.covers("anything", None, &json!({"path": "/home/al/site/a"})), "unknown class");
    assert!(
        !scope.covers("move", w, &json!({"source": "/home/al/site/a", "destination": "/etc/passwd"})),
        "every file argument must be inside"
    );
    for hook in ["/home/al/site/.git/hooks/pre-commit", "/home/al/site/.git", "/home/al/site/sub/.git/config"] {
        assert!(!scope.covers("write_file", w, &json!({"path": hook})), "{hook}");
        let call = json!({"path": hook});
        assert!(
            matches!(
                derive(
                    &fs_rule(),
                    super::SimilarCall { server: "fs", tool: "write_file", class: ToolClass::Write, arguments: &call },
                    &SimilarSettings::default(),
                    &project
                ),
                Err(NoSimilar::Excluded(_))
            ),
            "no offer for a call the scope would not cover: {hook}"
        );
    }
    assert!(!scope.covers("write_file", w, &json!({"path": "/home/al/site/.github/workflows/ci.yml"})));
    assert!(!scope.covers("write_file", w, &json!({"path": "/home/al/site/.env"})));
    assert!(scope.covers("write_file", w, &json!({"path": "/home/al/site/.github/README.md"})));
}

#[test]
fn without_a_project_the_scope_is_the_folder_and_never_too_wide() {
    let s = SimilarSettings::default();
    let args = json!({"path": "/home/al/notes/today.md"});
    let offer = derive(&fs_rule(), call("write_file", ToolClass::Write, &args), &s, &no_project).unwrap();
    assert_eq!(offer.folder.as_deref(), Some("/home/al/notes"));
    let home = json!({"path": "/home/al/today.md"});
    assert_eq!(
        derive(&fs_rule(), call("write_file", ToolClass::Write, &home), &s, &no_project),
        Err(NoSimilar::TooWide("/home/al".into(), 3))
    );
    let root = json!({"path": "/x"});
    assert!(derive(&fs_rule(), call("write_file", ToolClass::Write, &root), &s, &no_project).is_err());
    // A project the caller names that does not hold the file is ignored.
    let odd = |_: &str| Some("/".to_string());
    assert_eq!(derive(&fs_rule(), call("write_file", ToolClass::Write, &args), &s, &odd).unwrap().folder, offer.folder);
}

#[test]
fn never_for_destructive_sensitive_or_unresolved_calls_nor_when_policy_says_no() {
    let s = SimilarSettings::default();
    let args = json!({"path": "/home/al/site/a"});
    for class in [ToolClass::Destructive, ToolClass::Sensitive] {
        assert_eq!(derive(&fs_rule(), call("x", class, &args), &s, &no_project), Err(NoSimilar::Class(class)));
    }
    let unresolved = json!({"path": null});
    assert!(matches!(
        derive(&fs_rule(), call("x", ToolClass::Write, &unresolved), &s, &no_project),
        Err(NoSimilar::Unresolved(_))
    ));
    let relative = json!({"path": "site/a"});
    assert!(derive(&fs_rule(), call("x", ToolClass::Write, &relative), &s, &no_project).is_err());
    let off = SimilarSettings { enabled: false, ..Default::default() };
    assert_eq!(derive(&fs_rule(), call("x", ToolClass::Write, &args), &off, &no_project), Err(NoSimilar::Disabled));
}

#[test]
fn exact_values_are_kept_and_folder_names_are_literal() {
    let git = SimilarRule {
        tools: SimilarTools::Writes,
        folder: vec![],
        exact: vec!["repo_path".into()],
        words: "writes to the repository {repo_path} via {server}".into(),
        strict_paths: false,
    };
    let args = json!({"repo_path": "/w/a*b/repo", "files": ["x"]});
    let offer = derive(&git, call("git_add", ToolClass::Write, &args), &SimilarSettings::default(), &no_project);
    let offer = offer.unwrap();
    assert!(offer.words.starts_with("writes to the repository /w/a*b/repo via fs"), "{}", offer.words);
    let scope = SimilarScope::compile(&offer).unwrap();
    let w = Some(ToolClass::Write);
    assert!(scope.covers("git_commit", w, &json!({"repo_path": "/w/a*b/repo", "message": "m"})));
    assert!(!scope.covers("git_commit", w, &json!({"repo_path": "/w/aXb/repo"})), "a glob character is literal");
    assert!(!scope.covers("git_commit", w, &json!({"repo_path": "/w/a*b/repo/sub"})));
    assert!(!scope.covers("git_commit", w, &json!({"message": "m"})));
    let missing = json!({"files": ["x"]});
    assert_eq!(
        derive(&git, call("git_add", ToolClass::Write, &missing), &SimilarSettings::default(), &no_project),
        Err(NoSimilar::NoExact("repo_path".into()))
    );
}

#[test]
fn a_tool_scope_covers_only_its_tool_and_settings_only_tighten() {
    let args = json!({"path": "/home/al/site/a.txt"});
    let offer = derive(
        &SimilarRule::fallback(),
        call("save", ToolClass::Write, &args),
        &SimilarSettings::default(),
        &no_project,
    )
    .unwrap();
    let scope = SimilarScope::compile(&offer).unwrap();
    assert!(scope.covers("save", Some(ToolClass::Write), &json!({"path": "/home/al/site/b.txt"})));
    assert!(!scope.covers("publish", Some(ToolClass::Write), &json!({"path": "/home/al/site/b.txt"})));
    // An unknown server's other arguments are bounded too, at any depth.
    for other in [
        json!({"path": "/home/al/site/b.txt", "output": "/home/al/.bashrc"}),
        json!({"path": "/home/al/site/b.txt", "options": {"path": "/etc/cron.d/x"}}),
        json!({"path": "/home/al/site/b.txt", "to": ["../../x"]}),
    ] {
        assert!(!scope.covers("save", Some(ToolClass::Write), &other), "{other}");
    }
    assert!(scope.covers("save", Some(ToolClass::Write), &json!({"path": "/home/al/site/b", "text": "a/b c"})));
    // A call naming no file gets no offer (nothing bounds it).
    let none = json!({"text": "x"});
    assert_eq!(
        derive(
            &SimilarRule::fallback(),
            call("save", ToolClass::Write, &none),
            &SimilarSettings::default(),
            &no_project
        ),
        Err(NoSimilar::NoFile)
    );
    assert_eq!(
        derive(
            &fs_rule(),
            call("write_file", ToolClass::Write, &json!({"path": []})),
            &SimilarSettings::default(),
            &no_project
        ),
        Err(NoSimilar::NoFile)
    );
    let managed = SimilarSettings {
        length: GrantLength::Minutes15,
        min_depth: 4,
        exclude: vec!["*.sh".into()],
        ..Default::default()
    };
    let user = SimilarSettings { enabled: true, length: GrantLength::Today, min_depth: 1, exclude: vec![] };
    let t = managed.tighten(&user);
    assert_eq!((t.length, t.min_depth, t.enabled), (GrantLength::Minutes15, 4, true));
    assert!(t.exclude.contains(&"*.sh".to_string()));
    let t = user.tighten(&SimilarSettings { enabled: false, ..Default::default() });
    assert!(!t.enabled);
}
