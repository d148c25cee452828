//! `vswitchd [--config FILE]`: runs the switch; with no argument, on the
//! bundled default config.
use clap::Parser;
use control::daemon::Daemon;
use control_api::config::{Config, BUNDLED_DEFAULT};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

#[derive(Parser)]
#[command(version, about = "Ferroswitch daemon: a DPDK fast-path virtual switch")]
struct Args {
    /// TOML configuration; the bundled default when absent.
    #[arg(long, short)]
    config: Option<std::path::PathBuf>,
    /// Validate the configuration and exit.
    #[arg(long)]
    check: bool,
    /// Print the bundled default configuration and exit.
    #[arg(long)]
    print_default_config: bool,
}

fn main() {
    neutron::init_logging();
    let args = Args::parse();
    if args.print_default_config {
        print!("{BUNDLED_DEFAULT}");
        return;
    }
    let (text, origin) = match &args.config {
        Some(p) => match std::fs::read_to_string(p) {
            Ok(t) => (t, p.display().to_string()),
            Err(e) => {
                eprintln!("vswitchd: --config {}: {e}", p.display());
                std::process::exit(2);
            }
        },
        None => (BUNDLED_DEFAULT.to_owned(), "bundled default".to_owned()),
    };
    let cfg = match Config::parse(&text) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("vswitchd: {origin}: {e}");
            std::process::exit(2);
        }
    };
    if args.check {
        println!("{origin}: ok");
        return;
    }
    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(e) = signal_hook::flag::register(sig, Arc::clone(&stop)) {
            eprintln!("vswitchd: cannot handle signal {sig}: {e}");
            std::process::exit(1);
        }
    }
    let daemon = match Daemon::start(cfg) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("vswitchd: {origin}: {e}");
            if args.config.is_none() {
                eprintln!("vswitchd: the bundled default attaches the veth ports fsw-h1 and fsw-h2 that scripts/demo.sh creates");
            }
            std::process::exit(1);
        }
    };
    if let Err(e) = daemon.run(stop) {
        eprintln!("vswitchd: {e}");
        std::process::exit(1);
    }
}
