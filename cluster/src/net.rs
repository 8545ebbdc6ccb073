//! Hosts as Linux network namespaces on one bridge.
//!
//! Each host is a namespace `aplus-cl-<name>` with a loopback and one `eth0`
//! carrying its address in 10.231.0.0/24. The bridge lives in a namespace of
//! its own (`aplus-cl-switch`), so the run puts no address, link or route in the
//! machine's own namespace: deleting the namespaces removes everything it
//! made. [`Network`] deletes them when dropped, and [`Network::create`]
//! first deletes any left by a run that was killed before it could.

use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// The prefix of every namespace the run creates.
pub const PREFIX: &str = "aplus-cl-";

/// The namespace holding the bridge.
const SWITCH: &str = "aplus-cl-switch";

/// One host: its name and last address octet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Host {
    pub name: &'static str,
    pub octet: u8,
}

impl Host {
    /// Its namespace.
    pub fn netns(&self) -> String {
        format!("{PREFIX}{}", self.name)
    }

    /// Its address.
    pub fn ip(&self) -> String {
        format!("10.231.0.{}", self.octet)
    }
}

/// The hosts of the run.
pub const DB: Host = Host {
    name: "db",
    octet: 2,
};
pub const SIM: Host = Host {
    name: "sim",
    octet: 3,
};
pub const BOTS: [Host; 2] = [
    Host {
        name: "bot-1",
        octet: 11,
    },
    Host {
        name: "bot-2",
        octet: 12,
    },
];
pub const WORKERS: [Host; 3] = [
    Host {
        name: "worker-1",
        octet: 21,
    },
    Host {
        name: "worker-2",
        octet: 22,
    },
    Host {
        name: "worker-3",
        octet: 23,
    },
];
pub const RECONCILERS: [Host; 2] = [
    Host {
        name: "reconciler-1",
        octet: 31,
    },
    Host {
        name: "reconciler-2",
        octet: 32,
    },
];

/// Every host.
pub fn hosts() -> Vec<Host> {
    let mut all = vec![DB, SIM];
    all.extend(BOTS);
    all.extend(WORKERS);
    all.extend(RECONCILERS);
    all
}

/// Runs `ip` with `args`; an error says which command failed and why.
pub fn ip(args: &[&str]) -> Result<()> {
    let output = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running `ip` (Debian: apt-get install iproute2)")?;
    if !output.status.success() {
        bail!(
            "ip {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// Namespaces whose name starts with [`PREFIX`].
fn ours() -> Vec<String> {
    let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
        return Vec::new();
    };
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .filter(|name| name.starts_with(PREFIX))
        .map(str::to_owned)
        .collect()
}

/// The namespaces and links of the run; removed on drop.
#[derive(Debug)]
pub struct Network {
    _private: (),
}

impl Network {
    /// Creates the switch and every host, linked to the bridge and up.
    pub fn create() -> Result<Network> {
        remove_all();
        // Owned before the first namespace exists, so a failure removes them.
        let network = Network { _private: () };
        ip(&["netns", "add", SWITCH])?;
        ip(&["-n", SWITCH, "link", "add", "br0", "type", "bridge"])?;
        ip(&["-n", SWITCH, "link", "set", "br0", "up"])?;
        for host in hosts() {
            let netns = host.netns();
            let port = format!("p-{}", host.octet);
            ip(&["netns", "add", &netns])?;
            ip(&[
                "-n", SWITCH, "link", "add", &port, "type", "veth", "peer", "name", "eth0",
                "netns", &netns,
            ])?;
            ip(&["-n", SWITCH, "link", "set", &port, "master", "br0", "up"])?;
            ip(&["-n", &netns, "link", "set", "lo", "up"])?;
            ip(&[
                "-n",
                &netns,
                "addr",
                "add",
                &format!("{}/24", host.ip()),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &netns, "link", "set", "eth0", "up"])?;
        }
        Ok(network)
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        remove_all();
    }
}

/// Deletes every namespace the run may have made (their links go with them).
pub fn remove_all() {
    for netns in ours() {
        kill_all_in(&netns);
        let _ = ip(&["netns", "del", &netns]);
    }
}

/// Kills every process of a namespace (a whole host dying at once).
pub fn kill_all_in(netns: &str) -> usize {
    let Ok(output) = Command::new("ip").args(["netns", "pids", netns]).output() else {
        return 0;
    };
    let pids: Vec<i32> = String::from_utf8_lossy(&output.stdout)
        .split_whitespace()
        .filter_map(|pid| pid.parse().ok())
        .collect();
    for pid in &pids {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(*pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    pids.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_host_has_its_own_address_and_namespace_inside_the_run_s_own_range() {
        let hosts = hosts();
        let mut addresses: Vec<String> = hosts.iter().map(Host::ip).collect();
        let mut namespaces: Vec<String> = hosts.iter().map(Host::netns).collect();
        addresses.sort();
        addresses.dedup();
        namespaces.sort();
        namespaces.dedup();
        assert_eq!(addresses.len(), hosts.len());
        assert_eq!(namespaces.len(), hosts.len());
        assert!(addresses.iter().all(|a| a.starts_with("10.231.0.")));
        assert!(namespaces.iter().all(|n| n.starts_with(PREFIX)));
        assert!(SWITCH.starts_with(PREFIX), "removed with the hosts");
    }
}
