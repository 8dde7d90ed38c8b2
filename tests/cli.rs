//! The command line as users meet it: help texts (snapshotted), exit codes
//! of a bad command line, completions, colour settings and the environment
//! variables that stand in for flags. Needs no engine.

use std::path::{Path, PathBuf};

use assert_cmd::Command;

const INVALID: &str = "[services.web]\nimage = \"nginx:1.27\"\ncount = \"3\"\n";

fn muster() -> Command {
    let mut cmd = Command::cargo_bin("muster").unwrap();
    cmd.env("COLUMNS", "100")
        .env("NO_COLOR", "1")
        .env_remove("MUSTER_FILE")
        .env_remove("MUSTER_PROJECT")
        // Help shows the values of these; the snapshots must not depend on them.
        .env_remove("DOCKER_HOST")
        .env_remove("CLICOLOR_FORCE")
        // Adds workflow commands to stdout (tested below).
        .env_remove("GITHUB_ACTIONS");
    cmd
}

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("examples")
        .join(name)
        .join("services.toml")
}

fn stdout_of(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn help_is_stable() {
    let help = stdout_of(muster().arg("--help"));
    insta::assert_snapshot!("help", help);
}

#[test]
fn validate_help_is_stable() {
    let help = stdout_of(muster().args(["validate", "--help"]));
    insta::assert_snapshot!("validate_help", help);
}

#[test]
fn bad_command_lines_exit_64() {
    for args in [
        &["--no-such-flag"][..],
        &["validate", "--no-such-flag"],
        &["no-such-command"],
        &["--color", "sometimes", "validate"],
        &["completions", "powershell-9000"],
        &[],
        // Markdown is for plans only; a saved plan carries its own --prune.
        &["ps", "--output", "markdown"],
        &["watch", "--output", "markdown"],
        &["apply", "plan.json", "--dry-run"],
        &["apply", "plan.json", "--prune"],
    ] {
        let out = muster().args(args).output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(64),
            "muster {args:?} should exit 64; stderr:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            !out.stderr.is_empty(),
            "muster {args:?} should say what is wrong"
        );
    }
}

#[test]
fn version_and_help_exit_0() {
    for args in [&["--version"][..], &["--help"], &["validate", "--help"]] {
        muster().args(args).assert().code(0);
    }
}

#[test]
fn completions_register_muster_s_own_completer_for_each_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = stdout_of(muster().args(["completions", shell]));
        assert!(
            script.contains(env!("CARGO_BIN_EXE_muster")) && script.contains("COMPLETE"),
            "{shell}: the script does not call muster back:\n{script}"
        );
    }
}

/// What muster offers for the last of `words` (after `muster`), run in
/// `dir` as the shell's script runs it.
fn completed(dir: &Path, words: &[&str], env: &[(&str, &str)]) -> Vec<String> {
    let mut cmd = muster();
    cmd.current_dir(dir)
        .env("COMPLETE", "bash")
        .env("_CLAP_COMPLETE_INDEX", words.len().to_string())
        .env("_CLAP_IFS", "\n")
        .args(["--", "muster"])
        .args(words);
    for (k, v) in env {
        cmd.env(k, v);
    }
    stdout_of(&mut cmd)
        .lines()
        .filter(|c| !c.starts_with('-'))
        .map(str::to_string)
        .collect()
}

#[test]
fn service_names_of_the_file_complete_where_a_service_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let file = "[services.web]\nimage = \"x\"\n[services.worker]\nimage = \"x\"\n[services.db]\nimage = \"x\"\n";
    std::fs::write(dir.path().join("services.toml"), file).unwrap();
    std::fs::create_dir(dir.path().join("prod")).unwrap();
    // An overlay adds a service; its base has a problem, and still completes.
    std::fs::write(
        dir.path().join("prod/extra.toml"),
        "[services.cache]\nimage = \"x\"\ncount = \"many\"\n",
    )
    .unwrap();
    let all = ["db", "web", "worker"];
    for words in [
        &["logs", ""][..],
        &["logs", "-f", ""],
        &["exec", ""],
        &["plan", ""],
        &["plan", "web", ""],
        &["restart", ""],
    ] {
        assert_eq!(completed(dir.path(), words, &[]), all, "muster {words:?}");
    }
    assert_eq!(
        completed(dir.path(), &["logs", "w"], &[]),
        ["web", "worker"]
    );
    assert_eq!(
        completed(dir.path(), &["scale", "w"], &[]),
        ["web=", "worker="]
    );
    // `apply` takes a saved plan too: files complete there (in the
    // directory's order).
    let mut plan_or_service = completed(dir.path(), &["apply", ""], &[]);
    plan_or_service.sort();
    assert_eq!(
        plan_or_service,
        ["db", "prod/", "services.toml", "web", "worker"]
    );
    // The files named by -f, --file or MUSTER_FILE.
    let with_overlay = ["cache", "db", "web", "worker"];
    assert_eq!(
        completed(
            dir.path(),
            &[
                "-f",
                "services.toml",
                "-f",
                "prod/extra.toml",
                "restart",
                ""
            ],
            &[]
        ),
        with_overlay
    );
    assert_eq!(
        completed(dir.path(), &["logs", "--file", "prod/extra.toml", ""], &[]),
        ["cache"]
    );
    assert_eq!(
        completed(
            dir.path(),
            &["exec", ""],
            &[("MUSTER_FILE", "services.toml:prod/extra.toml")]
        ),
        with_overlay
    );
    // No file: nothing to offer, and no error.
    assert!(completed(&dir.path().join("prod"), &["logs", ""], &[]).is_empty());
}

