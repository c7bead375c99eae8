//! Classification of one tool from the sources below policy overrides: the catalog, the
//! server's annotations (trusted only for servers marked trusted; for others they can make
//! a tool stricter, never looser), then heuristics; unknown tools are at least `write`.
//! Also the call-time tightening from the arguments themselves. Overrides from policy
//! layers are applied by the engine on top of this.

use crate::catalog::Catalog;
use crate::class::{ClassSource, Classification, ToolClass};
use crate::heuristics;
use crate::input::{ServerInfo, ToolDef};
use serde_json::Value;

/// A lower-cased, confusable-folded spelling of a name, so `dеlete` (Cyrillic `е`),
/// `Delete` and `delete ` all read as `delete`.
pub fn skeleton(name: &str) -> String {
    let trimmed: String = name.chars().filter(|c| !is_invisible(*c)).collect();
    unicode_security::skeleton(trimmed.trim()).collect::<String>().to_lowercase()
}

/// Zero-width, bidi-control and other format characters that change how text reads
/// without showing.
pub fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2064}' | '\u{2066}'..='\u{2069}'
        | '\u{FEFF}' | '\u{00AD}' | '\u{180E}')
}

/// The class of `tool` on `server` from the catalog, annotations and heuristics.
/// `def` is `None` when the server never listed the tool.
pub fn base(catalog: &Catalog, server: &ServerInfo, tool: &str, def: Option<&ToolDef>) -> Classification {
    // A name the server never listed is looked up by its skeleton, so a homoglyph or a
    // case change of a known tool is classified as that tool.
    let lookup = if def.is_some() { tool.to_string() } else { skeleton(tool) };
    if let Some(entry) = catalog.entry_for(server) {
        let known = match def {
            Some(_) => entry.tool(tool),
            None => entry.tool_names().find(|name| skeleton(name) == lookup).and_then(|name| entry.tool(name)),
        };
        if let Some(c) = known {
            return c.clone();
        }
    }
    let name_only = ToolDef { name: lookup.clone(), ..Default::default() };
    let def_or_name = def.unwrap_or(&name_only);
    let heuristic = heuristics::from_definition(def_or_name);
    let annotated = def.filter(|d| !d.hints.is_empty()).map(|d| from_annotations(d, server.trusted));
    let floor = || match def {
        None => Classification::new(
            ToolClass::Write,
            ClassSource::Default,
            "the server never listed this tool, so it counts as a write",
        ),
        Some(_) => Classification::new(
            ToolClass::Write,
            ClassSource::Default,
            "nothing known about this tool makes it a read, so it counts as a write",
        ),
    };
    let mut c = match annotated {
        Some(Some(a)) => a,
        _ => floor(),
    };
    if let Some(h) = heuristic {
        c = c.tightened_by(h);
    }
    if heuristics::runs_commands(def_or_name) && c.class < ToolClass::Write {
        c = Classification::new(ToolClass::Write, ClassSource::Heuristic, "it runs commands");
    }
    c
}

/// What annotations alone say. Untrusted servers' hints can only tighten: `None` when
/// they would loosen (or say nothing stricter than a write).
fn from_annotations(def: &ToolDef, trusted: bool) -> Option<Classification> {
    let h = def.hints;
    if h.destructive == Some(true) && h.read_only != Some(true) {
        return Some(Classification::new(
            ToolClass::Destructive,
            ClassSource::Annotation,
            "the server marks it destructive",
        ));
    }
    if !trusted {
        return None;
    }
    if h.read_only == Some(true) {
        return Some(Classification::new(
            ToolClass::Read,
            ClassSource::Annotation,
            "the trusted server marks it read-only",
        ));
    }
    Some(Classification::new(ToolClass::Write, ClassSource::Annotation, "the trusted server marks it as changing data"))
}

/// The classification of one call: `static_class` tightened by what the arguments say
/// (data-changing SQL, destructive shell commands). Managed overrides are final.
pub fn for_call(static_class: &Classification, arguments: &Value) -> Classification {
    if static_class.source == ClassSource::Managed {
        return static_class.clone();
    }
    match heuristics::from_arguments(arguments) {
        Some(h) => static_class.clone().tightened_by(h),
        None => static_class.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::{ServerOrigin, ToolHints};
    use serde_json::json;

    fn server(trusted: bool) -> ServerInfo {
        ServerInfo {
            name: "x".into(),
            origin: ServerOrigin::Command { command: "my-server".into(), args: vec![] },
            trusted,
            catalog: None,
            scope: None,
        }
    }

    fn tool(name: &str, read_only: Option<bool>, destructive: Option<bool>) -> ToolDef {
        ToolDef {
            name: name.into(),
            hints: ToolHints { read_only, destructive, ..Default::default() },
            ..Default::default()
        }
    }

    fn class(trusted: bool, def: &ToolDef) -> (ToolClass, ClassSource) {
        let c = base(Catalog::builtin(), &server(trusted), &def.name, Some(def));
        (c.class, c.source)
    }

    #[test]
    fn sec_11_untrusted_annotations_never_loosen() {
        // An untrusted server calls delete_all read-only: the name decides.
        assert_eq!(
            class(false, &tool("delete_all", Some(true), None)),
            (ToolClass::Destructive, ClassSource::Heuristic)
        );
        // An untrusted read-only hint on a harmless name is still not a read.
        assert_eq!(class(false, &tool("get_weather", Some(true), None)).0, ToolClass::Write);
        // An unannotated tool is a write.
        assert_eq!(class(false, &tool("frobnicate", None, None)), (ToolClass::Write, ClassSource::Default));
        // But an untrusted destructive hint tightens.
        assert_eq!(class(false, &tool("tidy", None, Some(true))), (ToolClass::Destructive, ClassSource::Annotation));
        // A trusted server's read-only hint is believed.
        assert_eq!(class(true, &tool("get_weather", Some(true), None)), (ToolClass::Read, ClassSource::Annotation));
    }

    #[test]
    fn the_catalog_beats_annotations() {
        let fs = ServerInfo { catalog: Some("filesystem".into()), ..server(true) };
        let c = base(Catalog::builtin(), &fs, "write_file", Some(&tool("write_file", Some(false), Some(true))));
        assert_eq!((c.class, c.source), (ToolClass::Write, ClassSource::Catalog));
    }

    #[test]
    fn sec_14_unlisted_look_alikes_are_classified_as_what_they_imitate() {
        let gh = ServerInfo { catalog: Some("github".into()), ..server(true) };
        for name in ["Delete_Repository", "delete_repository ", "d\u{0435}lete_repository", "delete\u{200B}_repository"]
        {
            let c = base(Catalog::builtin(), &gh, name, None);
            assert_eq!(c.class, ToolClass::Destructive, "{name:?}: {c:?}");
        }
    }

    #[test]
    fn arguments_tighten_a_call() {
        let pg = ServerInfo { catalog: Some("postgres".into()), ..server(true) };
        let q = base(Catalog::builtin(), &pg, "query", Some(&tool("query", None, None)));
        assert_eq!(q.class, ToolClass::Read);
        assert_eq!(for_call(&q, &json!({"sql": "select 1"})).class, ToolClass::Read);
        assert_eq!(for_call(&q, &json!({"sql": "DROP TABLE accounts"})).class, ToolClass::Destructive);
    }
}
