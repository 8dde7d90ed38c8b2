//! The files of one run (SPEC §14): `-f base.toml -f prod.toml`, merged in
//! order, and the `.env` file their `${VAR}` forms may read. Reads files in
//! [`Sources::read`]; the rest is pure.
//!
//! Each file is parsed and interpolated on its own, then its spans are moved
//! to its own range of one address space (file k starts where file k-1
//! ended, plus one), and the trees are merged. The checks see one tree; a
//! problem's span says which file, and which line of it, the value was
//! written in.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::diagnostic::{Invalid, Problem, Source};
use super::file::Backend;
use super::interpolate::{self, MAX_DOTENV_BYTES, Vars};
use super::load::{check_tree, read_capped, syntax_problems, text_of};
use super::model::Desired;

/// The files a run reads: the services files in order, and the `.env`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// Never empty: the first is the base, the others overlays.
    pub files: Vec<PathBuf>,
    /// `--env-file`; default: `.env` beside the first file, when it exists.
    pub env_file: Option<PathBuf>,
    /// `--project`: the project's name, whatever the files say.
    pub project: Option<String>,
}

/// One file as read: its name as shown and its bytes.
#[derive(Debug, Clone)]
pub struct ReadFile {
    pub shown: String,
    pub bytes: Vec<u8>,
}

/// The bytes of every file of a run, read once.
#[derive(Debug, Clone)]
pub struct Read {
    pub files: Vec<ReadFile>,
    pub env: Option<ReadFile>,
    /// The first file's absolute directory (relative bind mounts, the
    /// default project name).
    pub dir: PathBuf,
    /// `--project`, as in [`Sources::project`].
    pub project: Option<String>,
}

fn unreadable(shown: &str, e: &std::io::Error, help: &str) -> Invalid {
    Invalid {
        path: shown.to_string(),
        text: Arc::from(""),
        problems: vec![
            Problem::new(
                "muster::config::unreadable",
                format!("cannot read {shown}: {e}"),
                None,
            )
            .whole_file()
            .help(help.to_string()),
        ],
    }
}

/// The code of the problem "the file is not there", whose message names
/// the directory it is not in rather than the file.
pub const NOT_FOUND: &str = "muster::config::not_found";

/// A services file that is not there, named with the directory muster
/// looked in (a relative `-f` depends on where muster runs).
fn not_found(shown: &str, path: &Path) -> Invalid {
    let name = path
        .file_name()
        .map_or_else(|| shown.to_string(), |n| n.to_string_lossy().into_owned());
    // `..` resolved, for the reader; the directory may be missing too.
    let dir = dir_of(path);
    let place = match std::fs::canonicalize(&dir) {
        Ok(dir) => dir.display().to_string(),
        Err(_) => format!("{} (no such directory)", dir.display()),
    };
    Invalid {
        path: shown.to_string(),
        text: Arc::from(""),
        problems: vec![
            Problem::new(NOT_FOUND, format!("no {name} in {place}"), None)
                .whole_file()
                .help(
                    "run muster in the directory that holds it, or give its path with -f/--file \
                 (or MUSTER_FILE); `muster import docker-compose.yml -o services.toml` writes one",
                ),
        ],
    }
}

