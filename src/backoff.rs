//! The daemon's decisions about drift, as pure code: what an engine event
//! means, how long a crash-looping container waits before it is restarted,
//! and which steps of a plan wait out their back-off. Functions of
//! (state, event, now); no I/O.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use crate::engine::Event;
use crate::plan::{Action, Plan};

pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// A container that ran this long before it died starts its back-off anew.
pub const BACKOFF_RESET: Duration = Duration::from_secs(600);
/// How long events of a unit that muster itself removed or replaced are
/// still taken as muster's own, after the apply that did it.
pub const OURS_FOR: Duration = Duration::from_secs(10);
/// How long after a `kill` by someone else the `die` that follows is
/// taken as its result, not a crash (a `docker stop` waits out its grace
/// period between the two).
pub const KILLED_FOR: Duration = Duration::from_secs(120);
/// How long after such a `die` a `stop` or `destroy` may still follow and
/// say what really happened, before the kill alone is acted upon. A
/// `docker stop` logs its `stop` right after the `die`; a `docker rm -f`
/// its `destroy` once the container's files are gone, 50–150 ms later on
/// this engine; and the engine shows the container as exited only once
/// its network is torn down, up to ~300 ms after the `die`. Part of the
/// time to heal a killed container (BENCHMARKS.md).
pub const SETTLE: Duration = Duration::from_millis(500);

/// The delay after `failures` failures in a row: 1s, 2s, 4s, … 5m.
pub fn delay(failures: u32) -> Duration {
    let factor = 1u32
        .checked_shl(failures.saturating_sub(1).min(16))
        .unwrap_or(u32::MAX);
    BACKOFF_FIRST.saturating_mul(factor).min(BACKOFF_MAX)
}

/// Restart back-off of one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backoff {
    pub failures: u32,
    /// Not restarted before this.
    pub until: Instant,
    /// A pass is owed when `until` comes.
    pub due: bool,
}

/// One container's back-off, as the daemon publishes it for `muster ps`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BackoffRecord {
    pub failures: u32,
    /// Unix seconds of the next restart.
    pub next_restart: u64,
}

/// What the daemon knows about drift: which units it started when, which
/// it removed itself, and the back-offs.
#[derive(Debug, Default)]
pub struct Drift {
    /// When muster last started each container.
    pub started: BTreeMap<String, Instant>,
    pub backoff: BTreeMap<String, Backoff>,
    /// Ids of units muster itself removes or replaces, until when their
    /// events are its own (by id: a replacement of the same name that dies
    /// is not).
    pub ours: BTreeMap<String, Instant>,
    /// Ids of units that someone else sent a signal, until when their `die`
    /// is its result.
    pub killed: BTreeMap<String, Instant>,
    /// Units killed by someone else that died: name, and when to act if no
    /// `stop` or `destroy` explains it (by id).
    pub settling: BTreeMap<String, (String, Instant)>,
}

/// What an event means to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do (muster's own doing, or an event that another follows).
    Ignore,
    /// Run a pass; `why` says what happened. `failures` is set when the
    /// container crashed more than once in a row (it then waits `delay`).
    /// `then` is set for a unit stopped or removed outside muster (`why`
    /// names it and what happened, not who did it): what the pass will do
    /// about it when there is something to do.
    Pass {
        why: String,
        then: Option<&'static str>,
        failures: Option<(u32, Duration)>,
    },
}

impl Decision {
    fn outside(container: &str, what: &str, then: &'static str) -> Decision {
        Decision::Pass {
            why: format!("{container} {what}"),
            then: Some(then),
            failures: None,
        }
    }
}

