//! Property tests of the loader on hostile input: random bytes, token soup,
//! and mutations of every example. The loader must never panic, every
//! refusal must carry at least one located problem, and both renderings of
//! it must work. 256 cases per property by default; raise with
//! `PROPTEST_CASES=10000 cargo test --test loader_fuzz`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use proptest::sample::Index;

const DIR: &str = "/srv/fuzz";

/// Loads `bytes` and checks what must hold of any outcome.
fn check(bytes: &[u8]) -> Result<(), TestCaseError> {
    match muster::config::parse_bytes("fuzz.toml", bytes, Path::new(DIR)) {
        Ok(desired) => {
            prop_assert!(
                !desired.services.is_empty(),
                "a valid file declares a service"
            );
            prop_assert!(muster::config::valid_name(&desired.project));
        }
        Err(invalid) => {
            prop_assert!(!invalid.problems.is_empty(), "an Err without a problem");
            for p in &invalid.problems {
                if let Some(span) = &p.span {
                    prop_assert!(
                        span.start <= span.end && span.end <= invalid.text.len(),
                        "span {span:?} outside the text ({} bytes): {p:?}",
                        invalid.text.len()
                    );
                }
            }
            let plain = invalid.render_plain();
            let located = plain
                .lines()
                .filter(|l| l.starts_with("error: fuzz.toml:"))
                .count();
            prop_assert_eq!(
                located,
                invalid.problems.len(),
                "one located line per problem:\n{}",
                plain
            );
            let _ = invalid.render_graphical(false);
        }
    }
    Ok(())
}

/// The text of every `examples/*/services.toml`.
fn examples() -> &'static [Vec<u8>] {
    static EXAMPLES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    EXAMPLES.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path().join("services.toml"))
            .filter(|p| p.is_file())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "no examples to mutate");
        files.iter().map(|f| std::fs::read(f).unwrap()).collect()
    })
}

/// Text that tends to get past the TOML parser into the schema and
/// semantic checks.
const TOKENS: &[&str] = &[
    "\n",
    "\r\n",
    " ",
    "\t",
    "=",
    ".",
    ",",
    "[",
    "]",
    "[[",
    "]]",
    "{",
    "}",
    "\"",
    "'",
    "\"\"\"",
    "#",
    "\u{feff}",
    "é",
    "\0",
    "[services.web]",
    "[services.db]",
    "[services.web.healthcheck]",
    "[services.web.update]",
    "[services]",
    "services",
    "project",
    "backend",
    "image",
    "count",
    "mode",
    "command",
    "entrypoint",
    "env",
    "ports",
    "expose",
    "volumes",
    "labels",
    "depends_on",
    "restart",
    "init",
    "healthcheck",
    "update",
    "test",
    "interval",
    "retries",
    "parallelism",
    "order",
    "memory",
    "cpus",
    "stop_grace_period",
    "ready_timeout",
    "\"nginx:1.27\"",
    "\"sequential\"",
    "\"parallel\"",
    "\"start-first\"",
    "\"8080:80\"",
    "\"127.0.0.1:80:80/udp\"",
    "\"data-{ordinal}:/data\"",
    "\"./x-{ordinal}:/y\"",
    "\"io.muster.project\"",
    "[\"web\"]",
    "[\"db\"]",
    "\"1m30s\"",
    "\"256MiB\"",
    "\"sh -c 'x\"",
    "0",
    "1",
    "-1",
    "3",
    "1001",
    "9223372036854775807",
    "0.5",
    "nan",
    "inf",
    "true",
    "1979-05-27",
];

