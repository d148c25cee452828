//! Generates the DPDK bindings with bindgen from the system headers (pkg-config
//! `libdpdk`) and compiles the C file of wrappers bindgen emits for DPDK's
//! `static inline` functions (rx/tx burst, mbuf alloc/free, ...).
use std::env;
use std::path::PathBuf;

fn main() {
    let dpdk = pkg_config::Config::new()
        .atleast_version("22.11")
        .cargo_metadata(false)
        .probe("libdpdk")
        .expect("libdpdk (DPDK 22.11) not found by pkg-config: run scripts/setup.sh");

    // Link the shared DPDK libraries; PMDs are loaded from the driver dir at EAL init.
    for path in &dpdk.link_paths {
        println!("cargo:rustc-link-search=native={}", path.display());
    }
    for lib in &dpdk.libs {
        println!("cargo:rustc-link-lib=dylib={lib}");
    }

    // pkg-config's --cflags: include dirs, `-include rte_config.h`, -march.
    let cflags: Vec<String> = {
        let out = std::process::Command::new("pkg-config")
            .args(["--cflags", "libdpdk"])
            .output()
            .expect("pkg-config --cflags libdpdk");
        String::from_utf8(out.stdout)
            .expect("utf-8 cflags")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    };

    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    let wrappers = out_dir.join("static_fns");

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&cflags)
        .clang_arg("-DALLOW_EXPERIMENTAL_API")
        .allowlist_function("rte_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("ETH_.*")
        // Protocol headers pulled in by rte_flow that do not compile as generated
        // (packed type holding an aligned type; Debug derive on packed unions).
        .opaque_type("rte_l2tpv2_.*")
        .opaque_type("rte_gtp_.*")
        .blocklist_function("rte_flow_.*")
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .parse_callbacks(Box::new(bindgen::CargoCallbacks::new()))
        .generate()
        .expect("bindgen over the DPDK headers");
    bindings
        .write_to_file(out_dir.join("bindings.rs"))
        .expect("write bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrappers.with_extension("c"))
        .file("shim.c")
        .include(env::current_dir().unwrap())
        .define("ALLOW_EXPERIMENTAL_API", None)
        .opt_level(3)
        .flag("-Wno-deprecated-declarations")
        .flag("-Wno-unused-parameter")
        .flag("-Wno-duplicate-decl-specifier");
    for f in &cflags {
        build.flag(f);
    }
    // The generated wrapper file includes the header by name.
    build.flag("-include").flag("wrapper.h");
    build.compile("dpdk_static_fns");
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=shim.c");
    println!("cargo:rerun-if-changed=build.rs");
}