impl Drift {
    /// Decides what `e` means at `now`, and records a crash's back-off.
    /// A unit stopped, killed or removed by someone else is not a crash: it
    /// is repaired at once and gets no back-off.
    pub fn on_event(&mut self, e: &Event, now: Instant) -> Decision {
        self.ours.retain(|_, until| *until > now);
        self.killed.retain(|_, until| *until > now);
        if self.ours.contains_key(&e.id) {
            return Decision::Ignore;
        }
        let why = match (e.action.as_str(), e.exit_code) {
            ("kill", _) => {
                // A die follows, and a stop or destroy may follow that.
                self.killed.insert(e.id.clone(), now + KILLED_FOR);
                return Decision::Ignore;
            }
            ("die", _) if self.killed.remove(&e.id).is_some() => {
                self.settling
                    .insert(e.id.clone(), (e.container.clone(), now + SETTLE));
                return Decision::Ignore;
            }
            ("stop", _) => {
                self.outside_muster(e);
                return Decision::outside(&e.container, "stopped", "starting it again");
            }
            ("destroy", _) => {
                self.outside_muster(e);
                return Decision::outside(&e.container, "removed", "creating it again");
            }
            ("die", Some(code)) => format!("{} died (exit {code})", e.container),
            ("die", None) => format!("{} died", e.container),
            ("oom", _) => format!("{} ran out of memory", e.container),
            (a, _) if a.starts_with("health_status") => {
                if a.contains("unhealthy") {
                    format!("{} became unhealthy", e.container)
                } else {
                    return Decision::Ignore;
                }
            }
            (a, _) => format!("{} {a}", e.container),
        };
        let mut failures = None;
        if e.action == "die" {
            let ran_long = self
                .started
                .get(&e.container)
                .is_none_or(|t| now.saturating_duration_since(*t) >= BACKOFF_RESET);
            let b = self.backoff.entry(e.container.clone()).or_insert(Backoff {
                failures: 0,
                until: now,
                due: false,
            });
            b.failures = if ran_long { 1 } else { b.failures + 1 };
            let wait = delay(b.failures);
            b.until = now + wait;
            b.due = true;
            if b.failures > 1 {
                failures = Some((b.failures, wait));
            }
        }
        Decision::Pass {
            why,
            then: None,
            failures,
        }
    }

    /// A unit stopped or removed by someone else: what is repaired is not
    /// held back by an earlier crash loop.
    fn outside_muster(&mut self, e: &Event) {
        self.killed.remove(&e.id);
        self.settling.remove(&e.id);
        self.backoff.remove(&e.container);
    }

    /// Units killed by someone else that neither a stop nor a destroy
    /// explained in time: each owes a pass. Each waits out its own settle
    /// time, even when others are due: the engine logs `die` before the
    /// container shows as exited, and a pass that still sees it running
    /// would start nothing for it.
    pub fn settled(&mut self, now: Instant) -> Vec<(String, Decision)> {
        let done: Vec<String> = self
            .settling
            .iter()
            .filter(|(_, (_, at))| *at <= now)
            .map(|(id, _)| id.clone())
            .collect();
        done.iter()
            .filter_map(|id| self.settling.remove(id))
            .map(|(name, _)| {
                self.backoff.remove(&name);
                let decision = Decision::outside(&name, "killed", "starting it again");
                (name, decision)
            })
            .collect()
    }

    /// Takes out of `plan` the steps of containers that wait out their
    /// back-off; their names. A recreate (new config or image) is not held.
    pub fn hold_back(&self, plan: &mut Plan, now: Instant) -> Vec<String> {
        let mut held = Vec::new();
        for sp in &mut plan.services {
            sp.changes.retain(|c| {
                let wait = matches!(c.action, Action::Start | Action::Create)
                    && self.backoff.get(&c.unit).is_some_and(|b| b.until > now);
                if wait {
                    held.push(c.unit.clone());
                }
                !wait
            });
        }
        held
    }

    /// Back-offs whose time came: their names (each owes one pass).
    pub fn due(&mut self, now: Instant) -> Vec<String> {
        let mut out = Vec::new();
        for (name, b) in &mut self.backoff {
            if b.due && b.until <= now {
                b.due = false;
                out.push(name.clone());
            }
        }
        out
    }

    /// When the next back-off ends or a kill settles, if one is owed a pass.
    pub fn next_due(&self) -> Option<Instant> {
        self.backoff
            .values()
            .filter(|b| b.due)
            .map(|b| b.until)
            .chain(self.settling.values().map(|(_, at)| *at))
            .min()
    }

    /// Before an apply: the units it removes or replaces are muster's own
    /// (until it ends), and a recreate starts a fresh back-off.
    pub fn applying(&mut self, plan: &Plan, leaving: &[String], now: Instant) {
        for id in leaving {
            self.ours
                .insert(id.clone(), now + Duration::from_secs(86_400));
        }
        for c in plan.changes().filter(|c| c.action == Action::Recreate) {
            self.backoff.remove(&c.unit);
        }
    }