/// The absolute directory of `file`.
pub(crate) fn dir_of(file: &Path) -> PathBuf {
    let dir = file
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

impl Sources {
    /// `file`, then `overlays` over it; `env_file` instead of `.env`;
    /// `project` instead of the files' name.
    pub fn new(
        file: &Path,
        overlays: &[PathBuf],
        env_file: Option<&PathBuf>,
        project: Option<&str>,
    ) -> Self {
        let mut files = vec![file.to_path_buf()];
        files.extend(overlays.iter().cloned());
        Sources {
            files,
            env_file: env_file.cloned(),
            project: project.map(str::to_string),
        }
    }

    pub fn single(path: &Path) -> Self {
        Sources::new(path, &[], None, None)
    }

    /// The files as messages name them: `services.toml + prod.toml`.
    pub fn shown(&self) -> String {
        let names: Vec<String> = self.files.iter().map(|f| f.display().to_string()).collect();
        names.join(" + ")
    }

    /// [`Sources::shown`], and the `.env` file when there is one: what a
    /// saved plan's `file_sha256` covers.
    pub fn shown_with_env(&self) -> String {
        let env = self.env_path();
        if env.is_file() {
            format!("{} + {}", self.shown(), env.display())
        } else {
            self.shown()
        }
    }

    /// The first file, the one `project` and relative paths come from.
    pub fn first(&self) -> &Path {
        self.files.first().map_or(Path::new("services.toml"), |p| p)
    }

    /// The first file's absolute directory.
    pub fn dir(&self) -> PathBuf {
        dir_of(self.first())
    }

    /// The `.env` file: `--env-file`, else `.env` beside the first file.
    pub fn env_path(&self) -> PathBuf {
        match (&self.env_file, self.first().parent()) {
            (Some(p), _) => p.clone(),
            (None, Some(dir)) if !dir.as_os_str().is_empty() => dir.join(".env"),
            (None, _) => PathBuf::from(".env"),
        }
    }

    /// Every file whose change changes the configuration.
    pub fn watched(&self) -> Vec<PathBuf> {
        let mut all = self.files.clone();
        all.push(self.env_path());
        all
    }

    /// Reads every file (each capped); a missing default `.env` is no error.
    ///
    /// # Errors
    /// [`Invalid`] naming the first file that cannot be read.
    pub fn read(&self) -> Result<Read, Invalid> {
        let mut files = Vec::new();
        for path in &self.files {
            let shown = path.display().to_string();
            let bytes = read_capped(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => not_found(&shown, path),
                _ => unreadable(
                    &shown,
                    &e,
                    "check the paths given with -f/--file or MUSTER_FILE",
                ),
            })?;
            files.push(ReadFile { shown, bytes });
        }
        let env_path = self.env_path();
        let shown = env_path.display().to_string();
        let env = match crate::safe_file::read_regular(&env_path, MAX_DOTENV_BYTES as u64 + 1) {
            Ok(bytes) => Some(ReadFile { shown, bytes }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.env_file.is_none() => None,
            Err(e) => {
                return Err(unreadable(
                    &shown,
                    &e,
                    "check the path given with --env-file",
                ));
            }
        };
        Ok(Read {
            files,
            env,
            dir: self.dir(),
            project: self.project.clone(),
        })
    }

    /// Reads and checks the chain, with the process environment.
    ///
    /// # Errors
    /// [`Invalid`] with every problem found, each in its file.
    pub fn load(&self, backend: Option<Backend>) -> Result<(Desired, Vec<u8>), Invalid> {
        let read = self.read()?;
        let desired = read.check(&Vars::from_process(), backend)?;
        Ok((desired, read.bytes()))
    }
}

impl Read {
    /// What a saved plan records the digest of: the file's bytes alone
    /// when it is the only one, else every file's name and bytes.
    pub fn bytes(&self) -> Vec<u8> {
        if self.files.len() == 1 && self.env.is_none() {
            return self.files[0].bytes.clone();
        }
        let mut out = Vec::new();
        for f in self.files.iter().chain(&self.env) {
            out.extend_from_slice(f.shown.as_bytes());
            out.push(0);
            out.extend_from_slice(&f.bytes);
            out.push(0);
        }
        out
    }

    /// `process` with the `.env` file's variables added.
    ///
    /// # Errors
    /// [`Invalid`] located in the `.env` file.
    pub fn vars(&self, process: &Vars) -> Result<Vars, Invalid> {
        let mut vars = process.clone();
        if let Some(env) = &self.env {
            vars.dotenv = parse_env_file(env)?;
        }
        Ok(vars)
    }

    fn texts(&self) -> Result<Vec<(String, &str)>, Invalid> {
        self.files
            .iter()
            .map(|f| Ok((f.shown.clone(), text_of(&f.shown, &f.bytes)?)))
            .collect()
    }

    /// Checks the merged files.
    ///
    /// # Errors
    /// [`Invalid`] with every problem found, each in its file.
    pub fn check(&self, process: &Vars, backend: Option<Backend>) -> Result<Desired, Invalid> {
        let vars = self.vars(process)?;
        check_texts(
            &self.texts()?,
            &vars,
            &self.dir,
            self.project.as_deref(),
            backend,
        )
    }

    /// The effective file (`muster config`): after interpolation and merge,
    /// as TOML, each value followed by the file it came from; sensitive
    /// values masked unless `show_sensitive`.
    ///
    /// # Errors
    /// [`Invalid`] when the files are not valid.
    pub fn effective(
        &self,
        process: &Vars,
        backend: Option<Backend>,
        show_sensitive: bool,
    ) -> Result<String, Invalid> {
        let vars = self.vars(process)?;
        let texts = self.texts()?;
        let (merged, _) = checked(&texts, &vars, &self.dir, self.project.as_deref(), backend)?;
        let bases = bases(&texts);
        let origin = |span: Range<usize>| texts[file_of(&bases, span.start)].0.clone();
        Ok(super::effective::render(&merged, &origin, show_sensitive))
    }

    /// Calls `f` with the index and the `[services]` table of each file
    /// that parses (read, not checked).
    fn each_services(&self, mut f: impl FnMut(usize, &DeTable<'_>)) {
        for (i, file) in self.files.iter().enumerate() {
            let Ok(text) = text_of(&file.shown, &file.bytes) else {
                continue;
            };
            let Ok(root) = DeTable::parse(text) else {
                continue;
            };
            if let Some(DeValue::Table(services)) =
                root.get_ref().get("services").map(Spanned::get_ref)
            {
                f(i, services);
            }
        }
    }

    /// The services the files declare, read but not checked (for shell
    /// completion: a file in the middle of an edit still has names).
    pub fn service_names(&self) -> std::collections::BTreeSet<String> {
        let mut names = std::collections::BTreeSet::new();
        self.each_services(|_, services| {
            names.extend(services.iter().map(|(k, _)| k.get_ref().to_string()));
        });
        names
    }

    /// Which file `scale` edits for `service`: the last one that sets its
    /// `count`, else the first that declares it; and the count as written
    /// there when it is a string (a `${…}` form), which `scale` must not
    /// replace.
    pub fn count_owner(&self, service: &str) -> (usize, Option<String>) {
        let mut declared = None;
        let mut owner = None;
        self.each_services(|i, services| {
            let Some(table) = services.get(service) else {
                return;
            };
            declared.get_or_insert(i);
            if let Some(c) = table.get_ref().get("count") {
                owner = Some((i, c.get_ref().as_str().map(str::to_string)));
            }
        });
        owner.unwrap_or((declared.unwrap_or(0), None))
    }
}

/// Reads and checks the file at `path`.
///
/// # Errors
/// [`Invalid`] with every problem found, located in the file.
pub fn load(path: &Path) -> Result<Desired, Invalid> {
    load_as(path, None)
}

/// [`load`], checked for `backend` when it is given (`--backend`) instead
/// of the one the file names.
///
/// # Errors
/// [`Invalid`] with every problem found, located in the file.
pub fn load_as(path: &Path, backend: Option<Backend>) -> Result<Desired, Invalid> {
    load_read(path, backend).map(|(desired, _)| desired)
}

/// Like [`load_as`], also returning the bytes that were read and checked
/// (a saved plan records their SHA-256).
///
/// # Errors
/// As [`load`].
pub fn load_read(path: &Path, backend: Option<Backend>) -> Result<(Desired, Vec<u8>), Invalid> {
    Sources::single(path).load(backend)
}

/// Checks `bytes` as the content of the file `shown`, whose directory is `dir`
/// (for relative bind mounts and the default project name).
///
/// # Errors
/// [`Invalid`] with every problem found.
pub fn parse_bytes(shown: &str, bytes: &[u8], dir: &Path) -> Result<Desired, Invalid> {
    parse_bytes_as(shown, bytes, dir, None)
}

/// [`parse_bytes`] for `backend` when it is given.
///
/// # Errors
/// [`Invalid`] with every problem found.
pub fn parse_bytes_as(
    shown: &str,
    bytes: &[u8],
    dir: &Path,
    backend: Option<Backend>,
) -> Result<Desired, Invalid> {
    parse_str_as(shown, text_of(shown, bytes)?, dir, backend)
}

/// Checks `text` as the content of the file `shown`.
///
/// # Errors
/// [`Invalid`] with every problem found.
pub fn parse_str(shown: &str, text: &str, dir: &Path) -> Result<Desired, Invalid> {
    parse_str_as(shown, text, dir, None)
}

/// [`parse_str`] for `backend` when it is given; `${VAR}` forms take their
/// values from the process environment.
///
/// # Errors
/// [`Invalid`] with every problem found.
pub fn parse_str_as(
    shown: &str,
    text: &str,
    dir: &Path,
    backend: Option<Backend>,
) -> Result<Desired, Invalid> {
    let vars = Vars::from_process();
    check_texts(&[(shown.to_string(), text)], &vars, dir, None, backend)
}

/// [`parse_str`] with `${VAR}` forms taking their values from `vars`.
///
/// # Errors
/// [`Invalid`] with every problem found.
pub fn parse_str_with(
    shown: &str,
    text: &str,
    dir: &Path,
    vars: &Vars,
) -> Result<Desired, Invalid> {
    check_texts(&[(shown.to_string(), text)], vars, dir, None, None)
}

/// The `.env` file's variables.
///
/// # Errors
/// [`Invalid`] located in it: too large, not UTF-8, binary, or a line
/// that is not `KEY=VALUE`.
fn parse_env_file(env: &ReadFile) -> Result<std::collections::BTreeMap<String, String>, Invalid> {
    // A problem quotes its line: with the values masked.
    let invalid = |text: &str, problem: Problem| Invalid {
        path: env.shown.clone(),
        text: Arc::from(interpolate::redact_dotenv(text)),
        problems: vec![problem],
    };
    if env.bytes.len() > MAX_DOTENV_BYTES {
        return Err(invalid(
            "",
            Problem::new(
                "muster::env::too_large",
                "the .env file is larger than 1 MiB, the limit",
                None,
            )
            .help("a .env file this large is almost certainly not one; check the path"),
        ));
    }
    let text = match std::str::from_utf8(&env.bytes) {
        Ok(t) => t.strip_prefix('\u{feff}').unwrap_or(t),
        Err(e) => {
            let valid = e.valid_up_to();
            let lossy = String::from_utf8_lossy(&env.bytes).into_owned();
            let at = String::from_utf8_lossy(&env.bytes[..valid]).len();
            return Err(invalid(
                &lossy,
                Problem::new(
                    "muster::env::not_utf8",
                    format!(
                        "the .env file is not UTF-8 text (byte 0x{:02x})",
                        env.bytes[valid]
                    ),
                    Some(at..at + char::REPLACEMENT_CHARACTER.len_utf8()),
                )
                .label("invalid byte")
                .help("a .env file holds KEY=VALUE lines of UTF-8 text"),
            ));
        }
    };
    if let Some((at, c)) = text
        .char_indices()
        .find(|(_, c)| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(invalid(
            text,
            Problem::new(
                "muster::env::binary",
                format!(
                    "the .env file holds binary content (character U+{:04X})",
                    u32::from(c)
                ),
                Some(at..at + c.len_utf8()),
            )
            .label("control character")
            .help("a .env file holds KEY=VALUE lines of text; check the path"),
        ));
    }
    interpolate::parse_dotenv(text).map_err(|problems| Invalid {
        path: env.shown.clone(),
        text: Arc::from(interpolate::redact_dotenv(text)),
        problems,
    })
}

/// Where each file's range starts in the shared address space.
fn bases(texts: &[(String, &str)]) -> Vec<usize> {
    let mut out = Vec::with_capacity(texts.len());
    let mut next = 0;
    for (_, t) in texts {
        out.push(next);
        next += t.len() + 1;
    }
    out
}

/// The index of the file whose range holds `offset`.
fn file_of(bases: &[usize], offset: usize) -> usize {
    bases.iter().rposition(|b| *b <= offset).unwrap_or(0)
}

/// Problems in the shared address space, each moved back into its file.
fn located(texts: &[(String, &str)], mut problems: Vec<Problem>) -> Invalid {
    let bases = bases(texts);
    problems.sort_by_key(|p| p.span.as_ref().map_or(0, |s| s.start));
    let sources: Vec<Source> = texts
        .iter()
        .map(|(shown, text)| Source {
            path: shown.clone(),
            text: Arc::from(*text),
        })
        .collect();
    for p in &mut problems {
        // A problem without a place is the first file's.
        let k = p.span.as_ref().map_or(0, |s| file_of(&bases, s.start));
        p.span = p
            .span
            .take()
            .map(|s| s.start - bases[k]..s.end.saturating_sub(bases[k]));
        if sources.len() > 1 {
            p.source = Some(sources[k].clone());
        }
    }
    // With overlays, the summary names the files that have problems.
    let mut path = sources[0].path.clone();
    if sources.len() > 1 {
        let mut names: Vec<&str> = Vec::new();
        for p in &problems {
            let name = p
                .source
                .as_ref()
                .map_or(sources[0].path.as_str(), |s| s.path.as_str());
            if !names.contains(&name) {
                names.push(name);
            }
        }
        path = names.join(" + ");
    }
    Invalid {
        path,
        text: sources[0].text.clone(),
        problems,
    }
}

/// Checks the files `texts` (name as shown, text), merged in order, in
/// directory `dir`; `project` (`--project`) instead of the files' name.
///
/// # Errors
/// [`Invalid`] with every problem found, each in its file.
pub(crate) fn check_texts(
    texts: &[(String, &str)],
    vars: &Vars,
    dir: &Path,
    project: Option<&str>,
    backend: Option<Backend>,
) -> Result<Desired, Invalid> {
    checked(texts, vars, dir, project, backend).map(|(_, desired)| desired)
}

/// The merged tree and what it declares. A value that did not interpolate
/// is reported once: the checks' own problems with it are left out.
fn checked<'t>(
    texts: &[(String, &'t str)],
    vars: &Vars,
    dir: &Path,
    project: Option<&str>,
    backend: Option<Backend>,
) -> Result<(Spanned<DeTable<'t>>, Desired), Invalid> {
    let (merged, mut problems) = merge_texts(texts, vars).map_err(|p| located(texts, p))?;
    match check_tree(&merged, dir, project, backend) {
        Ok(desired) if problems.is_empty() => Ok((merged, desired)),
        Ok(_) => Err(located(texts, problems)),
        Err(more) => {
            let reported: Vec<Range<usize>> =
                problems.iter().filter_map(|p| p.span.clone()).collect();
            problems.extend(
                more.into_iter()
                    .filter(|p| p.span.as_ref().is_none_or(|s| !reported.contains(s))),
            );
            Err(located(texts, problems))
        }
    }
}

/// Parses, interpolates and merges the files: the tree, and the problems
/// of interpolation and of overlays; all in the shared address space.
///
/// # Errors
/// The syntax errors, when a file is not TOML.
fn merge_texts<'t>(
    texts: &[(String, &'t str)],
    vars: &Vars,
) -> Result<(Spanned<DeTable<'t>>, Vec<Problem>), Vec<Problem>> {
    let bases = bases(texts);
    let mut problems = Vec::new();
    let mut syntax = Vec::new();
    let mut merged: Option<Spanned<DeTable<'t>>> = None;
    let mut first_project: Option<String> = None;
    for (k, (_, text)) in texts.iter().enumerate() {
        let shift_problem = |mut p: Problem| {
            p.span = p.span.map(|s| s.start + bases[k]..s.end + bases[k]);
            p
        };
        let (mut root, errors) = DeTable::parse_recoverable(text);
        if !errors.is_empty() {
            syntax.extend(syntax_problems(&errors).into_iter().map(shift_problem));
            continue;
        }
        problems.extend(
            interpolate::interpolate_tree(&mut root, vars)
                .into_iter()
                .map(shift_problem),
        );
        let project = root.get_ref().get("project");
        if k == 0 {
            first_project = project
                .and_then(|p| p.get_ref().as_str())
                .map(str::to_string);
        } else if let Some(p) = project
            && p.get_ref().as_str() != first_project.as_deref()
        {
            let first = &texts[0].0;
            problems.push(shift_problem(
                Problem::new(
                    "muster::config::overlay_project",
                    format!("an overlay may not change `project`: it comes from the first file, {first}"),
                    Some(p.span()),
                )
                .label("set in an overlay")
                .help("remove `project` from this file; to run the files as another project, pass --project"),
            ));
        }
        let mut root = shift_root(root, bases[k]);
        match merged.as_mut() {
            None => merged = Some(root),
            Some(m) => {
                keep_sensitive(m.get_ref(), root.get_mut());
                merge_table(m.get_mut(), root.into_inner());
            }
        }
    }
    match merged {
        Some(m) if syntax.is_empty() => Ok((m, problems)),
        _ => Err(syntax),
    }
}

/// An overlay's `[sensitive] env` adds to the earlier files' patterns
/// instead of replacing them, as other arrays do: an overlay cannot make a
/// value that the base keeps secret printable.
fn keep_sensitive<'t>(base: &DeTable<'t>, over: &mut DeTable<'t>) {
    let patterns = |t: &DeTable<'t>| -> Option<Vec<Spanned<DeValue<'t>>>> {
        let env = t.get("sensitive")?.get_ref().as_table()?.get("env")?;
        env.get_ref()
            .as_array()
            .map(|a| a.iter().cloned().collect())
    };
    let Some(earlier) = patterns(base) else {
        return;
    };
    let Some(env) = over.get_mut("sensitive").and_then(|s| match s.get_mut() {
        DeValue::Table(t) => t.get_mut("env"),
        _ => None,
    }) else {
        return;
    };
    if let DeValue::Array(items) = env.get_mut() {
        for p in earlier {
            let text = p.get_ref().as_str();
            if !items.iter().any(|i| i.get_ref().as_str() == text) {
                items.push(p);
            }
        }
    }
}

/// `over` merged into `base`: tables key by key, anything else replaced
/// (the key too, so that a problem with it points at the overlay).
pub(crate) fn merge_table<'t>(base: &mut DeTable<'t>, over: DeTable<'t>) {
    for (k, v) in over {
        if let Some(existing) = base.get_mut(k.get_ref().as_ref())
            && let (DeValue::Table(into), DeValue::Table(_)) = (existing.get_mut(), v.get_ref())
        {
            if let DeValue::Table(from) = v.into_inner() {
                merge_table(into, from);
            }
            continue;
        }
        base.remove(k.get_ref().as_ref());
        base.insert(k, v);
    }
}

fn shift_range(r: Range<usize>, by: usize) -> Range<usize> {
    r.start + by..r.end + by
}

fn shift_root(root: Spanned<DeTable<'_>>, by: usize) -> Spanned<DeTable<'_>> {
    if by == 0 {
        return root;
    }
    let span = shift_range(root.span(), by);
    Spanned::new(span, shift_table(root.into_inner(), by))
}

fn shift_table(t: DeTable<'_>, by: usize) -> DeTable<'_> {
    t.into_iter()
        .map(|(k, mut v)| {
            let key = Spanned::new(shift_range(k.span(), by), k.into_inner());
            shift_value(&mut v, by);
            (key, v)
        })
        .collect()
}

fn shift_value(v: &mut Spanned<DeValue<'_>>, by: usize) {
    let span = shift_range(v.span(), by);
    let mut inner = std::mem::replace(v.get_mut(), DeValue::Boolean(false));
    match &mut inner {
        DeValue::Table(t) => *t = shift_table(std::mem::take(t), by),
        DeValue::Array(items) => {
            for item in items.iter_mut() {
                shift_value(item, by);
            }
        }
        DeValue::String(_)
        | DeValue::Integer(_)
        | DeValue::Float(_)
        | DeValue::Boolean(_)
        | DeValue::Datetime(_) => {}
    }
    *v = Spanned::new(span, inner);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(files: &[(&str, &str)]) -> Result<Desired, Invalid> {
        let texts: Vec<(String, &str)> = files.iter().map(|(n, t)| (n.to_string(), *t)).collect();
        check_texts(&texts, &Vars::default(), Path::new("/srv/app"), None, None)
    }

    const BASE: &str = "project = \"shop\"\n[services.web]\nimage = \"nginx:1\"\ncount = 2\nenv = { A = \"1\", B = \"2\" }\nports = [\"80\"]\n[services.db]\nimage = \"pg:16\"\n";

    #[test]
    fn tables_merge_key_by_key_and_a_later_value_replaces() {
        let over = "[services.web]\ncount = 5\nenv = { B = \"two\", C = \"3\" }\nports = [\"81\", \"82\"]\n";
        let d = check(&[("base.toml", BASE), ("prod.toml", over)])
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        let web = &d.services["web"];
        assert_eq!(d.project, "shop");
        assert_eq!(web.image, "nginx:1");
        assert_eq!(web.count, 5);
        let env: Vec<(&str, &str)> = web
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, [("A", "1"), ("B", "two"), ("C", "3")]);
        let ports: Vec<String> = web.ports.iter().map(ToString::to_string).collect();
        assert_eq!(ports, ["81/tcp", "82/tcp"]);
        assert_eq!(d.services["db"].image, "pg:16");
    }

    #[test]
    fn a_service_only_in_an_overlay_must_be_complete() {
        let over = "[services.cache]\ncount = 1\n";
        let e = check(&[("base.toml", BASE), ("prod.toml", over)])
            .err()
            .map(|e| e.render_plain())
            .unwrap_or_default();
        assert!(e.contains("error: prod.toml:1:"), "{e}");
        assert!(e.contains("has no `image`"), "{e}");
        let over = "[services.cache]\nimage = \"redis:7\"\n";
        let d = check(&[("base.toml", BASE), ("prod.toml", over)])
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        assert_eq!(d.services["cache"].count, 1);
    }

    #[test]
    fn each_problem_names_the_file_and_line_it_was_written_in() {
        let over = "# production\n\n[services.web]\ncount = 5000\nports = [\"99999\"]\n";
        let e = check(&[("base.toml", BASE), ("prod.toml", over)])
            .err()
            .map(|e| e.render_plain())
            .unwrap_or_default();
        assert!(
            e.contains("error: prod.toml:4:9: `services.web.count` is out of range"),
            "{e}"
        );
        let bad_base = BASE.replace("image = \"pg:16\"", "image = \"pg 16\"");
        let e = check(&[("base.toml", &bad_base), ("prod.toml", over)])
            .err()
            .map(|e| e.render_plain())
            .unwrap_or_default();
        assert!(e.contains("error: base.toml:8:"), "{e}");
        assert!(e.contains("error: prod.toml:4:"), "{e}");
    }

    #[test]
    fn an_overlay_may_not_change_the_project() {
        let e = check(&[("base.toml", BASE), ("prod.toml", "project = \"other\"\n")])
            .err()
            .map(|e| e.render_plain())
            .unwrap_or_default();
        assert!(
            e.contains("error: prod.toml:1:11: an overlay may not change `project`"),
            "{e}"
        );
        // The same name is no change.
        assert!(check(&[("base.toml", BASE), ("prod.toml", "project = \"shop\"\n")]).is_ok());
    }

    #[test]
    fn a_syntax_error_in_an_overlay_is_located_in_it() {
        let e = check(&[("base.toml", BASE), ("prod.toml", "\n[services.web\n")])
            .err()
            .map(|e| e.render_plain())
            .unwrap_or_default();
        assert!(e.contains("error: prod.toml:2:"), "{e}");
    }

    #[test]
    fn interpolation_errors_point_at_the_string_in_its_file() {
        let over = "[services.web]\nimage = \"nginx:${TAG:?set the tag}\"\ncount = \"${N:-x}\"\n";
        let e = check(&[("base.toml", BASE), ("prod.toml", over)])
            .err()
            .map(|e| e.render_plain())
            .unwrap_or_default();
        assert!(e.contains("error: prod.toml:2:9: `services.web.image` needs the variable TAG, which is not set: set the tag"), "{e}");
        assert!(
            e.contains("error: prod.toml:3:9: `services.web.count` must be an integer"),
            "{e}"
        );
    }

    #[test]
    fn count_takes_an_interpolated_integer() {
        let texts = vec![(
            "base.toml".to_string(),
            "[services.web]\nimage = \"${IMG}\"\ncount = \"${N:-2}\"\n",
        )];
        let mut vars = Vars::default();
        vars.dotenv.insert("IMG".into(), "busybox:1".into());
        let d = check_texts(&texts, &vars, Path::new("/x"), None, None)
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        assert_eq!(
            (d.services["web"].count, d.services["web"].image.as_str()),
            (2, "busybox:1")
        );
        vars.process.insert("N".into(), "7".into());
        let d = check_texts(&texts, &vars, Path::new("/x"), None, None)
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        assert_eq!(d.services["web"].count, 7);
    }

    #[test]
    fn the_effective_file_names_each_value_s_file_masks_sensitive_values_and_reads_back_the_same() {
        let base = "[sensitive]\nenv = [\"DB_*\"]\n[services.web]\nimage = \"nginx:${TAG:-1}\"\ncount = \"${N:-2}\"\nenv = { DB_PASSWORD = \"s3cret\" }\nlabels = { \"com.example/team\" = \"a \\\"b\\\"\" }\n";
        let over = "[services.web]\nenv = { LOG = \"warn\" }\n";
        let read = Read {
            files: vec![
                ReadFile {
                    shown: "base.toml".into(),
                    bytes: base.as_bytes().to_vec(),
                },
                ReadFile {
                    shown: "prod.toml".into(),
                    bytes: over.as_bytes().to_vec(),
                },
            ],
            env: None,
            dir: PathBuf::from("/srv/app"),
            project: None,
        };
        let vars = Vars::default();
        let masked = read
            .effective(&vars, None, false)
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        assert!(masked.contains("count = 2  # from base.toml"), "{masked}");
        assert!(
            masked.contains("image = \"nginx:1\"  # from base.toml"),
            "{masked}"
        );
        assert!(
            masked.contains("LOG = \"warn\"  # from prod.toml"),
            "{masked}"
        );
        assert!(
            masked.contains("DB_PASSWORD = \"(sensitive)\"  # from base.toml"),
            "{masked}"
        );
        assert!(!masked.contains("s3cret"), "{masked}");
        let shown = read
            .effective(&vars, None, true)
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        assert!(shown.contains("DB_PASSWORD = \"s3cret\""), "{shown}");
        let again = check_texts(
            &[("effective.toml".into(), &shown)],
            &vars,
            Path::new("/srv/app"),
            None,
            None,
        )
        .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        assert_eq!(
            again,
            read.check(&vars, None)
                .unwrap_or_else(|e| panic!("{}", e.render_plain()))
        );
    }

    #[test]
    fn references_between_dotenv_values_are_text_so_they_cannot_loop() {
        let env = ReadFile {
            shown: ".env".into(),
            bytes: b"A=${B}\nB=${A}\n".to_vec(),
        };
        let read = Read {
            files: vec![ReadFile {
                shown: "services.toml".into(),
                bytes: b"[services.web]\nimage = \"x\"\nenv = { A = \"${A}\", B = \"${B:-d}\" }\n"
                    .to_vec(),
            }],
            env: Some(env),
            dir: PathBuf::from("/srv/app"),
            project: None,
        };
        let d = read
            .check(&Vars::default(), None)
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        let env = &d.services["web"].env;
        assert_eq!((env["A"].as_str(), env["B"].as_str()), ("${B}", "${A}"));
    }

    #[test]
    fn an_overlay_adds_sensitive_patterns_and_cannot_remove_the_base_s() {
        let base = "[sensitive]\nenv = [\"DB_*\"]\n[services.web]\nimage = \"x\"\nenv = { DB_PASSWORD = \"a\", API_KEY = \"b\", LOG = \"c\" }\n";
        let over = "[sensitive]\nenv = [\"API_*\"]\n";
        let d = check(&[("base.toml", base), ("prod.toml", over)])
            .unwrap_or_else(|e| panic!("{}", e.render_plain()));
        let marked: Vec<&str> = d.services["web"]
            .sensitive
            .iter()
            .map(String::as_str)
            .collect();
        assert_eq!(marked, ["API_KEY", "DB_PASSWORD"]);
    }
}