#[test]
fn the_bash_script_completes_service_names_through_muster() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("services.toml"),
        "[services.web]\nimage = \"x\"\n[services.worker]\nimage = \"x\"\n",
    )
    .unwrap();
    let line = format!(
        "source <({} completions bash); COMP_WORDS=(muster scale wo); COMP_CWORD=2; \
         _clap_complete_muster muster wo scale; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
        env!("CARGO_BIN_EXE_muster")
    );
    let out = std::process::Command::new("bash")
        .args(["-c", &line])
        .current_dir(dir.path())
        .env_remove("MUSTER_FILE")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "worker=\n",
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Runs `muster <args>` with stderr on a terminal (through `script`, which
/// allocates a pseudo-terminal), so that colour would be used if allowed.
fn on_a_terminal(dir: &Path, args: &str, no_color: bool) -> String {
    let line = format!("{} {args}", env!("CARGO_BIN_EXE_muster"));
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-q", "-e", "-c", &line, "/dev/null"])
        .current_dir(dir)
        .env("TERM", "xterm-256color")
        .env_remove("MUSTER_FILE")
        .env_remove("MUSTER_PROJECT")
        .env_remove("CLICOLOR_FORCE");
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    let out = cmd.output().unwrap_or_else(|e| {
        panic!("cannot run `script` (util-linux) to get a terminal: {e}; install util-linux")
    });
    assert_eq!(
        out.status.code(),
        Some(3),
        "muster {args} on a terminal should exit 3; output:\n{}",
        String::from_utf8_lossy(&out.stdout)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn no_color_and_color_never_give_no_escape_bytes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("services.toml"), INVALID).unwrap();

    // The control: on a terminal, `--color always` does colour the report,
    // so the checks below would see escape bytes if they were there.
    let coloured = on_a_terminal(dir.path(), "--color always validate", false);
    assert!(
        coloured.contains('\u{1b}'),
        "--color always on a terminal should colour:\n{coloured}"
    );
    assert!(coloured.contains("services.toml:3:9"), "{coloured}");

    let no_color = on_a_terminal(dir.path(), "validate", true);
    assert!(
        !no_color.contains('\u{1b}'),
        "NO_COLOR=1 should give no escape bytes:\n{no_color:?}"
    );
    assert!(no_color.contains("services.toml:3:9"), "{no_color}");

    let never = on_a_terminal(dir.path(), "--color never validate", false);
    assert!(
        !never.contains('\u{1b}'),
        "--color never should give no escape bytes:\n{never:?}"
    );

    // Not a terminal (CI): plain `error:` lines, whatever the setting.
    for color in ["auto", "never", "always"] {
        let out = muster()
            .env_remove("NO_COLOR")
            .current_dir(dir.path())
            .args(["--color", color, "validate"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(3));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(
            stderr.starts_with("error: services.toml:3:9: "),
            "--color {color} in CI:\n{stderr}"
        );
        if color != "always" {
            assert!(!stderr.contains('\u{1b}'), "--color {color}:\n{stderr:?}");
        }
    }
}

/// A hostile file must not drive the terminal: its escape sequences are
/// masked wherever its text is quoted.
#[test]
fn escape_bytes_in_the_file_never_reach_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let hostile = "[services.web]\nimage = \"x\"\ncount = \"\u{1b}[31mRED\"\n";
    std::fs::write(dir.path().join("services.toml"), hostile).unwrap();

    let no_color = on_a_terminal(dir.path(), "validate", true);
    assert!(no_color.contains("services.toml:3:10"), "{no_color}");
    assert!(!no_color.contains('\u{1b}'), "{no_color:?}");
    let coloured = on_a_terminal(dir.path(), "--color always validate", false);
    assert!(!coloured.contains("\u{1b}[31mRED"), "{coloured:?}");

    let out = muster()
        .current_dir(dir.path())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with("error: services.toml:3:10: "),
        "{stderr}"
    );
    assert!(!stderr.contains('\u{1b}'), "{stderr:?}");
}

