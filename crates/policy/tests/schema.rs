//! `docs/policy.schema.json` is generated from the policy types; this test keeps it true.
//! Set `UPDATE_GOLDEN=1` to rewrite it after changing the types.

use std::path::Path;

#[test]
fn the_published_json_schema_matches_the_policy_types() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/policy.schema.json");
    let text = serde_json::to_string_pretty(&countersign_policy::json_schema()).unwrap() + "\n";
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    let published = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        published == text,
        "docs/policy.schema.json is stale: run UPDATE_GOLDEN=1 cargo test -p countersign-policy --test schema"
    );
}
