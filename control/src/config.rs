//! The daemon's TOML configuration, validated before anything starts: every
//! error names the key and the reason.
use dataplane::vlan::{PortVlan, VlanMode};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;

/// The config `vswitchd` runs when given no `--config`.
pub const BUNDLED_DEFAULT: &str = include_str!("../config/default.toml");

pub const DEFAULT_SOCKET: &str = "/run/ferroswitch/vswitchd.sock";

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub eal: EalConfig,
    #[serde(default)]
    pub dataplane: DataplaneConfig,
    #[serde(default)]
    pub control: ControlConfig,
    #[serde(default)]
    pub bridges: Vec<BridgeConfig>,
    /// The Neutron-compatible API and its store; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub neutron: Option<crate::neutron::NeutronConfig>,
}

#[derive(Debug, Clone, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields)]
pub struct EalConfig {
    /// Extra EAL arguments; the daemon adds `-l <control_core>` unless the
    /// lcore layout is given here.
    #[serde(default)]
    pub args: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DataplaneConfig {
    /// One pinned PMD worker per core listed.
    #[serde(default = "default_pmd_cores")]
    pub pmd_cores: Vec<usize>,
    #[serde(default)]
    pub control_core: usize,
    #[serde(default = "default_aging")]
    pub mac_aging_secs: u32,
    #[serde(default = "default_mac_size")]
    pub mac_table_size: usize,
    #[serde(default = "default_mbufs")]
    pub mbufs: u32,
    #[serde(default = "default_desc")]
    pub rx_desc: u16,
    #[serde(default = "default_desc")]
    pub tx_desc: u16,
}

fn default_pmd_cores() -> Vec<usize> {
    vec![1]
}
fn default_aging() -> u32 {
    dataplane::mac_table::DEFAULT_AGING_SECS
}
fn default_mac_size() -> usize {
    dataplane::mac_table::DEFAULT_CAPACITY
}
fn default_mbufs() -> u32 {
    16383
}
fn default_desc() -> u16 {
    1024
}

impl Default for DataplaneConfig {
    fn default() -> Self {
        DataplaneConfig {
            pmd_cores: default_pmd_cores(),
            control_core: 0,
            mac_aging_secs: default_aging(),
            mac_table_size: default_mac_size(),
            mbufs: default_mbufs(),
            rx_desc: default_desc(),
            tx_desc: default_desc(),
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ControlConfig {
    #[serde(default = "default_socket")]
    pub socket: String,
    /// `host:port` for Prometheus' `GET /metrics`; off when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metrics_listen: Option<String>,
}

fn default_socket() -> String {
    DEFAULT_SOCKET.to_owned()
}

impl Default for ControlConfig {
    fn default() -> Self {
        ControlConfig {
            socket: default_socket(),
            metrics_listen: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BridgeConfig {
    pub name: String,
    #[serde(default)]
    pub ports: Vec<PortConfig>,
}

/// A port: DPDK devargs (a PCI address for a NIC or SR-IOV VF, or a vdev
/// string) plus OVS-style VLAN settings.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PortConfig {
    pub name: String,
    pub devargs: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vlan_mode: Option<VlanMode>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag: Option<u16>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub trunks: Vec<u16>,
    /// `[[external, local], ...]`: VIDs on the wire mapped to local VLANs
    /// (the Neutron agent's uplink translation).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub vlan_translations: Vec<(u16, u16)>,
    #[serde(default = "default_rxq")]
    pub rx_queues: u16,
    /// The Neutron port this switch port attaches (os-vif's
    /// `external_ids:iface-id`): its VLAN then comes from Neutron.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iface_id: Option<String>,
}

fn default_rxq() -> u16 {
    1
}

/// A config error: the key it is about and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct ConfigError {
    pub key: String,
    pub reason: String,
}

fn err(key: impl Into<String>, reason: impl Into<String>) -> ConfigError {
    ConfigError {
        key: key.into(),
        reason: reason.into(),
    }
}

impl PortConfig {
    /// Checks the port on its own; `key` prefixes error keys.
    pub fn validate(&self, key: &str) -> Result<PortVlan, ConfigError> {
        if self.name.is_empty()
            || self.name.len() > 64
            || self
                .name
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(err(
                format!("{key}.name"),
                "must be 1-64 characters without spaces",
            ));
        }
        if self.devargs.trim().is_empty() {
            return Err(err(
                format!("{key}.devargs"),
                "must name a PCI address (0000:3b:00.1) or a vdev (net_pcap0,...)",
            ));
        }
        if self.devargs.contains('\0') {
            return Err(err(format!("{key}.devargs"), "contains a NUL byte"));
        }
        if self.rx_queues == 0 || self.rx_queues > dpdk_sys::ethdev::MAX_QUEUES {
            return Err(err(
                format!("{key}.rx_queues"),
                format!("must be 1-{}", dpdk_sys::ethdev::MAX_QUEUES),
            ));
        }
        if let Some(id) = &self.iface_id {
            if id.is_empty()
                || id.len() > 64
                || id.chars().any(|c| c.is_whitespace() || c.is_control())
            {
                return Err(err(format!("{key}.iface_id"), "must be a Neutron port id"));
            }
            for (field, set) in [
                ("vlan_mode", self.vlan_mode.is_some()),
                ("tag", self.tag.is_some()),
                ("trunks", !self.trunks.is_empty()),
                ("vlan_translations", !self.vlan_translations.is_empty()),
            ] {
                if set {
                    return Err(err(
                        format!("{key}.{field}"),
                        "a port with iface_id gets its VLAN from Neutron",
                    ));
                }
            }
            // Until the Neutron port is known the port carries nothing.
            return Ok(PortVlan::dead());
        }
        PortVlan::new(self.vlan_mode, self.tag, &self.trunks)
            .and_then(|v| v.with_translations(&self.vlan_translations))
            .map_err(|e| {
                let s = e.to_string();
                let (field, why) = s.split_once(": ").unwrap_or(("vlan_mode", &s));
                err(format!("{key}.{field}"), why.to_owned())
            })
    }
}

/// CPUs online on the machine (not just those this process may run on).
fn online_cpus() -> usize {
    std::fs::read_to_string("/sys/devices/system/cpu/online")
        .ok()
        .and_then(|s| {
            s.trim()
                .split(',')
                .filter_map(|r| r.rsplit('-').next()?.parse::<usize>().ok())
                .max()
        })
        .map(|m| m + 1)
        .unwrap_or(1)
}

impl Config {
    pub fn parse(text: &str) -> Result<Config, ConfigError> {
        let cfg: Config = toml::from_str(text).map_err(|e| {
            let key = e.span().map(|s| {
                // Name the line the parser stopped at.
                let line = text[..s.start.min(text.len())].lines().count().max(1);
                format!("line {line}")
            });
            err(
                key.unwrap_or_else(|| "config".into()),
                e.message().to_owned(),
            )
        })?;
        cfg.validate()?;
        Ok(cfg)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let d = &self.dataplane;
        let ncores = online_cpus();
        if d.pmd_cores.is_empty() {
            return Err(err("dataplane.pmd_cores", "needs at least one core"));
        }
        let mut seen = HashSet::new();
        for &c in &d.pmd_cores {
            if c >= ncores {
                return Err(err(
                    "dataplane.pmd_cores",
                    format!("core {c} does not exist (this machine has {ncores})"),
                ));
            }
            if !seen.insert(c) {
                return Err(err("dataplane.pmd_cores", format!("core {c} listed twice")));
            }
        }
        if d.control_core >= ncores {
            return Err(err(
                "dataplane.control_core",
                format!(
                    "core {} does not exist (this machine has {ncores})",
                    d.control_core
                ),
            ));
        }
        if d.pmd_cores.len() > 64 {
            return Err(err("dataplane.pmd_cores", "at most 64 workers"));
        }
        if d.mac_aging_secs == 0 {
            return Err(err("dataplane.mac_aging_secs", "must be at least 1"));
        }
        if d.mac_table_size < 8 || d.mac_table_size > 16 << 20 {
            return Err(err("dataplane.mac_table_size", "must be 8-16777216"));
        }
        if d.mbufs < 1024 {
            return Err(err("dataplane.mbufs", "must be at least 1024"));
        }
        if !(64..=8192).contains(&d.rx_desc) {
            return Err(err("dataplane.rx_desc", "must be 64-8192"));
        }
        if !(64..=8192).contains(&d.tx_desc) {
            return Err(err("dataplane.tx_desc", "must be 64-8192"));
        }
        if self.control.socket.is_empty() {
            return Err(err("control.socket", "must be a path"));
        }
        if let Some(m) = &self.control.metrics_listen {
            m.parse::<std::net::SocketAddr>().map_err(|e| {
                err(
                    "control.metrics_listen",
                    format!("{m:?} is not host:port ({e})"),
                )
            })?;
        }
        if self.eal.args.iter().any(|a| a.contains('\0')) {
            return Err(err("eal.args", "an argument contains a NUL byte"));
        }
        let mut bridge_names = HashSet::new();
        let mut port_names = HashSet::new();
        let mut devs = HashSet::new();
        let mut nports = 0;
        for (bi, b) in self.bridges.iter().enumerate() {
            let bkey = format!("bridges[{bi}]");
            if b.name.is_empty() {
                return Err(err(format!("{bkey}.name"), "must not be empty"));
            }
            if !bridge_names.insert(b.name.as_str()) {
                return Err(err(
                    format!("{bkey}.name"),
                    format!("bridge {:?} defined twice", b.name),
                ));
            }
            for (pi, p) in b.ports.iter().enumerate() {
                let pkey = format!("{bkey}.ports[{pi}]");
                p.validate(&pkey)?;
                if !port_names.insert(p.name.as_str()) {
                    return Err(err(
                        format!("{pkey}.name"),
                        format!("port {:?} defined twice", p.name),
                    ));
                }
                let dev = p.devargs.split(',').next().unwrap_or("").trim();
                if !devs.insert(dev) {
                    return Err(err(
                        format!("{pkey}.devargs"),
                        format!("device {dev:?} used by two ports"),
                    ));
                }
                nports += 1;
            }
        }
        if nports > dataplane::snapshot::MAX_PORTS {
            return Err(err(
                "bridges",
                format!("at most {} ports", dataplane::snapshot::MAX_PORTS),
            ));
        }
        Ok(())
    }

    /// EAL arguments with the lcore layout added when the user gave none.
    pub fn eal_args(&self) -> Vec<String> {
        let mut args = self.eal.args.clone();
        let has_lcores = args.iter().any(|a| {
            a == "-l"
                || a == "-c"
                || a.starts_with("--lcores")
                || a.starts_with("-l")
                    && a.len() > 2
                    && a[2..]
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == ',' || c == '-')
        });
        if !has_lcores {
            args.insert(0, format!("-l{}", self.dataplane.control_core));
        }
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_default_is_valid() {
        let c = Config::parse(BUNDLED_DEFAULT).unwrap();
        assert_eq!(c.bridges[0].ports.len(), 2);
        assert!(c.eal_args()[0].starts_with("-l"));
    }

    fn with_port(extra: &str) -> String {
        format!("[[bridges]]\nname = \"br0\"\n[[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_null0\"\n{extra}\n")
    }

    #[test]
    fn errors_name_the_key() {
        let e = Config::parse(&with_port("tag = 5000")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].tag", "{e}");
        let e = Config::parse(&with_port("trunks = [1, 9999]\nvlan_mode = \"trunk\"")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].trunks", "{e}");
        let e = Config::parse(&with_port("vlan_mode = \"access\"")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].tag", "{e}");
        let e = Config::parse(&with_port("colour = 1")).unwrap_err();
        assert!(e.reason.contains("unknown field"), "{e}");
        let e = Config::parse(&with_port("rx_queues = 0")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].rx_queues");
        let e = Config::parse("[dataplane]\npmd_cores = [99]\n").unwrap_err();
        assert_eq!(e.key, "dataplane.pmd_cores");
        let e = Config::parse("[dataplane]\nmac_aging_secs = 0\n").unwrap_err();
        assert_eq!(e.key, "dataplane.mac_aging_secs");
        let two = format!(
            "{}[[bridges.ports]]\nname = \"p0\"\ndevargs = \"net_null1\"\n",
            with_port("")
        );
        assert_eq!(
            Config::parse(&two).unwrap_err().key,
            "bridges[0].ports[1].name"
        );
        let dup = format!(
            "{}[[bridges.ports]]\nname = \"p1\"\ndevargs = \"net_null0\"\n",
            with_port("")
        );
        assert_eq!(
            Config::parse(&dup).unwrap_err().key,
            "bridges[0].ports[1].devargs"
        );
        assert!(Config::parse("not toml [")
            .unwrap_err()
            .key
            .starts_with("line"));
    }

    #[test]
    fn translations_are_checked() {
        let c = Config::parse(&with_port("vlan_translations = [[3029, 2]]")).unwrap();
        assert_eq!(c.bridges[0].ports[0].vlan_translations, vec![(3029, 2)]);
        let e =
            Config::parse(&with_port("vlan_translations = [[3029, 2], [3030, 2]]")).unwrap_err();
        assert_eq!(e.key, "bridges[0].ports[0].vlan_translations", "{e}");
        assert!(e.reason.contains("local VLAN 2 mapped twice"), "{e}");
    }

    #[test]
    fn user_lcores_are_kept() {
        let c = Config::parse("[eal]\nargs = [\"--lcores\", \"0@0\"]\n").unwrap();
        assert_eq!(c.eal_args(), vec!["--lcores", "0@0"]);
    }
}
