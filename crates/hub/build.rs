//! Puts the IT console's built files (`console/dist`, made by `make console`) where the
//! hub embeds them from (`$OUT_DIR/console`). A hub built without them still builds and
//! serves a page that says how to build the console.

use std::path::{Path, PathBuf};

fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let dist = manifest.join("../../console/dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("console");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("OUT_DIR is writable");
    if dist.join("index.html").exists() {
        copy(&dist, &out).expect("console/dist is readable");
    }
    println!("cargo:rerun-if-changed=../../console/dist");
}
