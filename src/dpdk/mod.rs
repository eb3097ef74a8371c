//! Safe wrappers over DPDK: EAL, mempools, owned mbufs, ports and queues,
//! lcore launch. Every negative return or NULL becomes a [`DpdkError`] with
//! `rte_strerror`'s text. With `ffi`, the only module allowed `unsafe`.

mod eal;
mod error;
pub mod flow;
mod mempool;
mod pdump;
mod port;
pub mod ring_drops;
mod telemetry;

pub use eal::{
    current_thread_cpus, lcore_id, pin_current_thread, rdtsc, set_timer_slack, socket_id, tsc_hz,
    version, Eal,
};
pub use error::{check, rte_errno, strerror, DpdkError, Result};
pub use mempool::{af_packet_max_frame, Mbuf, Mempool};
pub use pdump::Pdump;
pub use port::{
    hotplug_vdev, link_up, port_by_name, port_name, Port, PortCaps, PortConfig, PortStatsReader,
    RxQueue, TxQueue, BURST,
};
pub use telemetry::{register_reply, register_stats, ReplyProvider, StatsProvider};
