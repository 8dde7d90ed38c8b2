//! The committed JSON Schema is what `muster schema` prints today: editors
//! read the committed file, so a stale one misleads users.

use std::path::Path;

use assert_cmd::Command;

const REGENERATE: &str = "cargo run -- schema > schema/services.schema.json";

fn generated() -> String {
    let out = Command::cargo_bin("muster")
        .unwrap()
        .arg("schema")
        .output()
        .unwrap();
    assert!(out.status.success(), "muster schema failed");
    String::from_utf8(out.stdout).unwrap()
}

fn committed() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/services.schema.json");
    std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; create it with `{REGENERATE}`",
            path.display()
        )
    })
}

#[test]
fn committed_schema_is_up_to_date() {
    let (committed, generated) = (committed(), generated());
    if committed != generated {
        let diff = similar::TextDiff::from_lines(&committed, &generated)
            .unified_diff()
            .header("schema/services.schema.json (committed)", "muster schema")
            .to_string();
        panic!(
            "schema/services.schema.json is stale; regenerate it with `{REGENERATE}` and commit it.\n{diff}"
        );
    }
}

#[test]
fn schema_is_json_schema_draft_07() {
    let schema: serde_json::Value = serde_json::from_str(&generated()).unwrap();
    assert_eq!(
        schema["$schema"], "http://json-schema.org/draft-07/schema#",
        "editors (Taplo, Even Better TOML) expect draft-07"
    );
    assert_eq!(schema["type"], "object");
    assert_eq!(schema["additionalProperties"], false);
    assert!(schema["properties"]["services"].is_object());
}
