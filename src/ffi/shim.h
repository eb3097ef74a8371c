/* dpstack's C shim: DPDK's static inline functions and macros, as real
 * functions Rust can call. Included by bindgen (for declarations) and compiled
 * by cc (src/ffi/shim.c). Keep every function tiny: this is not a place for logic. */
#ifndef DPSTACK_SHIM_H
#define DPSTACK_SHIM_H

#include <rte_config.h>
#include <rte_common.h>
#include <rte_errno.h>
#include <rte_eal.h>
#include <rte_lcore.h>
#include <rte_launch.h>
#include <rte_cycles.h>
#include <rte_mempool.h>
#include <rte_mbuf.h>
#include <rte_ethdev.h>
#include <rte_ether.h>
#include <rte_flow.h>
#include <rte_ring.h>
#include <rte_pdump.h>
#include <rte_telemetry.h>
#include <rte_version.h>

int shim_rte_errno(void);
uint16_t shim_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t shim_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
/* The burst gate (burst_gate.c): bursts on a gated port and munmap wait for each other. */
void shim_burst_gate_port(uint16_t port, int on);
void shim_burst_gate_quiesce(void);
struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp);
int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void shim_pktmbuf_free(struct rte_mbuf *m);
void shim_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n);

/* The mbuf fields the Rust side needs, in one call: data pointer, headroom,
 * data length and tailroom. Single-segment mbufs only. */
struct shim_mbuf_view {
    uint8_t *data;
    uint16_t headroom;
    uint16_t len;
    uint16_t tailroom;
};
void shim_mbuf_view(const struct rte_mbuf *m, struct shim_mbuf_view *v);
/* Set data_off and data_len (= pkt_len) at once; the caller checked bounds. */
void shim_mbuf_set(struct rte_mbuf *m, uint16_t headroom, uint16_t len);
uint16_t shim_mbuf_nb_segs(const struct rte_mbuf *m);
/* Ask the NIC to fill IPv4 header and UDP/TCP checksums (l4: 0 none, 1 udp, 2 tcp). */
void shim_mbuf_tx_cksum(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len, int l4);
uint32_t shim_mbuf_rss_hash(const struct rte_mbuf *m, int *valid);

uint64_t shim_rdtsc(void);
unsigned shim_lcore_id(void);
/* Whether lcore `lcore` may run on CPU `cpu` (its EAL cpuset). */
int shim_lcore_has_cpu(unsigned lcore, unsigned cpu);
unsigned shim_socket_id(void);
uint16_t shim_mbuf_default_buf_size(void);
uint16_t shim_pktmbuf_headroom(void);

unsigned shim_ring_enqueue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned shim_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
unsigned shim_ring_count(const struct rte_ring *r);

/* Flag macros bindgen cannot evaluate (RTE_BIT64), as constants. */
extern const uint64_t shim_RTE_ETH_RSS_IP;
extern const uint64_t shim_RTE_ETH_RSS_NONFRAG_IPV4_UDP;
extern const uint64_t shim_RTE_ETH_RSS_NONFRAG_IPV4_TCP;
extern const uint64_t shim_RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
extern const uint64_t shim_RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
extern const uint64_t shim_RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
extern const uint64_t shim_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
extern const uint64_t shim_RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
extern const uint64_t shim_RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
extern const uint64_t shim_RTE_MBUF_F_RX_IP_CKSUM_MASK;
extern const uint64_t shim_RTE_MBUF_F_RX_IP_CKSUM_GOOD;
extern const uint64_t shim_RTE_MBUF_F_RX_IP_CKSUM_BAD;
extern const uint64_t shim_RTE_MBUF_F_RX_L4_CKSUM_MASK;
extern const uint64_t shim_RTE_MBUF_F_RX_L4_CKSUM_GOOD;
extern const uint64_t shim_RTE_MBUF_F_RX_L4_CKSUM_BAD;

#endif
