//! What "Allow similar" offers for a call that asks: the policy derives the scope
//! (`countersign_policy::Policy::similar_offer`) from the call's file arguments as the
//! server will open them, and this module tells it which project a file belongs to (the
//! nearest folder holding `.git`, looked up on disk).
//!
//! Must never: offer anything for a call that does not ask, or build a scope from the
//! arguments as sent when the server would read other files.

use super::arguments::{files_as_server, Roots};
use countersign_policy::{Policy, ServerInfo, SimilarOffer, ToolClass};
use serde_json::Value;
use std::path::Path;

/// How many folders up a file's project is looked for.
const MAX_DEPTH: usize = 64;

/// The offer for a call of `tool` on `server` by `client`, or `None` with the reason
/// logged at debug level.
pub fn similar_offer(
    policy: &Policy,
    server: &ServerInfo,
    tool: &str,
    class: ToolClass,
    client: &str,
    roots: &Roots,
    arguments: &Value,
) -> Option<SimilarOffer> {
    let view = files_as_server(roots, arguments);
    match policy.similar_offer(server, tool, class, client, &view, &project_of) {
        Ok(offer) => Some(offer),
        Err(why) => {
            tracing::debug!(server = %server.name, tool, "no \"allow similar\" offer: {why}");
            None
        }
    }
}

/// The nearest folder above `path` that holds `.git` (a repository's work tree), if any.
fn project_of(path: &str) -> Option<String> {
    Path::new(path)
        .ancestors()
        .skip(1)
        .take(MAX_DEPTH)
        .find(|dir| std::fs::symlink_metadata(dir.join(".git")).is_ok())
        .and_then(|dir| dir.to_str().map(str::to_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_files_project_is_the_nearest_folder_with_git() {
        let top = tempfile::tempdir().unwrap();
        let repo = top.path().join("site");
        std::fs::create_dir_all(repo.join(".git")).unwrap();
        std::fs::create_dir_all(repo.join("src/deep")).unwrap();
        let file = repo.join("src/deep/a.js");
        assert_eq!(project_of(file.to_str().unwrap()).as_deref(), repo.to_str());
        let outside = top.path().join("notes/a.md");
        assert_eq!(project_of(outside.to_str().unwrap()), None);
    }
}