#[test]
fn muster_file_env_stands_in_for_dash_f() {
    let empty = tempfile::tempdir().unwrap();
    let file = example("web");
    let out = stdout_of(
        muster()
            .current_dir(empty.path())
            .env("MUSTER_FILE", &file)
            .arg("validate"),
    );
    assert!(
        out.contains(&format!("{} is valid: project web", file.display())),
        "{out}"
    );

    let bad = empty.path().join("bad.toml");
    std::fs::write(&bad, INVALID).unwrap();
    let out = muster()
        .current_dir(empty.path())
        .env("MUSTER_FILE", &bad)
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("error: {}:3:9: ", bad.display())),
        "{stderr}"
    );

    // -f wins over the environment.
    muster()
        .current_dir(empty.path())
        .env("MUSTER_FILE", &bad)
        .args(["validate", "-f"])
        .arg(&file)
        .assert()
        .code(0);
}

#[test]
fn a_directory_given_with_f_is_said_to_be_one() {
    let dir = tempfile::tempdir().unwrap();
    let out = muster()
        .args(["plan", "-f"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("it is a directory, not a regular file"),
        "{stderr}"
    );
}

#[test]
fn default_file_is_services_toml_in_the_current_directory() {
    let dir = tempfile::tempdir().unwrap();
    let out = muster()
        .current_dir(dir.path())
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    // A missing file is named with the directory muster looked in.
    let here = dir.path().canonicalize().unwrap();
    let stderr = String::from_utf8(out.stderr)
        .unwrap()
        .replace(&here.display().to_string(), "[DIR]");
    insta::assert_snapshot!("missing_file", stderr);

    std::fs::copy(example("app"), dir.path().join("services.toml")).unwrap();
    let out = stdout_of(muster().current_dir(dir.path()).arg("validate"));
    assert!(out.contains("is valid: project shop"), "{out}");
}

#[test]
fn a_directory_name_that_makes_no_project_name_asks_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().join("プロジェクト1");
    std::fs::create_dir(&here).unwrap();
    std::fs::copy(example("web"), here.join("services.toml")).unwrap();
    let text = std::fs::read_to_string(here.join("services.toml")).unwrap();
    let unnamed: String = text
        .lines()
        .filter(|l| !l.starts_with("project"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(here.join("services.toml"), unnamed).unwrap();
    let out = muster()
        .current_dir(&here)
        .arg("validate")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(3));
    insta::assert_snapshot!("unnamed_project", String::from_utf8(out.stderr).unwrap());
    let out = stdout_of(
        muster()
            .current_dir(&here)
            .args(["--project", "shop", "validate"]),
    );
    assert!(out.contains("is valid: project shop"), "{out}");
}

#[test]
fn project_flag_and_env_override_the_file() {
    let file = example("app");
    let out = stdout_of(
        muster()
            .args(["validate", "--project", "other", "-f"])
            .arg(&file),
    );
    assert!(out.contains("project other"), "{out}");
    let out = stdout_of(
        muster()
            .env("MUSTER_PROJECT", "from-env")
            .args(["validate", "-f"])
            .arg(&file),
    );
    assert!(out.contains("project from-env"), "{out}");
}

#[test]
fn quiet_validate_prints_nothing_on_success() {
    let out = stdout_of(muster().args(["-q", "validate", "-f"]).arg(example("web")));
    assert_eq!(out, "");
}

/// Issue 15: durations whose parts overflow when added up are a bad file
/// (exit 3, located) or a bad flag (exit 64), never a panic (101) or an
/// internal error (1).
#[test]
fn overflowing_durations_are_refused_not_panicked() {
    const HUGE: &str = "10000000000000000000s10000000000000000000s";
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("services.toml"),
        format!("[services.web]\nimage = \"nginx:1.27\"\nstop_grace_period = \"{HUGE}\"\n"),
    )
    .unwrap();
    let runs: [(&[&str], i32); 6] = [
        (&["validate"], 3),
        (&["plan"], 3),
        (&["apply"], 3),
        (&["apply", "--lock-timeout", HUGE], 64),
        (&["watch", "--debounce", HUGE], 64),
        (&["watch", "--resync", HUGE], 64),
    ];
    for (args, code) in runs {
        let out = muster()
            .current_dir(dir.path())
            // The file is refused before the engine is asked anything.
            .env("DOCKER_HOST", "unix:///nonexistent/docker.sock")
            .env_remove("RUST_BACKTRACE")
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "muster {args:?}:\n{stderr}");
        for crash in [
            "panicked",
            "RUST_BACKTRACE",
            "internal error",
            "overflow when",
        ] {
            assert!(!stderr.contains(crash), "muster {args:?}:\n{stderr}");
        }
        if code == 3 {
            assert!(
                stderr.contains("error: services.toml:3:21: service `web`: ")
                    && stderr.contains("is longer than a year"),
                "muster {args:?}: the duration should be located:\n{stderr}"
            );
        } else {
            assert!(
                stderr.contains("longer than a year"),
                "muster {args:?}:\n{stderr}"
            );
        }
    }
}

