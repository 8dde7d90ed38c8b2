//! The local terminal of `muster exec`: whether there is one, raw mode for
//! the length of a session, its size and each change of it, and stdin as
//! it comes. Does I/O on this process's stdin and stdout.

use std::io::{IsTerminal, Read};

use tokio::sync::mpsc;

use crate::engine::TermSize;

/// Whether stdin and stdout are both a terminal (then `exec` runs its
/// command on a pseudo-terminal, as `docker compose exec` does).
pub fn is_terminal() -> bool {
    std::io::stdin().is_terminal() && std::io::stdout().is_terminal()
}

/// Stdin's terminal in raw mode until dropped: every key, Ctrl-C
/// included, goes to the container as typed, neither echoed nor
/// line-edited here. Dropping it restores the terminal, also when the
/// session ends with an error or a panic.
pub struct RawMode {
    saved: libc::termios,
}

impl RawMode {
    /// # Errors
    /// When stdin is not a terminal or its mode cannot be changed.
    pub fn enter() -> std::io::Result<RawMode> {
        let mut saved = std::mem::MaybeUninit::<libc::termios>::uninit();
        // SAFETY: tcgetattr fills the struct when it returns 0.
        if unsafe { libc::tcgetattr(libc::STDIN_FILENO, saved.as_mut_ptr()) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: initialised by tcgetattr above.
        let saved = unsafe { saved.assume_init() };
        let mut raw = saved;
        // SAFETY: both calls only read and write the struct they are given.
        unsafe { libc::cfmakeraw(&mut raw) };
        if unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &raw) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(RawMode { saved })
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        // SAFETY: sets back the attributes that `enter` read.
        unsafe { libc::tcsetattr(libc::STDIN_FILENO, libc::TCSANOW, &self.saved) };
    }
}

/// The size of the terminal on stdout; `None` without one, or when it
/// does not know its size.
fn size() -> Option<TermSize> {
    let mut ws = libc::winsize {
        ws_row: 0,
        ws_col: 0,
        ws_xpixel: 0,
        ws_ypixel: 0,
    };
    // SAFETY: TIOCGWINSZ writes one winsize into `ws`.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
    (ok && ws.ws_col > 0 && ws.ws_row > 0).then_some(TermSize {
        columns: ws.ws_col,
        rows: ws.ws_row,
    })
}

/// The terminal's size now, then after each change (SIGWINCH), until the
/// receiver is dropped. Must be called within the tokio runtime.
pub fn sizes() -> mpsc::Receiver<TermSize> {
    let (tx, rx) = mpsc::channel(4);
    let mut changes =
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::window_change()).ok();
    tokio::spawn(async move {
        loop {
            if let Some(size) = size()
                && tx.send(size).await.is_err()
            {
                return;
            }
            let Some(changes) = changes.as_mut() else {
                return;
            };
            if changes.recv().await.is_none() {
                return;
            }
        }
    });
    rx
}

/// This process's stdin, chunk by chunk as it comes, until end of file or
/// a read error. Read on a thread of its own: a blocking read cannot be
/// cancelled, and one left waiting for a key must not keep muster from
/// exiting once the command has ended.
pub fn stdin() -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel(16);
    let reader = move || {
        let mut stdin = std::io::stdin().lock();
        let mut buf = [0u8; 8192];
        loop {
            match stdin.read(&mut buf) {
                Ok(0) => return,
                Ok(n) => {
                    if tx.blocking_send(buf[..n].to_vec()).is_err() {
                        return;
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return,
            }
        }
    };
    // Without the thread the sender is gone: the command reads end of file.
    let _ = std::thread::Builder::new()
        .name("exec-stdin".into())
        .spawn(reader);
    rx
}
