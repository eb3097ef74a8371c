//! The DPDK layer's ports and queue handles, in this process on net_null and
//! net_ring devices (no namespace, no dpstack binary): each queue is handed
//! out once, and a port stays open while any of its handles lives.
#![cfg(feature = "dpdk")]

mod common;

use arrayvec::ArrayVec;
use dpstack::dpdk::{socket_id, Eal, Mbuf, Mempool, Port, PortConfig, BURST};

#[test]
fn queue_handles_are_unique_and_keep_their_port_open() {
    let _g = common::serial();
    // EAL once per process: the whole scenario is this one test.
    let mut args: Vec<String> = [
        "dpdk_port",
        "-l",
        "0",
        "--no-pci",
        "--log-level=lib.eal:error",
    ]
    .map(String::from)
    .to_vec();
    args.extend(["--vdev=net_null0", "--vdev=net_ring0"].map(String::from));
    args.extend(
        common::eal_memory("dpsport")
            .split_whitespace()
            .map(String::from),
    );
    let (eal, _) = Eal::init(&args).expect("EAL");
    let pool = Mempool::create("port_test", 2047, 0, 2048, socket_id()).expect("mempool");
    assert_eq!(Port::count(), 2);

    // stop() waits for the queue handles. (net_ring0 first: Port::start
    // takes ids below the count of ports left.)
    let one = PortConfig {
        rx_queues: 1,
        tx_queues: 1,
        checksum_offload: false,
        ..Default::default()
    };
    let mut ring = Port::start(1, &one, pool).expect("net_ring0");
    let rx = ring.rx_queue(0).expect("RX queue 0");
    assert!(!ring.stop(), "stopped under a queue handle");
    drop(rx);
    assert!(ring.stop());
    drop(ring);
    assert_eq!(Port::count(), 1);

    let cfg = PortConfig {
        rx_queues: 2,
        tx_queues: 2,
        ..one
    };
    let null = Port::start(0, &cfg, pool).expect("net_null0");
    let mut rx0 = null.rx_queue(0).expect("RX queue 0");
    assert!(null.rx_queue(0).is_err(), "RX queue 0 handed out twice");
    assert!(null.rx_queue(2).is_err(), "a queue the port was not given");
    let mut tx1 = null.tx_queue(1).expect("TX queue 1");
    assert!(null.tx_queue(1).is_err(), "TX queue 1 handed out twice");
    let tx0 = null.tx_queue(0).expect("TX queue 0");

    // The Port goes first: its handles keep the device open and working.
    drop(null);
    assert_eq!(Port::count(), 1);
    let mut burst: ArrayVec<Mbuf, BURST> = ArrayVec::new();
    let n = rx0.rx_burst(&mut burst);
    assert!(
        n > 0,
        "net_null hands out frames as fast as they are polled"
    );
    assert_eq!(tx1.tx_burst(&mut burst), n, "net_null takes every frame");
    drop((rx0, tx0));
    assert_eq!(Port::count(), 1, "one handle is left");
    drop(tx1);
    assert_eq!(
        Port::count(),
        0,
        "closed (and released) with its last handle"
    );
    drop(eal);
}
