//! The hostile corpus: every file in `tests/fixtures/invalid/` is refused by
//! `muster validate` with exit code 3 and located `error: file:line:col:`
//! lines, never a panic. What users read is snapshotted, one snapshot per
//! fixture, so a change in a diagnostic is a reviewed change.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use assert_cmd::Command;

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid")
}

/// Runs `muster validate -f <name>` in `dir` and checks what every invalid
/// file must get; returns stderr.
fn refused(dir: &Path, name: &str) -> String {
    let stderr = unusable(dir, name);
    let located = error_locations(&stderr, name);
    assert!(
        !located.is_empty(),
        "{name}: no line starting `error: {name}:<line>:<col>:` in:\n{stderr}"
    );
    let summary = stderr.lines().last().unwrap_or_default();
    let expected = if located.len() == 1 {
        format!("error: {name} is invalid: 1 problem")
    } else {
        format!("error: {name} is invalid: {} problems", located.len())
    };
    assert_eq!(summary, expected, "{name}: summary line; stderr:\n{stderr}");
    stderr
}

/// As [`refused`], for a file that cannot be read at all (it has no line
/// to point at); returns stderr.
fn unusable(dir: &Path, name: &str) -> String {
    let out = Command::cargo_bin("muster")
        .unwrap()
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_FILE")
        .env_remove("MUSTER_PROJECT")
        .env_remove("RUST_BACKTRACE")
        .args(["validate", "-f", name])
        .output()
        .unwrap();
    let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{name}: muster panicked:\n{stderr}"
    );
    assert_eq!(
        out.status.code(),
        Some(3),
        "{name}: exit code should be 3 (invalid file); stderr:\n{stderr}"
    );
    assert!(
        out.stdout.is_empty(),
        "{name}: nothing on stdout for an invalid file"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "{name}: escape bytes in plain diagnostics:\n{stderr}"
    );
    stderr
}

/// The `line:col` of every `error: <name>:<line>:<col>: …` line.
fn error_locations(stderr: &str, name: &str) -> Vec<String> {
    let prefix = format!("error: {name}:");
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?;
            let col = parts.next()?;
            let message = parts.next()?;
            let number = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            (number(line) && number(col) && message.starts_with(' '))
                .then(|| format!("{line}:{col}"))
        })
        .collect()
}

fn snapshot(name: &str, input: &Path, stderr: &str) {
    let mut settings = insta::Settings::clone_current();
    settings.set_input_file(input);
    settings.set_description(format!("muster validate -f {name}"));
    settings.set_omit_expression(true);
    let snapshot_name = name.strip_suffix(".toml").unwrap_or(name).replace('.', "_");
    settings.bind(|| insta::assert_snapshot!(snapshot_name, stderr));
}

/// Where the fixtures that are about locating a problem must point.
const LOCATIONS: &[(&str, &[&str])] = &[
    // The byte order mark is not a column.
    ("16-bom-with-error.toml", &["1:11", "3:9"]),
    ("17-crlf-errors-on-lines-4-and-7.toml", &["4:9", "7:11"]),
    ("19-not-utf8.toml", &["3:24"]),
    ("20-deep-nesting.toml", &["3:91"]),
    ("71-unicode-columns.toml", &["4:31", "5:9"]),
    // Every problem of every service, including services that also have
    // schema errors of their own.
    (
        "45-many-problems.toml",
        &[
            "6:21", "7:11", "8:10", "9:9", "10:12", "11:15", "12:21", "16:9", "17:1", "21:12",
            "21:36", "22:15",
        ],
    ),
    ("36-depends-on-cycle.toml", &["7:15"]),
];

