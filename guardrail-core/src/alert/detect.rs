//! Sliding-window detectors behind the denial-burst and export-spike alerts.
//!
//! Two detectors, both fed by every recorded decision and both reading their thresholds from
//! the policy in force (`[alerts]`), so a reload changes them at once:
//!
//! - **denial burst**: denials of one principal (any action) within `denial_burst.window_secs`;
//!   the alert fires when the count *exceeds* `denial_burst.count`.
//! - **export spike**: records exported by one principal through one `export` action within
//!   `export_spike.window_secs` (an allowed export counts its `count`, or 1 without one); the
//!   alert fires when the total *exceeds* `export_spike.count`.
//!
//! An alert fires **once per crossing**: when a window's total goes over the threshold it
//! alerts and is then silent while the total stays over it; once old entries slide out and
//! the total falls back to the threshold or below, the next crossing alerts again. A pager
//! gets one page per burst, not one per call of the burst.
//!
//! Cost: an allowed call of any kind but `export` returns before taking a lock or
//! allocating. Denials and exports take one mutex on a small map. Memory is bounded: a window
//! keeps at most [`MAX_ENTRIES`] entries (older ones are merged, keeping the *newer* time, so
//! a merged window may alert early but never late), windows whose entries have all slid out
//! are swept, and the number of tracked keys is capped at [`MAX_KEYS`].

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard};

use guardrail_audit::Timestamp;

use crate::alert::{Alert, AlertKind};
use crate::model::ActionKind;
use crate::policy::Policy;
use crate::policy::{ApprovalNeed, Effect};
use crate::registry::ActionDescriptor;

/// Entries one window keeps before merging its oldest two.
pub(crate) const MAX_ENTRIES: usize = 256;
/// Keys (principals, principal+action pairs) one detector tracks at most.
pub(crate) const MAX_KEYS: usize = 65_536;

const NANOS: u64 = 1_000_000_000;

/// One sliding window: timed amounts, their total, and whether this crossing was alerted.
#[derive(Debug, Default)]
struct Window {
    entries: VecDeque<(u64, u64)>,
    total: u64,
    alerted: bool,
    newest: u64,
}

impl Window {
    /// Drops entries at or before `cutoff` (they are a whole window old).
    fn evict(&mut self, cutoff: u64) {
        while let Some(&(t, n)) = self.entries.front() {
            if t > cutoff {
                break;
            }
            self.entries.pop_front();
            self.total = self.total.saturating_sub(n);
        }
    }

    /// Adds `amount` at `now`; returns the total when this addition crosses the threshold.
    fn add(&mut self, now: u64, amount: u64, window_ns: u64, count: u64) -> Option<u64> {
        if let Some(cutoff) = now.checked_sub(window_ns) {
            self.evict(cutoff);
        }
        if self.alerted && self.total <= count {
            // The previous burst slid out: re-arm.
            self.alerted = false;
        }
        if self.entries.len() >= MAX_ENTRIES {
            if let (Some((_, a)), Some((t, b))) =
                (self.entries.pop_front(), self.entries.pop_front())
            {
                self.entries.push_front((t, a.saturating_add(b)));
            }
        }
        self.entries.push_back((now, amount));
        self.total = self.total.saturating_add(amount);
        self.newest = self.newest.max(now);
        if !self.alerted && self.total > count {
            self.alerted = true;
            return Some(self.total);
        }
        None
    }
}

/// Windows by key, with sweeping of stale ones.
#[derive(Debug)]
struct Windows<K> {
    map: HashMap<K, Window>,
    sweep_at: usize,
}

impl<K> Default for Windows<K> {
    fn default() -> Self {
        Windows {
            map: HashMap::new(),
            sweep_at: 1024,
        }
    }
}

impl<K: Hash + Eq + Clone> Windows<K> {
    fn add(&mut self, key: &K, now: u64, amount: u64, window_ns: u64, count: u64) -> Option<u64> {
        if !self.map.contains_key(key) && self.map.len() >= self.sweep_at {
            self.sweep(now, window_ns);
        }
        let window = match self.map.get_mut(key) {
            Some(w) => w,
            None => self.map.entry(key.clone()).or_default(),
        };
        window.add(now, amount, window_ns, count)
    }