    /// After an apply: what it started, and the events of what it removed
    /// that may still arrive.
    pub fn applied(&mut self, plan: &Plan, leaving: &[String], now: Instant) {
        for c in plan.changes() {
            if matches!(c.action, Action::Create | Action::Recreate | Action::Start) {
                self.started.insert(c.unit.clone(), now);
            }
        }
        for id in leaving {
            self.ours.insert(id.clone(), now + OURS_FOR);
        }
    }

    /// The back-offs worth showing in `muster ps` (crash loops), with the
    /// unix time of their next restart.
    pub fn records(&self, now: Instant, unix_now: u64) -> BTreeMap<String, BackoffRecord> {
        self.backoff
            .iter()
            .filter(|(_, b)| b.failures > 1)
            .map(|(name, b)| {
                let left = b.until.saturating_duration_since(now).as_secs();
                (
                    name.clone(),
                    BackoffRecord {
                        failures: b.failures,
                        next_restart: unix_now + left,
                    },
                )
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: &str, name: &str, action: &str, code: Option<i64>) -> Event {
        Event {
            id: id.into(),
            container: name.into(),
            action: action.into(),
            exit_code: code,
        }
    }

    #[test]
    fn backoff_doubles_from_one_second_to_five_minutes() {
        let delays: Vec<u64> = (1..=11).map(|n| delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(delay(1000), BACKOFF_MAX);
        assert_eq!(delay(u32::MAX), BACKOFF_MAX);
    }

    #[test]
    fn what_each_event_triggers() {
        let now = Instant::now();
        let cases = [
            ("die", Some(137), Some("web-1 died (exit 137)")),
            ("destroy", None, Some("web-1 removed")),
            ("stop", None, Some("web-1 stopped")),
            ("oom", None, Some("web-1 ran out of memory")),
            ("kill", None, None),
            ("health_status: healthy", None, None),
            (
                "health_status: unhealthy",
                None,
                Some("web-1 became unhealthy"),
            ),
        ];
        for (action, code, want) in cases {
            let mut d = Drift::default();
            let got = match d.on_event(&event("1", "web-1", action, code), now) {
                Decision::Ignore => None,
                Decision::Pass { why, .. } => Some(why),
            };
            assert_eq!(got.as_deref(), want, "{action}");
        }
    }

    #[test]
    fn crashes_in_a_row_back_off_and_a_long_run_resets_it() {
        let t0 = Instant::now();
        let mut d = Drift::default();
        d.started.insert("web-1".into(), t0);
        let die = event("1", "web-1", "die", Some(1));
        let mut t = t0;
        let mut seen = Vec::new();
        for _ in 0..4 {
            t += Duration::from_secs(1);
            if let Decision::Pass { failures, .. } = d.on_event(&die, t) {
                seen.push(failures.map(|(n, wait)| (n, wait.as_secs())));
            }
            d.started.insert("web-1".into(), t);
        }
        assert_eq!(seen, [None, Some((2, 2)), Some((3, 4)), Some((4, 8))]);
        // Ran for longer than the reset time: back to the first failure.
        let later = t + BACKOFF_RESET;
        assert!(matches!(
            d.on_event(&die, later),
            Decision::Pass { failures: None, .. }
        ));
        assert_eq!(d.backoff["web-1"].failures, 1);
    }

    #[test]
    fn events_of_units_muster_removed_are_its_own_until_they_expire() {
        let now = Instant::now();
        let mut d = Drift::default();
        d.ours.insert("abc".into(), now + OURS_FOR);
        let e = event("abc", "web-1", "destroy", None);
        assert_eq!(d.on_event(&e, now), Decision::Ignore);
        // Another container of the same name is not muster's doing.
        let other = event("def", "web-1", "destroy", None);
        assert!(matches!(d.on_event(&other, now), Decision::Pass { .. }));
        assert!(matches!(
            d.on_event(&e, now + OURS_FOR + Duration::from_millis(1)),
            Decision::Pass { .. }
        ));
    }

    fn decide(d: &mut Drift, id: &str, action: &str, code: Option<i64>, t: Instant) -> Decision {
        d.on_event(&event(id, "web-1", action, code), t)
    }

    #[test]
    fn a_removal_outside_muster_is_repaired_at_once_without_a_backoff() {
        let now = Instant::now();
        let mut d = Drift::default();
        // `docker rm -f` of a running container: kill, die, destroy.
        assert_eq!(decide(&mut d, "a", "kill", None, now), Decision::Ignore);
        assert_eq!(decide(&mut d, "a", "die", Some(137), now), Decision::Ignore);
        assert_eq!(
            decide(&mut d, "a", "destroy", None, now),
            Decision::Pass {
                why: "web-1 removed".into(),
                then: Some("creating it again"),
                failures: None,
            }
        );
        assert!(d.backoff.is_empty(), "{:?}", d.backoff);
        assert!(
            d.settled(now + SETTLE).is_empty(),
            "the destroy said it all"
        );
        assert_eq!(d.next_due(), None);
    }

    #[test]
    fn a_stop_outside_muster_is_not_a_crash_and_clears_a_crash_loop() {
        let now = Instant::now();
        let mut d = Drift::default();
        d.started.insert("web-1".into(), now);
        decide(&mut d, "a", "die", Some(1), now);
        decide(&mut d, "a", "die", Some(1), now);
        assert_eq!(d.backoff["web-1"].failures, 2);
        // `docker stop` after a grace period: kill, kill, die, stop.
        decide(&mut d, "a", "kill", None, now);
        decide(&mut d, "a", "kill", None, now + Duration::from_secs(10));
        let t = now + Duration::from_secs(10);
        assert_eq!(decide(&mut d, "a", "die", Some(137), t), Decision::Ignore);
        assert_eq!(
            decide(&mut d, "a", "stop", None, t),
            Decision::Pass {
                why: "web-1 stopped".into(),
                then: Some("starting it again"),
                failures: None,
            }
        );
        assert!(
            d.backoff.is_empty(),
            "no back-off after a stop: {:?}",
            d.backoff
        );
    }

    #[test]
    fn a_kill_alone_settles_into_one_pass() {
        let now = Instant::now();
        let mut d = Drift::default();
        decide(&mut d, "a", "kill", None, now);
        assert_eq!(decide(&mut d, "a", "die", Some(137), now), Decision::Ignore);
        assert_eq!(d.next_due(), Some(now + SETTLE));
        assert!(d.settled(now).is_empty());
        assert_eq!(
            d.settled(now + SETTLE),
            [(
                "web-1".to_string(),
                Decision::Pass {
                    why: "web-1 killed".into(),
                    then: Some("starting it again"),
                    failures: None,
                }
            )]
        );
        assert!(d.settled(now + SETTLE).is_empty());
        assert!(d.backoff.is_empty());
        // Each kill waits out its own settle time (the engine shows a
        // container as exited a while after its `die`).
        let later = now + Duration::from_millis(100);
        for (id, t) in [("x", now), ("y", later)] {
            decide(&mut d, id, "kill", None, t);
            decide(&mut d, id, "die", Some(137), t);
        }
        assert_eq!(d.settled(now + SETTLE).len(), 1);
        assert_eq!(d.settled(later + SETTLE).len(), 1);
        // A die long after a kill is a crash again.
        decide(&mut d, "b", "kill", None, now);
        let late = now + KILLED_FOR + Duration::from_secs(1);
        assert!(matches!(
            decide(&mut d, "b", "die", Some(1), late),
            Decision::Pass { then: None, .. }
        ));
        assert_eq!(d.backoff["web-1"].failures, 1);
    }

    #[test]
    fn muster_own_kills_are_not_outside_muster() {
        let now = Instant::now();
        let mut d = Drift::default();
        d.ours.insert("a".into(), now + OURS_FOR);
        for action in ["kill", "die", "stop", "destroy"] {
            assert_eq!(
                decide(&mut d, "a", action, Some(137), now),
                Decision::Ignore
            );
        }
        assert!(d.killed.is_empty() && d.settling.is_empty());
    }

    #[test]
    fn backoffs_become_due_once() {
        let now = Instant::now();
        let mut d = Drift::default();
        d.on_event(&event("1", "web-1", "die", Some(1)), now);
        assert_eq!(d.next_due(), Some(now + BACKOFF_FIRST));
        assert!(d.due(now).is_empty());
        assert_eq!(d.due(now + BACKOFF_FIRST), ["web-1"]);
        assert!(d.due(now + BACKOFF_MAX).is_empty());
        assert_eq!(d.next_due(), None);
    }
}