#[test]
fn every_invalid_fixture_is_refused_with_located_diagnostics() {
    let dir = fixtures_dir();
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    assert!(
        names.len() >= 30,
        "the corpus has only {} files",
        names.len()
    );
    let mut failed = Vec::new();
    for name in &names {
        let result = catch_unwind(AssertUnwindSafe(|| {
            let stderr = refused(&dir, name);
            if let Some((_, want)) = LOCATIONS.iter().find(|(n, _)| n == name) {
                assert_eq!(
                    error_locations(&stderr, name),
                    *want,
                    "{name}: locations; stderr:\n{stderr}"
                );
            }
            snapshot(name, &dir.join(name), &stderr);
        }));
        if result.is_err() {
            failed.push(name.clone());
        }
    }
    assert!(failed.is_empty(), "fixtures that failed: {failed:#?}");
}

#[test]
fn dependency_cycle_is_named() {
    let stderr = refused(&fixtures_dir(), "36-depends-on-cycle.toml");
    assert!(
        stderr.contains("api → db → web → api"),
        "the cycle should be spelled out:\n{stderr}"
    );
}

#[test]
fn typos_get_a_did_you_mean_hint() {
    for (name, hint) in [
        ("06-unknown-key-top-level.toml", "did you mean `project`?"),
        ("07-unknown-key-service.toml", "did you mean `command`?"),
        (
            "08-unknown-key-healthcheck.toml",
            "did you mean `interval`?",
        ),
        ("09-unknown-key-update.toml", "did you mean `parallelism`?"),
        ("26-bad-mode.toml", "did you mean `sequential`?"),
        ("35-depends-on-missing.toml", "did you mean `db`?"),
    ] {
        let stderr = refused(&fixtures_dir(), name);
        assert!(
            stderr.contains(&format!("help: {hint}")),
            "{name}: expected the hint {hint:?} in:\n{stderr}"
        );
    }
}

/// The 2 MiB file is generated rather than committed.
#[test]
fn file_over_one_mib_is_refused_before_parsing() {
    let dir = tempfile::tempdir().unwrap();
    let name = "too-large.toml";
    let mut text = String::from("[services.web]\nimage = \"nginx:1.27\"\n");
    let line = "# padding padding padding padding padding padding padding padding\n";
    while text.len() + line.len() <= 2 * 1024 * 1024 {
        text.push_str(line);
    }
    text.push_str(&"#".repeat(2 * 1024 * 1024 - text.len() - 1));
    text.push('\n');
    assert_eq!(text.len(), 2 * 1024 * 1024);
    std::fs::write(dir.path().join(name), &text).unwrap();
    let stderr = refused(dir.path(), name);
    assert!(stderr.contains("larger than 1 MiB, the limit"), "{stderr}");
    let mut settings = insta::Settings::clone_current();
    settings.set_description(format!(
        "muster validate -f {name} (a generated 2 MiB file)"
    ));
    settings.set_omit_expression(true);
    settings.bind(|| insta::assert_snapshot!("too-large", stderr));
}

#[test]
fn file_of_exactly_one_mib_is_not_too_large() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("[services.web]\nimage = \"nginx:1.27\"\n");
    text.push_str(&"#".repeat(1024 * 1024 - text.len() - 1));
    text.push('\n');
    assert_eq!(text.len(), muster::config::MAX_FILE_BYTES);
    std::fs::write(dir.path().join("services.toml"), &text).unwrap();
    Command::cargo_bin("muster")
        .unwrap()
        .current_dir(dir.path())
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_FILE")
        .env_remove("MUSTER_PROJECT")
        .args(["validate", "-f", "services.toml"])
        .assert()
        .code(0);
}

#[test]
fn missing_file_is_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    let stderr = unusable(dir.path(), "does-not-exist.toml");
    let here = dir.path().canonicalize().unwrap();
    // A file that is not there has no line to point at, and is not said to
    // be invalid besides.
    assert!(
        stderr.starts_with(&format!(
            "error: no does-not-exist.toml in {} [muster::config::not_found]",
            here.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("is invalid"), "{stderr}");
}

#[test]
fn directory_given_as_file_is_an_invalid_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("services.toml")).unwrap();
    let stderr = unusable(dir.path(), "services.toml");
    assert!(
        stderr.starts_with("error: cannot read services.toml: it is a directory"),
        "{stderr}"
    );
    assert!(!stderr.contains("is invalid"), "{stderr}");
}