/// In a GitHub Actions run, each problem of the file is also a `::error`
/// workflow command at the same line and column as the plain report.
#[test]
fn github_actions_gets_one_error_command_per_problem() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("services.toml"),
        "[services.web]\nimage = \"nginx:1.27\"\ncount = \"3\"\nfoo = 1\n\n[services.db]\nimage = \"pg:16\"\nports = [\"99999:5432\"]\n",
    )
    .unwrap();
    let run = |github: Option<&str>| {
        let mut cmd = muster();
        cmd.current_dir(dir.path()).arg("validate");
        if let Some(v) = github {
            cmd.env("GITHUB_ACTIONS", v);
        }
        let out = cmd.output().unwrap();
        assert_eq!(out.status.code(), Some(3));
        (
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (stdout, stderr) = run(Some("true"));
    let places: Vec<String> = stderr
        .lines()
        .filter_map(|l| l.strip_prefix("error: services.toml:"))
        .map(|l| {
            let mut parts = l.splitn(3, ':');
            format!(
                "line={},col={}",
                parts.next().unwrap(),
                parts.next().unwrap()
            )
        })
        .collect();
    assert!(places.len() >= 3, "{stderr}");
    let commands: Vec<&str> = stdout.lines().collect();
    assert_eq!(commands.len(), places.len(), "{stdout}");
    for (command, place) in commands.iter().zip(&places) {
        let prefix = format!("::error file=services.toml,{place}::");
        assert!(command.starts_with(&prefix), "{command} for {place}");
    }
    assert!(
        stdout.contains("::error file=services.toml,line=3,col=9::"),
        "{stdout}"
    );
    assert!(
        stdout.contains("::error file=services.toml,line=4,col=1::"),
        "{stdout}"
    );

    for other in [None, Some("false")] {
        let (stdout, stderr) = run(other);
        assert_eq!(stdout, "", "GITHUB_ACTIONS={other:?}");
        assert!(stderr.contains("error: services.toml:3:9:"), "{stderr}");
    }
}

#[test]
fn a_service_scaled_twice_on_one_line_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("services.toml");
    let text = "[services.web]\nimage = \"nginx:1.27\"\ncount = 1\n";
    std::fs::write(&file, text).unwrap();
    let out = muster()
        .arg("-f")
        .arg(&file)
        .args(["scale", "web=2", "web=3"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("web is given more than once"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        text,
        "the file changed"
    );
}

#[test]
fn habits_from_other_tools_get_a_tip() {
    for (args, tip) in [
        (&["up"][..], "tip: in muster that is `muster apply`"),
        (&["status"], "tip: in muster that is `muster ps`"),
        (&["apply", "--plan"], "tip: in muster that is `--dry-run`"),
    ] {
        let out = muster().args(args).output().unwrap();
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(tip), "{args:?}: {stderr}");
    }
}

/// Where clap already suggests muster's spelling, muster does not say it
/// again.
#[test]
fn a_misspelt_flag_gets_one_tip() {
    let out = muster().args(["apply", "--dryrun"]).output().unwrap();
    assert_eq!(out.status.code(), Some(64));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.matches("tip:").count(), 1, "{stderr}");
    assert!(stderr.contains("'--dry-run'"), "{stderr}");
}

/// `plan --out` naming a file the plan is made from (the file, an
/// overlay, the `.env` file) is refused before anything is read or
/// written: the file stays as it was.
#[test]
fn plan_out_never_overwrites_a_file_the_plan_is_made_from() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(example("app"), dir.path().join("services.toml")).unwrap();
    std::fs::write(dir.path().join(".env"), "A=1\n").unwrap();
    let before = std::fs::read(dir.path().join("services.toml")).unwrap();
    for out in ["services.toml", "./.env"] {
        let run = muster()
            .current_dir(dir.path())
            .args(["plan", "--out", out])
            .output()
            .unwrap();
        assert_eq!(run.status.code(), Some(64), "{run:?}");
        let stderr = String::from_utf8_lossy(&run.stderr);
        assert!(
            stderr.contains(&format!("--out {out} would overwrite")),
            "{stderr}"
        );
    }
    assert_eq!(
        std::fs::read(dir.path().join("services.toml")).unwrap(),
        before
    );
    assert_eq!(std::fs::read(dir.path().join(".env")).unwrap(), b"A=1\n");
}
