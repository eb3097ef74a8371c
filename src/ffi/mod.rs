//! Generated DPDK bindings and the shim's declarations: the only extern code.
//! Produced at build time by build.rs into OUT_DIR; nothing here is committed.
#![allow(
    non_upper_case_globals,
    non_camel_case_types,
    non_snake_case,
    dead_code,
    clippy::all,
    clippy::pedantic,
    unsafe_op_in_unsafe_fn
)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));

/// DPDK flag macros (`RTE_BIT64(..)`), as the C compiler evaluated them.
pub mod flags {
    macro_rules! flag {
        ($($name:ident => $sym:ident),* $(,)?) => {
            $(
                #[inline]
                pub fn $name() -> u64 {
                    // SAFETY: an immutable constant defined in shim.c.
                    unsafe { super::$sym }
                }
            )*
        };
    }
    flag! {
        rte_eth_rss_ip => shim_RTE_ETH_RSS_IP,
        rte_eth_rss_nonfrag_ipv4_udp => shim_RTE_ETH_RSS_NONFRAG_IPV4_UDP,
        rte_eth_rss_nonfrag_ipv4_tcp => shim_RTE_ETH_RSS_NONFRAG_IPV4_TCP,
        rte_eth_tx_offload_ipv4_cksum => shim_RTE_ETH_TX_OFFLOAD_IPV4_CKSUM,
        rte_eth_tx_offload_udp_cksum => shim_RTE_ETH_TX_OFFLOAD_UDP_CKSUM,
        rte_eth_tx_offload_tcp_cksum => shim_RTE_ETH_TX_OFFLOAD_TCP_CKSUM,
        rte_eth_rx_offload_ipv4_cksum => shim_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM,
        rte_eth_rx_offload_udp_cksum => shim_RTE_ETH_RX_OFFLOAD_UDP_CKSUM,
        rte_eth_rx_offload_tcp_cksum => shim_RTE_ETH_RX_OFFLOAD_TCP_CKSUM,
        rte_mbuf_f_rx_ip_cksum_mask => shim_RTE_MBUF_F_RX_IP_CKSUM_MASK,
        rte_mbuf_f_rx_ip_cksum_good => shim_RTE_MBUF_F_RX_IP_CKSUM_GOOD,
        rte_mbuf_f_rx_ip_cksum_bad => shim_RTE_MBUF_F_RX_IP_CKSUM_BAD,
        rte_mbuf_f_rx_l4_cksum_mask => shim_RTE_MBUF_F_RX_L4_CKSUM_MASK,
        rte_mbuf_f_rx_l4_cksum_good => shim_RTE_MBUF_F_RX_L4_CKSUM_GOOD,
        rte_mbuf_f_rx_l4_cksum_bad => shim_RTE_MBUF_F_RX_L4_CKSUM_BAD,
    }
}
