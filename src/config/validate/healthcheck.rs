//! `[services.NAME.healthcheck]`: the test in the engine's form and its
//! timings. Pure.

use std::time::Duration;

use super::super::file::{self, Command};
use super::super::model::Healthcheck;
use super::{Validator, entry};

impl Validator<'_, '_> {
    pub(super) fn healthcheck(&mut self, name: &str, h: &file::Healthcheck) -> Healthcheck {
        let test = self.healthcheck_test(name, &h.test);
        let timing = |v: &mut Self, k: &'static str, val: Option<&str>, default: u64| {
            v.duration(
                val,
                &entry(name, "healthcheck", k),
                name,
                Duration::from_secs(default),
            )
        };
        let interval = timing(self, "interval", h.interval.as_deref(), 30);
        let timeout = timing(self, "timeout", h.timeout.as_deref(), 30);
        let start_period = timing(self, "start_period", h.start_period.as_deref(), 0);
        for (k, val) in [("interval", interval), ("timeout", timeout)] {
            if val < Duration::from_millis(1) {
                self.err(
                    "muster::config::out_of_range",
                    format!("service `{name}`: healthcheck.{k} must be at least 1ms"),
                    &entry(name, "healthcheck", k),
                    "write a duration such as \"2s\"",
                );
            }
        }
        Healthcheck {
            test,
            interval,
            timeout,
            retries: h.retries.unwrap_or(3).clamp(1, 100) as u32,
            start_period,
        }
    }

    /// As the engine takes it: `["CMD", …]`, or a string run with `CMD-SHELL`.
    fn healthcheck_test(&mut self, name: &str, test: &Command) -> Vec<String> {
        match test {
            Command::Shell(s) if !s.trim().is_empty() => {
                vec!["CMD-SHELL".to_string(), s.clone()]
            }
            Command::Args(a) if !a.is_empty() => {
                if matches!(a[0].as_str(), "CMD" | "CMD-SHELL" | "NONE") {
                    a.clone()
                } else {
                    let mut t = vec!["CMD".to_string()];
                    t.extend(a.iter().cloned());
                    t
                }
            }
            _ => {
                self.err(
                    "muster::config::invalid_value",
                    format!("service `{name}`: healthcheck.test is empty"),
                    &entry(name, "healthcheck", "test"),
                    "write a check such as [\"CMD\", \"pg_isready\"] or a shell string",
                );
                Vec::new()
            }
        }
    }
}