    /// Forgets windows with nothing left in them; past [`MAX_KEYS`], the least recently
    /// updated ones too.
    fn sweep(&mut self, now: u64, window_ns: u64) {
        if let Some(cutoff) = now.checked_sub(window_ns) {
            self.map.retain(|_, w| w.newest > cutoff);
        }
        while self.map.len() >= MAX_KEYS {
            let oldest = self
                .map
                .iter()
                .min_by_key(|(_, w)| w.newest)
                .map(|(k, _)| k.clone());
            match oldest {
                Some(k) => {
                    self.map.remove(&k);
                }
                None => break,
            }
        }
        self.sweep_at = (self.map.len() * 2).clamp(1024, MAX_KEYS);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map.len()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The windows hold counters only; a panic mid-update leaves them merely imprecise.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Per-principal (and per-action) sliding-window counters; thresholds come from the policy.
#[derive(Debug, Default)]
pub(crate) struct Detectors {
    denials: Mutex<Windows<Arc<str>>>,
    exports: Mutex<Windows<(Arc<str>, &'static str)>>,
}

/// One recorded decision, as the detectors see it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Observed<'a> {
    pub(crate) action: &'static ActionDescriptor,
    pub(crate) principal: &'a Arc<str>,
    pub(crate) effect: Effect,
    pub(crate) approval: ApprovalNeed,
    pub(crate) count: Option<u64>,
}

impl Detectors {
    /// Feeds one recorded decision to the detectors; returns the alert it raises, if any.
    pub(crate) fn observe(
        &self,
        policy: &Policy,
        now: Timestamp,
        seen: &Observed<'_>,
    ) -> Option<Alert> {
        let Observed {
            action,
            principal,
            effect,
            approval,
            count,
        } = *seen;
        // Hot path first: an allowed call that is not an export costs two comparisons.
        let exported = effect == Effect::Allow
            && action.kind == ActionKind::Export
            && approval == ApprovalNeed::None;
        if effect == Effect::Allow && !exported {
            return None;
        }
        let thresholds = policy.alert_thresholds();
        if effect == Effect::Deny {
            let t = thresholds.denial_burst?;
            let total = lock(&self.denials).add(
                principal,
                now.0,
                1,
                t.window_secs.saturating_mul(NANOS),
                t.count,
            )?;
            return Some(
                Alert::new(
                    AlertKind::DenialBurst,
                    now,
                    format!(
                        "principal `{principal}` was denied {total} times within {} s",
                        t.window_secs
                    ),
                )
                .action(action.name)
                .principal(principal.clone())
                .count(Some(total)),
            );
        }
        let t = thresholds.export_spike?;
        let key = (principal.clone(), action.name);
        let total = lock(&self.exports).add(
            &key,
            now.0,
            count.unwrap_or(1),
            t.window_secs.saturating_mul(NANOS),
            t.count,
        )?;
        Some(
            Alert::new(
                AlertKind::ExportSpike,
                now,
                format!(
                    "principal `{principal}` exported {total} records through `{}` within {} s \
                     (threshold {})",
                    action.name, t.window_secs, t.count
                ),
            )
            .action(action.name)
            .principal(principal.clone())
            .count(Some(total)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = NANOS;

    #[test]
    fn export_window_fires_once_per_crossing_and_rearms() {
        let mut w = Window::default();
        let win = 60 * S;
        assert_eq!(w.add(0, 600, win, 1000), None);
        assert_eq!(w.add(S, 400, win, 1000), None, "1000 is not over 1000");
        assert_eq!(w.add(2 * S, 1, win, 1000), Some(1001));
        assert_eq!(w.add(3 * S, 500, win, 1000), None, "same crossing");
        // At 61 s the first two entries slid out: 501 left, re-armed.
        assert_eq!(w.add(61 * S, 1, win, 1000), None);
        assert_eq!(w.total, 502);
        // At 62 s the entry of 2 s slid out too: 501 + 500 crosses again.
        assert_eq!(w.add(62 * S, 500, win, 1000), Some(1001));
    }

    #[test]
    fn denial_window_fires_past_count() {
        let mut w = Window::default();
        let win = 10 * S;
        for i in 0..5 {
            assert_eq!(w.add(i * S, 1, win, 5), None);
        }
        assert_eq!(w.add(5 * S, 1, win, 5), Some(6));
        assert_eq!(w.add(6 * S, 1, win, 5), None);
    }

    #[test]
    fn entries_are_bounded_and_merging_never_delays_an_alert() {
        let mut w = Window::default();
        let win = 3600 * S;
        for i in 0..(MAX_ENTRIES as u64 * 4) {
            w.add(i, 1, win, u64::MAX);
        }
        assert!(w.entries.len() <= MAX_ENTRIES);
        assert_eq!(w.total, MAX_ENTRIES as u64 * 4);
    }

    #[test]
    fn stale_keys_are_swept() {
        let mut ws: Windows<u32> = Windows::default();
        let win = 10 * S;
        for k in 0..5000u32 {
            ws.add(&k, u64::from(k) * S, 1, win, 100);
        }
        // Keys older than the window are forgotten when the map grows.
        assert!(ws.len() < 2100, "{} keys kept", ws.len());
    }
}
