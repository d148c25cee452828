//! `neutron-server --config FILE`: the Neutron API and its SQLite store
//! without the dataplane, like OpenStack's neutron-server. The file is the
//! daemon's `[neutron]` section at top level. Prints `listening on ADDR`
//! once serving; stops cleanly on SIGINT/SIGTERM. Without a dataplane
//! there is no DHCP server, so `dhcp` is always off here.
use clap::Parser;
use neutron::{Neutron, NeutronConfig};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

#[derive(Parser)]
#[command(version, about = "Ferroswitch Neutron API server (no dataplane)")]
struct Args {
    /// TOML file with the [neutron] keys at top level.
    #[arg(long, short)]
    config: std::path::PathBuf,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
}

fn main() {
    neutron::init_logging();
    let args = Args::parse();
    let origin = args.config.display().to_string();
    let text = match std::fs::read_to_string(&args.config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("neutron-server: --config {origin}: {e}");
            std::process::exit(2);
        }
    };
    let cfg = match NeutronConfig::from_toml(&text) {
        // No dataplane, so no DHCP server: no network:dhcp ports either.
        Ok(c) => NeutronConfig { dhcp: false, ..c },
        Err(e) => {
            eprintln!("neutron-server: {origin}: {e}");
            std::process::exit(2);
        }
    };
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("neutron-server: cannot handle signal {sig}: {e}");
            std::process::exit(1);
        }
    }
    let neutron = match Neutron::open(cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("neutron-server: {origin}: {e}");
            std::process::exit(1);
        }
    };
    if args.check {
        println!("{origin}: ok");
        return;
    }
    let server = match neutron.serve() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("neutron-server: {e}");
            std::process::exit(1);
        }
    };
    println!("listening on {}", server.local_addr());
    let _ = std::io::stdout().flush();
    while !stop.load(Ordering::Relaxed) {
        std::thread::sleep(Duration::from_millis(100));
    }
    server.shutdown();
    // A cluster member's figures, one JSON line (scripts/cluster_scale.py
    // reads them).
    if let Some(m) = neutron.cluster_metrics() {
        println!("cluster {}", serde_json::to_string(&m).unwrap_or_default());
    }
}