/// Issue 15: a file under 1 MiB of some 19,000 services at count 1000 made
/// `plan` allocate until it died. Generated rather than committed.
#[test]
fn file_of_nineteen_million_containers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let name = "huge-counts.toml";
    let mut text = String::new();
    let mut services = 0;
    loop {
        let service = format!("[services.s{services}]\nimage=\"x\"\ncount=1000\n");
        if text.len() + service.len() > muster::config::MAX_FILE_BYTES {
            break;
        }
        text.push_str(&service);
        services += 1;
    }
    assert!(services > 19_000, "only {services} services fit");
    std::fs::write(dir.path().join(name), &text).unwrap();
    let stderr = refused(dir.path(), name);
    assert_eq!(error_locations(&stderr, name).len(), 1, "{stderr}");
    assert!(
        stderr.contains("[muster::config::too_many_containers]")
            && stderr.contains(&format!(
                "the file declares {} containers in all; the limit is {}",
                services * 1000,
                muster::config::MAX_TOTAL_CONTAINERS
            )),
        "{stderr}"
    );
}

/// Where each overlay fixture's problems must be reported: the file (as
/// given on the command line) and `line:col` of every `error:` line.
const OVERLAY_LOCATIONS: &[(&str, &[&str])] = &[
    ("bad-dotenv", &[".env:2:1"]),
    (
        "errors-in-both",
        &[
            "services.toml:3:11",
            "overlay.toml:2:1",
            "overlay.toml:3:10",
            "overlay.toml:7:1",
        ],
    ),
    ("incomplete-service", &["overlay.toml:4:11"]),
    ("project-changed", &["overlay.toml:2:11"]),
    (
        "required-variable",
        &[
            "overlay.toml:2:9",
            "overlay.toml:3:9",
            "overlay.toml:4:13",
            "overlay.toml:4:31",
        ],
    ),
];

/// `tests/fixtures/invalid-overlays/<case>/`: `services.toml` with
/// `overlay.toml` over it (and a `.env` where there is one) is refused with
/// exit 3, each problem located in the file where its value was written,
/// all of them in one run.
#[test]
fn every_invalid_overlay_is_refused_in_the_file_that_holds_the_problem() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/invalid-overlays");
    let mut cases: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    cases.sort();
    let listed: Vec<&str> = OVERLAY_LOCATIONS.iter().map(|(n, _)| *n).collect();
    assert_eq!(cases, listed, "every overlay fixture has its locations");
    for (case, want) in OVERLAY_LOCATIONS {
        let dir = root.join(case);
        let out = Command::cargo_bin("muster")
            .unwrap()
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .env_remove("MUSTER_FILE")
            .env_remove("MUSTER_PROJECT")
            .env_remove("MUSTER_ENV_FILE")
            .env_remove("RELEASE_TAG")
            .env_remove("WEB_COUNT")
            .args(["-f", "services.toml", "-f", "overlay.toml", "validate"])
            .output()
            .unwrap();
        let stderr = String::from_utf8(out.stderr).expect("stderr is UTF-8");
        assert_eq!(out.status.code(), Some(3), "{case}:\n{stderr}");
        let located: Vec<String> = stderr
            .lines()
            .filter_map(|l| l.strip_prefix("error: "))
            .filter_map(|l| {
                let mut parts = l.splitn(4, ':');
                let (file, line, col) = (parts.next()?, parts.next()?, parts.next()?);
                line.parse::<u32>().ok()?;
                col.parse::<u32>().ok()?;
                Some(format!("{file}:{line}:{col}"))
            })
            .collect();
        assert_eq!(located, *want, "{case}:\n{stderr}");
        let mut settings = insta::Settings::clone_current();
        settings.set_description(format!(
            "muster -f services.toml -f overlay.toml validate, in invalid-overlays/{case}"
        ));
        settings.set_omit_expression(true);
        settings.bind(|| insta::assert_snapshot!(format!("overlay-{case}"), stderr));
    }
}