fn token_soup() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(TOKENS), 0..80).prop_map(|t| t.concat().into_bytes())
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(Index, u8),
    Delete(Index, usize),
    Insert(Index, Vec<u8>),
    InsertToken(Index, &'static str),
    Truncate(Index),
    DuplicateLine(Index),
    SwapLines(Index, Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<Index>(), 1..40usize).prop_map(|(i, n)| Mutation::Delete(i, n)),
        (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<Index>(), prop::sample::select(TOKENS))
            .prop_map(|(i, t)| Mutation::InsertToken(i, t)),
        any::<Index>().prop_map(Mutation::Truncate),
        any::<Index>().prop_map(Mutation::DuplicateLine),
        (any::<Index>(), any::<Index>()).prop_map(|(a, b)| Mutation::SwapLines(a, b)),
    ]
}

fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    bytes
        .split_inclusive(|b| *b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

fn apply(mut bytes: Vec<u8>, m: &Mutation) -> Vec<u8> {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len + 1) };
    match m {
        Mutation::Flip(i, x) if !bytes.is_empty() => {
            let i = i.index(bytes.len());
            bytes[i] ^= x;
        }
        Mutation::Flip(..) => {}
        Mutation::Delete(i, n) => {
            let start = at(i, bytes.len()).min(bytes.len());
            let end = (start + n).min(bytes.len());
            bytes.drain(start..end);
        }
        Mutation::Insert(i, b) => {
            let at = at(i, bytes.len());
            bytes.splice(at..at, b.iter().copied());
        }
        Mutation::InsertToken(i, t) => {
            let at = at(i, bytes.len());
            bytes.splice(at..at, t.bytes());
        }
        Mutation::Truncate(i) => bytes.truncate(at(i, bytes.len())),
        Mutation::DuplicateLine(i) => {
            let mut ls = lines(&bytes);
            if !ls.is_empty() {
                let k = i.index(ls.len());
                let line = ls[k].clone();
                ls.insert(k, line);
            }
            bytes = ls.concat();
        }
        Mutation::SwapLines(a, b) => {
            let mut ls = lines(&bytes);
            if !ls.is_empty() {
                let (a, b) = (a.index(ls.len()), b.index(ls.len()));
                ls.swap(a, b);
            }
            bytes = ls.concat();
        }
    }
    bytes
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        check(&bytes)?;
    }

    #[test]
    fn token_soup_never_panics(bytes in token_soup()) {
        check(&bytes)?;
    }

    #[test]
    fn mutated_examples_never_panic(
        which in any::<Index>(),
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let original = &examples()[which.index(examples().len())];
        let bytes = mutations.iter().fold(original.clone(), apply);
        check(&bytes)?;
    }
}

#[test]
fn every_example_is_valid_before_mutation() {
    for bytes in examples() {
        let parsed = muster::config::parse_bytes("services.toml", bytes, Path::new(DIR));
        assert!(
            parsed.is_ok(),
            "{}",
            parsed.err().map(|e| e.render_plain()).unwrap_or_default()
        );
    }
}

/// Soup of the characters interpolation reads.
fn interpolation_soup() -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            Just("$".to_string()),
            Just("${".to_string()),
            Just("}".to_string()),
            Just(":-".to_string()),
            Just(":?".to_string()),
            Just("-".to_string()),
            Just("?".to_string()),
            Just("SET".to_string()),
            Just("UNSET".to_string()),
            Just("é".to_string()),
            "[a-z0-9_ ]{0,4}",
        ],
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    /// Interpolation never panics, leaves text without `$` as it is, and
    /// in a file value either succeeds or is a located problem.
    #[test]
    fn interpolation_never_panics(text in interpolation_soup()) {
        let mut vars = muster::config::interpolate::Vars::default();
        vars.process.insert("SET".into(), "v$al}".into());
        let out = muster::config::interpolate::interpolate(&text, &vars);
        if !text.contains('$') {
            prop_assert_eq!(out.as_deref(), Ok(text.as_str()));
        }
        let escaped = text.replace('\\', "\\\\").replace('"', "\\\"");
        let file = format!("[services.web]\nimage = \"x\"\nenv = {{ A = \"{escaped}\" }}\n");
        check(file.as_bytes())?;
    }
}
