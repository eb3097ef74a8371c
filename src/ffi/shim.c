#define _GNU_SOURCE /* cpu_set_t, rte_cpuset_t */
#include "shim.h"

int shim_rte_errno(void) { return rte_errno; }

/* shim_rx_burst and shim_tx_burst: in burst_gate.c. */

struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp) { return rte_pktmbuf_alloc(mp); }

int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n)
{
    return rte_pktmbuf_alloc_bulk(mp, mbufs, n);
}

void shim_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void shim_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n) { rte_pktmbuf_free_bulk(mbufs, n); }

void shim_mbuf_view(const struct rte_mbuf *m, struct shim_mbuf_view *v)
{
    v->data = (uint8_t *)m->buf_addr + m->data_off;
    v->headroom = m->data_off;
    v->len = m->data_len;
    v->tailroom = (uint16_t)(m->buf_len - m->data_off - m->data_len);
}

void shim_mbuf_set(struct rte_mbuf *m, uint16_t headroom, uint16_t len)
{
    m->data_off = headroom;
    m->data_len = len;
    m->pkt_len = len;
}

uint16_t shim_mbuf_nb_segs(const struct rte_mbuf *m) { return m->nb_segs; }

void shim_mbuf_tx_cksum(struct rte_mbuf *m, uint16_t l2_len, uint16_t l3_len, int l4)
{
    m->l2_len = l2_len;
    m->l3_len = l3_len;
    m->ol_flags |= RTE_MBUF_F_TX_IPV4 | RTE_MBUF_F_TX_IP_CKSUM;
    if (l4 == 1)
        m->ol_flags |= RTE_MBUF_F_TX_UDP_CKSUM;
    else if (l4 == 2)
        m->ol_flags |= RTE_MBUF_F_TX_TCP_CKSUM;
}

uint32_t shim_mbuf_rss_hash(const struct rte_mbuf *m, int *valid)
{
    *valid = (m->ol_flags & RTE_MBUF_F_RX_RSS_HASH) != 0;
    return m->hash.rss;
}

uint64_t shim_rdtsc(void) { return rte_rdtsc(); }
unsigned shim_lcore_id(void) { return rte_lcore_id(); }
int shim_lcore_has_cpu(unsigned lcore, unsigned cpu)
{
    if (cpu >= CPU_SETSIZE)
        return 0;
    rte_cpuset_t set = rte_lcore_cpuset(lcore);
    return CPU_ISSET(cpu, &set) ? 1 : 0;
}
unsigned shim_socket_id(void) { return rte_socket_id(); }
uint16_t shim_mbuf_default_buf_size(void) { return RTE_MBUF_DEFAULT_BUF_SIZE; }
uint16_t shim_pktmbuf_headroom(void) { return RTE_PKTMBUF_HEADROOM; }

unsigned shim_ring_enqueue_burst(struct rte_ring *r, void **objs, unsigned n)
{
    return rte_ring_enqueue_burst(r, objs, n, NULL);
}

unsigned shim_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n)
{
    return rte_ring_dequeue_burst(r, objs, n, NULL);
}

unsigned shim_ring_count(const struct rte_ring *r) { return rte_ring_count(r); }

const uint64_t shim_RTE_ETH_RSS_IP = RTE_ETH_RSS_IP;
const uint64_t shim_RTE_ETH_RSS_NONFRAG_IPV4_UDP = RTE_ETH_RSS_NONFRAG_IPV4_UDP;
const uint64_t shim_RTE_ETH_RSS_NONFRAG_IPV4_TCP = RTE_ETH_RSS_NONFRAG_IPV4_TCP;
const uint64_t shim_RTE_ETH_TX_OFFLOAD_IPV4_CKSUM = RTE_ETH_TX_OFFLOAD_IPV4_CKSUM;
const uint64_t shim_RTE_ETH_TX_OFFLOAD_UDP_CKSUM = RTE_ETH_TX_OFFLOAD_UDP_CKSUM;
const uint64_t shim_RTE_ETH_TX_OFFLOAD_TCP_CKSUM = RTE_ETH_TX_OFFLOAD_TCP_CKSUM;
const uint64_t shim_RTE_ETH_RX_OFFLOAD_IPV4_CKSUM = RTE_ETH_RX_OFFLOAD_IPV4_CKSUM;
const uint64_t shim_RTE_ETH_RX_OFFLOAD_UDP_CKSUM = RTE_ETH_RX_OFFLOAD_UDP_CKSUM;
const uint64_t shim_RTE_ETH_RX_OFFLOAD_TCP_CKSUM = RTE_ETH_RX_OFFLOAD_TCP_CKSUM;
const uint64_t shim_RTE_MBUF_F_RX_IP_CKSUM_MASK = RTE_MBUF_F_RX_IP_CKSUM_MASK;
const uint64_t shim_RTE_MBUF_F_RX_IP_CKSUM_GOOD = RTE_MBUF_F_RX_IP_CKSUM_GOOD;
const uint64_t shim_RTE_MBUF_F_RX_IP_CKSUM_BAD = RTE_MBUF_F_RX_IP_CKSUM_BAD;
const uint64_t shim_RTE_MBUF_F_RX_L4_CKSUM_MASK = RTE_MBUF_F_RX_L4_CKSUM_MASK;
const uint64_t shim_RTE_MBUF_F_RX_L4_CKSUM_GOOD = RTE_MBUF_F_RX_L4_CKSUM_GOOD;
const uint64_t shim_RTE_MBUF_F_RX_L4_CKSUM_BAD = RTE_MBUF_F_RX_L4_CKSUM_BAD;
