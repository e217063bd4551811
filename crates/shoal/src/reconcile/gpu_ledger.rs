//! GPU devices being given to replicas that no listing shows yet, across every service: two
//! services' loops placing at the same moment (at the window's opening, say) must not both
//! take device 0 of a server. A start reserves its devices here before it creates the
//! container; the reservation counts in every service's GPU view until the container is
//! listed (its `io.shoal.gpus` label then says the same) or [`HOLD`] passes.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::placement::GpuInventory;

/// How long a reservation counts without its container being listed.
pub const HOLD: Duration = Duration::from_secs(60);

#[derive(Clone, Debug)]
struct Reservation {
    /// Container name.
    name: String,
    devices: Vec<String>,
    sharing: bool,
    at: Instant,
}

/// Reservations by server.
#[derive(Debug, Default)]
pub struct GpuLedger {
    by_server: Mutex<BTreeMap<String, Vec<Reservation>>>,
}

impl GpuLedger {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Vec<Reservation>>> {
        self.by_server
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Reserves `devices` of `server` for the container `name` about to be created, unless
    /// another reservation holds one of them in a way that excludes this one. Returns the
    /// device in conflict.
    pub fn reserve(
        &self,
        server: &str,
        name: &str,
        devices: &[String],
        sharing: bool,
        now: Instant,
    ) -> Result<(), String> {
        let mut all = self.lock();
        let list = all.entry(server.to_owned()).or_default();
        list.retain(|r| now.saturating_duration_since(r.at) < HOLD);
        for r in list.iter().filter(|r| r.name != name) {
            if let Some(d) = devices
                .iter()
                .find(|d| r.devices.contains(d) && !(sharing && r.sharing))
            {
                return Err(d.clone());
            }
        }
        list.push(Reservation {
            name: name.to_owned(),
            devices: devices.to_vec(),
            sharing,
            at: now,
        });
        Ok(())
    }

    /// Drops the reservation of `name` (its create failed, or it is listed now).
    pub fn release(&self, server: &str, name: &str) {
        if let Some(list) = self.lock().get_mut(server) {
            list.retain(|r| r.name != name);
        }
    }

    /// Adds to `inv` the reservations of containers the listing (`listed` names) does not
    /// show yet, and forgets those it shows.
    pub fn apply(&self, inv: &mut GpuInventory, listed: &[String], now: Instant) {
        let mut all = self.lock();
        let Some(list) = all.get_mut(&inv.server) else {
            return;
        };
        list.retain(|r| now.saturating_duration_since(r.at) < HOLD && !listed.contains(&r.name));
        for r in list.iter() {
            inv.claim(&r.devices, r.sharing);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn two_starts_cannot_take_one_device_until_the_listing_shows_it() {
        let l = GpuLedger::default();
        let t0 = Instant::now();
        l.reserve("a", "ollama-1", &ids(&["0"]), false, t0).unwrap();
        assert_eq!(
            l.reserve("a", "whisper-1", &ids(&["0"]), false, t0),
            Err("0".to_owned())
        );
        l.reserve("a", "whisper-1", &ids(&["1"]), false, t0)
            .unwrap();
        l.reserve("b", "whisper-2", &ids(&["0"]), false, t0)
            .unwrap();
        // Sharing replicas may share with each other only.
        assert!(l.reserve("a", "s-1", &ids(&["0"]), true, t0).is_err());
        // In the GPU view until listed, then the label counts instead.
        let mut inv = GpuInventory {
            server: "a".into(),
            devices: ids(&["0", "1", "2"]),
            ..Default::default()
        };
        l.apply(&mut inv, &[], t0);
        assert_eq!(inv.exclusive.len(), 2);
        let mut inv2 = GpuInventory {
            server: "a".into(),
            ..inv.clone()
        };
        inv2.exclusive.clear();
        l.apply(&mut inv2, &ids(&["ollama-1"]), t0);
        assert_eq!(inv2.exclusive.iter().collect::<Vec<_>>(), ["1"]);
        // Expired after HOLD.
        l.reserve("a", "x", &ids(&["0"]), false, t0 + HOLD).unwrap();
    }
}
