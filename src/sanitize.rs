//! Text that muster did not write itself (engine answers, container output,
//! values from the user's files) made safe to print: control characters and
//! bidirectional overrides become visible escapes (`\x1b`, `\u{202e}`), so
//! that such text cannot move the cursor, clear the screen, retitle the
//! terminal or reorder what a reviewer reads. Pure; no I/O.

use std::borrow::Cow;

use crate::plan::FieldChange;

/// `text` on one line: every control character is masked, line ends too.
pub fn text(text: &str) -> Cow<'_, str> {
    mask(text, false)
}

/// `text` whose line ends (`\n`) are meant, e.g. a log tail or a multi-line
/// value: every other control character is masked.
pub fn lines(text: &str) -> Cow<'_, str> {
    mask(text, true)
}

/// Whether `c` is shown as an escape. Tabs are harmless and kept; a
/// carriage return is not (it rewrites the line).
fn is_unsafe(c: char, keep_newlines: bool) -> bool {
    match c {
        '\t' => false,
        '\n' => !keep_newlines,
        // C0, DEL and C1 controls.
        '\0'..='\x1f' | '\x7f'..='\u{9f}' => true,
        // Bidirectional embeddings, overrides and isolates.
        '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' => true,
        _ => false,
    }
}

/// A changed field of a plan diff as it may be shown: its path (a label
/// key from the file or the engine) on one line, its values with their
/// line ends kept for a line diff.
pub fn field_change(change: &FieldChange) -> FieldChange {
    let value = |v: &Option<String>| v.as_deref().map(|v| lines(v).into_owned());
    FieldChange {
        path: text(&change.path).into_owned(),
        from: value(&change.from),
        to: value(&change.to),
    }
}

fn mask(text: &str, keep_newlines: bool) -> Cow<'_, str> {
    if !text.chars().any(|c| is_unsafe(c, keep_newlines)) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !is_unsafe(c, keep_newlines) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed_unchanged() {
        let t = "web-1  Up 3 minutes (healthy)\té → ✓";
        assert!(matches!(text(t), Cow::Borrowed(s) if s == t));
    }

    #[test]
    fn escape_sequences_become_visible() {
        assert_eq!(text("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(text("\x1b]0;owned\x07"), "\\x1b]0;owned\\x07");
        assert_eq!(text("over\rwrite"), "over\\x0dwrite");
        assert_eq!(text("nul\0del\x7f"), "nul\\x00del\\x7f");
    }

    #[test]
    fn c1_controls_and_bidi_overrides_are_masked() {
        assert_eq!(text("a\u{9b}2Jb"), "a\\x9b2Jb");
        assert_eq!(text("\u{85}"), "\\x85");
        assert_eq!(text("x\u{202e}gnp.exe"), "x\\u{202e}gnp.exe");
        assert_eq!(text("\u{2066}i\u{2069}"), "\\u{2066}i\\u{2069}");
        // Neighbours that are not controls stay.
        assert_eq!(text("\u{a0}\u{2029}\u{202f}"), "\u{a0}\u{2029}\u{202f}");
    }

    #[test]
    fn line_ends_are_kept_only_where_lines_are_meant() {
        assert_eq!(lines("one\ntwo\x1b[K\n"), "one\ntwo\\x1b[K\n");
        assert_eq!(text("one\ntwo"), "one\\x0atwo");
        assert_eq!(lines("a\tb"), "a\tb");
    }

    #[test]
    fn masking_is_idempotent_and_leaves_no_control() {
        let hostile = "\x1b[2J\u{9b}\u{202e}\r\n\x07";
        let once = lines(hostile).into_owned();
        assert_eq!(lines(&once), once);
        assert!(
            once.chars()
                .all(|c| c == '\n' || !is_unsafe(c, true) && !c.is_control())
        );
    }
}
