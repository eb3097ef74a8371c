//! Finds DPDK (>= 22.11) with pkg-config, generates the bindings with bindgen
//! (explicit allowlist, rte_flow included) and compiles the C shim for DPDK's
//! static inline functions and `rte_errno`. Nothing generated is committed:
//! everything lands in OUT_DIR.
//!
//! All of it only with the `dpdk` feature (the default): without it the
//! library is the protocol code alone, which needs neither DPDK nor
//! libclang, and this script does nothing.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    #[cfg(feature = "dpdk")]
    dpdk::build();
}

#[cfg(feature = "dpdk")]
mod dpdk {
    use std::env;
    use std::path::PathBuf;
    use std::process::Command;

    const MIN_DPDK: &str = "22.11";

    fn dpdk_cflags() -> Vec<String> {
        // The pkg-config crate passes on only -I and -D; DPDK's headers also need
        // `-include rte_config.h` and a -march with SSSE3, so take the flags whole.
        let out = Command::new("pkg-config")
            .args(["--cflags", "libdpdk"])
            .output()
            .expect("pkg-config not found: install pkg-config and libdpdk-dev");
        assert!(out.status.success(), "pkg-config --cflags libdpdk failed");
        String::from_utf8(out.stdout)
            .expect("pkg-config printed non-UTF-8")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    pub fn build() {
        println!("cargo:rerun-if-changed=src/ffi/shim.h");
        println!("cargo:rerun-if-changed=src/ffi/shim.c");
        println!("cargo:rerun-if-changed=src/ffi/burst_gate.c");

        let lib = pkg_config::Config::new()
            .atleast_version(MIN_DPDK)
            .cargo_metadata(true)
            .probe("libdpdk")
            .unwrap_or_else(|e| {
                panic!(
                    "DPDK >= {MIN_DPDK} not found by pkg-config ({e}); apt-get install libdpdk-dev"
                )
            });
        println!("cargo:rustc-env=DPSTACK_DPDK_VERSION={}", lib.version);

        let mut cflags = dpdk_cflags();
        cflags.push("-DALLOW_EXPERIMENTAL_API".into());
        let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
        let ffi_dir = manifest.join("src/ffi");

        let mut cc = cc::Build::new();
        cc.file(ffi_dir.join("shim.c"))
            .file(ffi_dir.join("burst_gate.c"))
            .include(&ffi_dir)
            .opt_level(3)
            .warnings(false);
        for f in &cflags {
            cc.flag(f);
        }
        cc.compile("dpstack_shim");

        let bindings = bindgen::Builder::default()
        .header(ffi_dir.join("shim.h").to_string_lossy())
        .clang_args(cflags.iter())
        .clang_arg(format!("-I{}", ffi_dir.display()))
        .allowlist_function("shim_.*")
        .allowlist_var("shim_.*")
        .allowlist_function("rte_eal_(init|cleanup|remote_launch|mp_wait_lcore|wait_lcore|process_type|hotplug_add|hotplug_remove)")
        .allowlist_function("rte_eth_(dev_count_avail|dev_info_get|dev_configure|rx_queue_setup|tx_queue_setup|dev_start|dev_stop|dev_close|macaddr_get|stats_get|stats_reset|promiscuous_enable|allmulticast_enable|dev_adjust_nb_rx_tx_desc|dev_socket_id|dev_rss_hash_conf_get|dev_rss_reta_query|dev_rss_reta_update|dev_get_mtu|dev_set_mtu|dev_get_name_by_port|dev_get_port_by_name|find_next_owned_by|link_get_nowait|dev_set_link_up)")
        .allowlist_function("rte_pktmbuf_pool_create")
        .allowlist_function("rte_mempool_(avail_count|in_use_count|free|lookup)")
        .allowlist_function("rte_lcore_(count|index|to_socket_id)")
        .allowlist_function("rte_get_(next_lcore|main_lcore|tsc_hz)")
        .allowlist_function("rte_strerror")
        .allowlist_function("rte_pdump_(init|uninit)")
        .allowlist_function("rte_version")
        .allowlist_function("rte_flow_(validate|create|destroy|flush|error_set)")
        .allowlist_function("rte_ring_(create|free)")
        .allowlist_function("rte_telemetry_.*|rte_tel_data_.*")
        .allowlist_type("rte_eth_conf|rte_eth_dev_info|rte_eth_rxconf|rte_eth_txconf|rte_eth_stats|rte_eth_link")
        .allowlist_type("rte_eth_rss_conf|rte_eth_rss_reta_entry64")
        .allowlist_type("rte_flow_.*")
        .allowlist_var("RTE_ETH_.*|RTE_MBUF_F_.*|RTE_MAX_LCORE|RTE_MAX_ETHPORTS|RTE_ETHER_.*|RING_F_.*|SOCKET_ID_ANY")
        .opaque_type("rte_arp_hdr|rte_arp_ipv4")
        .derive_default(true)
        .derive_debug(false)
        .layout_tests(false)
        .generate_comments(false)
        .generate()
        .expect("bindgen failed on src/ffi/shim.h");
        let out = PathBuf::from(env::var("OUT_DIR").unwrap());
        bindings
            .write_to_file(out.join("bindings.rs"))
            .expect("writing bindings.rs");
    }
}
