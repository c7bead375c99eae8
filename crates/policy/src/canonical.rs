//! Canonical JSON for hashing arguments: object keys sorted, no insignificant white space.
//! Two argument values hash alike exactly when they mean the same JSON. Never used for
//! anything sent on the wire (the relay forwards the client's own bytes).

use serde_json::Value;
use sha2::{Digest, Sha256};

/// Writes `value` as canonical JSON (keys sorted by their UTF-8 bytes).
pub fn canonical_json(value: &Value) -> String {
    let mut out = String::new();
    write_canonical(value, &mut out);
    out
}

fn write_canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                write_canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

/// SHA-256 of the canonical form, as lowercase hex.
pub fn args_hash(value: &Value) -> String {
    hex::encode(Sha256::digest(canonical_json(value).as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn key_order_does_not_change_the_hash() {
        let a: Value = serde_json::from_str(r#"{"b":1,"a":{"y":[1,2],"x":"s"}}"#).unwrap();
        let b: Value = serde_json::from_str(r#"{"a":{"x":"s","y":[1,2]},"b":1}"#).unwrap();
        assert_eq!(canonical_json(&a), r#"{"a":{"x":"s","y":[1,2]},"b":1}"#);
        assert_eq!(args_hash(&a), args_hash(&b));
    }

    #[test]
    fn different_values_hash_differently() {
        assert_ne!(args_hash(&json!({"path": "a"})), args_hash(&json!({"path": "a "})));
        assert_ne!(args_hash(&json!({"n": 1})), args_hash(&json!({"n": "1"})));
    }
}
