//! Output that cannot lie (issue 15, item 5), on the real engine: text that
//! muster did not write (forged labels on the engine, a container's output,
//! a lock holder's command, values from the file) reaches the terminal with
//! its control characters and bidi overrides shown as escapes, never raw.

mod support;

use std::collections::HashMap;

use muster::engine::{
    LABEL_CONFIG, LABEL_HASH, LABEL_LOCK, LABEL_ORDINAL, LABEL_PROJECT, LABEL_SERVICE,
};
use muster::lock::LABEL_LOCK_PROJECT;
use support::{Outcome, muster_exits, run_foreign};
use support::{Project, block_on, docker};

/// `web` has hostile values in its environment and a hostile label key;
/// `bad` prints escape sequences and exits at once.
const FILE: &str = r#"project = "{project}"

[services.web]
image = "{image}"
command = ["sleep", "3600"]
init = true
stop_grace_period = "1s"
env = { BANNER = "top\u001b[2J\u001b]0;owned\u0007\nsecond \u202eenil", ONE = "x\u009b2Ky" }
labels = { "key\u001b[8m" = "v" }

[services.bad]
image = "{image}"
command = ["sh", "-c", "printf 'boot\\033[2J\\033]0;pwned\\007 \\302\\233K \\342\\200\\256live\\r\\n'; exit 3"]
depends_on = ["web"]
init = true
restart = "no"
stop_grace_period = "1s"
ready_timeout = "5s"
"#;

/// A character that must never reach the terminal raw.
fn is_hostile(c: char) -> bool {
    (c.is_control() && c != '\n')
        || ('\u{202a}'..='\u{202e}').contains(&c)
        || ('\u{2066}'..='\u{2069}').contains(&c)
}

fn assert_clean(what: &str, out: &Outcome) {
    for (stream, text) in [("stdout", &out.stdout), ("stderr", &out.stderr)] {
        let bad: Vec<(usize, char)> = text
            .char_indices()
            .filter(|(_, c)| is_hostile(*c))
            .collect();
        assert!(
            bad.is_empty(),
            "{what}: raw control characters {bad:?} in {stream}:\n{}",
            text.escape_debug()
        );
    }
}

fn remove(name: &str) {
    let force = bollard::query_parameters::RemoveContainerOptionsBuilder::default()
        .force(true)
        .build();
    block_on(docker().remove_container(name, Some(force))).unwrap();
}

#[test]
fn hostile_text_from_the_engine_the_containers_and_the_file_is_shown_escaped() {
    let project = Project::new("out-sec");
    project.write(FILE);
    let p = project.name().to_string();

    // web-1, as if muster had made it, with a forged config that a
    // recreate's diff shows; and a container of a forged service name.
    let forged_config = serde_json::json!({
        "env.BANNER": "old\u{1b}[1A\u{1b}[2K",
        "image": "\u{202e}gnp.exe",
        "key\u{1b}[31m": "\u{9b}31m",
    })
    .to_string();
    let web1 = format!("{p}-web-1");
    run_foreign(
        &web1,
        &[
            (LABEL_PROJECT, &p),
            (LABEL_SERVICE, "web"),
            (LABEL_ORDINAL, "1"),
            (LABEL_HASH, "forged"),
            (LABEL_CONFIG, &forged_config),
        ],
    );
    run_foreign(
        &format!("{p}-ghost-1"),
        &[
            (LABEL_PROJECT, &p),
            (LABEL_SERVICE, "gh\u{1b}]0;title\u{7}ost\u{202e}"),
            (LABEL_ORDINAL, "1"),
        ],
    );

    let out = muster_exits(&project, &["plan"], 0);
    assert_clean("plan", &out);
    for shown in [
        "\\x1b[2J",                         // the file's env value, line by line
        "\\u{202e}enil",                    // a bidi override in it
        "\\x9b2K",                          // a C1 control in another value
        "key\\x1b[8m",                      // a label key of the file
        "\\x1b[1A",                         // the forged config's value
        "key\\x1b[31m",                     // and its key
        "gh\\x1b]0;title\\x07ost\\u{202e}", // the forged service name
    ] {
        assert!(
            out.stdout.contains(shown),
            "plan should show {shown}:\n{out}"
        );
    }

    // The same plan for a pull request and for a script.
    for format in ["markdown", "json"] {
        let out = muster_exits(&project, &["plan", "--output", format], 0);
        assert_clean(&format!("plan --output {format}"), &out);
        assert!(out.stdout.contains("\\u{202e}enil"), "{format}:\n{out}");
    }

    // A live holder (this test process) whose command is hostile.
    let mut holder = muster::lock::me("muster apply");
    holder.command = "muster\u{1b}[2K\r apply \u{202e}".into();
    let lock = format!("{p}-muster-lock");
    block_on(async {
        let body = bollard::models::ContainerCreateBody {
            image: Some(support::image().to_string()),
            labels: Some(HashMap::from([
                (
                    LABEL_LOCK.to_string(),
                    serde_json::to_string(&holder).unwrap(),
                ),
                (LABEL_LOCK_PROJECT.to_string(), p.clone()),
            ])),
            ..Default::default()
        };
        let options = bollard::query_parameters::CreateContainerOptionsBuilder::default()
            .name(&lock)
            .build();
        docker().create_container(Some(options), body).await
    })
    .unwrap();
    let out = muster_exits(&project, &["apply", "--lock-timeout", "1s"], 1);
    assert_clean("apply under a hostile lock holder", &out);
    assert!(
        out.stderr.contains("muster\\x1b[2K\\x0d apply \\u{202e}"),
        "{out}"
    );
    remove(&lock);

    // bad fails: its output is shown, escaped.
    let out = muster_exits(&project, &["apply"], 1);
    assert_clean("apply of a failing service", &out);
    assert!(
        out.stderr
            .contains("boot\\x1b[2J\\x1b]0;pwned\\x07 \\x9bK \\u{202e}live\\x0d"),
        "the log tail of bad, escaped:\n{out}"
    );

    let out = muster_exits(&project, &["ps"], 0);
    assert_clean("ps", &out);
    assert!(out.stdout.contains("gh\\x1b]0;title\\x07ost"), "{out}");
}
