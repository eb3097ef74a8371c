/* The burst gate: keeps the lcores out of DPDK's net_memif while it tears
 * down a departed peer's shared memory.
 *
 * net_memif (22.11) handles a peer's disconnect on EAL's interrupt thread
 * (memif_disconnect): it munmaps the regions that hold the rings and the
 * buffers, frees (and so zeroes) their descriptors, and only then clears
 * its CONNECTED flag. Its rx and tx bursts test that flag on entry and then
 * use the rings, with nothing to keep the interrupt thread out. So an
 * lcore inside a burst, or entering one before the flag goes down, reads
 * unmapped memory (ring->head in eth_memif_rx) or a ring at a zeroed
 * region's address plus its offset (0x4084), and dies of SIGSEGV: seen in
 * `make bench` with 2 lcores, and reproduced (a 2-lcore server died at
 * about one peer's disconnect in ten). Connecting has the mirror image:
 * a burst computes its ring from a region not yet mapped (address 0),
 * is preempted while the interrupt thread maps the regions and sets the
 * flag (memif_connect), then passes the test and reads 0x4084.
 *
 * The fix, outside the driver: every burst on a gated port (net_memif)
 * goes through this file, bracketed by its lcore's sequence number (odd
 * inside a burst). The driver's munmap resolves to this file's (the
 * executable's definition comes first in the global scope), and so does
 * its mmap64 (memif_connect's): each closes the gate, waits until every
 * lcore that was inside a burst has left it, and maps or unmaps. A closed gate turns bursts away (nothing received, nothing
 * sent) until an EAL alarm opens it again: alarms run on the interrupt
 * thread, so that one runs only after the whole disconnect has returned,
 * when the flag is down and a burst touches nothing. Full barriers on
 * both sides order the lcores' entry against the gate's closing. Other
 * callers of munmap pay one load while no port is gated, and otherwise
 * the scan and a pause of the gated ports' bursts until the alarm. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"
#include <rte_alarm.h>

struct gate_slot {
    uint64_t seq; /* odd while the lcore is inside a gated burst */
} __attribute__((aligned(64)));

static struct gate_slot gate_slots[RTE_MAX_LCORE];
static uint8_t gate_ports[RTE_MAX_ETHPORTS];
static int gate_any;
/* Non-zero while closed: bursts on gated ports are turned away. */
static int gate_closed;

void shim_burst_gate_port(uint16_t port, int on)
{
    if (port >= RTE_MAX_ETHPORTS)
        return;
    __atomic_store_n(&gate_ports[port], on ? 1 : 0, __ATOMIC_RELEASE);
    if (on)
        __atomic_store_n(&gate_any, 1, __ATOMIC_RELEASE);
}

/* The slot of the calling lcore if `port` is gated, else NULL. */
static inline struct gate_slot *gate_slot(uint16_t port)
{
    unsigned id;

    if (port >= RTE_MAX_ETHPORTS || !__atomic_load_n(&gate_ports[port], __ATOMIC_RELAXED))
        return NULL;
    id = rte_lcore_id();
    return id < RTE_MAX_LCORE ? &gate_slots[id] : NULL;
}

/* Enter a burst; 0 if the gate is closed (and the lcore left again). */
static inline int gate_enter(struct gate_slot *s)
{
    if (!s)
        return 1;
    /* A locked add: a full barrier, so that the test of the gate (and
     * the driver's of its flag) comes after this lcore is seen inside. */
    __atomic_fetch_add(&s->seq, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&gate_closed, __ATOMIC_SEQ_CST)) {
        __atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
        return 0;
    }
    return 1;
}

static inline void gate_leave(struct gate_slot *s)
{
    if (s)
        __atomic_store_n(&s->seq, s->seq + 1, __ATOMIC_RELEASE);
}

uint16_t shim_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    struct gate_slot *s = gate_slot(port);
    uint16_t got;

    if (!gate_enter(s))
        return 0;
    got = rte_eth_rx_burst(port, queue, pkts, n);
    gate_leave(s);
    return got;
}

uint16_t shim_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n)
{
    struct gate_slot *s = gate_slot(port);
    uint16_t sent;

    if (!gate_enter(s))
        return 0;
    sent = rte_eth_tx_burst(port, queue, pkts, n);
    gate_leave(s);
    return sent;
}

static void gate_open(void *arg)
{
    (void)arg;
    __atomic_store_n(&gate_closed, 0, __ATOMIC_RELEASE);
}

/* Close the gate and wait until every lcore inside a gated burst now has
 * left it (not for the calling thread's own slot, and at most about a
 * second: a burst never takes that long, and a stuck lcore must not hang
 * the caller). The gate opens again from the interrupt thread's next
 * round (an alarm), or at once if no alarm can be set. */
void shim_burst_gate_quiesce(void)
{
    unsigned self = rte_lcore_id();
    unsigned i;

    if (!__atomic_load_n(&gate_any, __ATOMIC_ACQUIRE))
        return;
    __atomic_store_n(&gate_closed, 1, __ATOMIC_SEQ_CST);
    if (rte_eal_alarm_set(1, gate_open, NULL) != 0)
        __atomic_store_n(&gate_closed, 0, __ATOMIC_RELEASE);
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    for (i = 0; i < RTE_MAX_LCORE; i++) {
        uint64_t seen = __atomic_load_n(&gate_slots[i].seq, __ATOMIC_ACQUIRE);
        int spins = 0;

        if (i == self || !(seen & 1))
            continue;
        while (__atomic_load_n(&gate_slots[i].seq, __ATOMIC_ACQUIRE) == seen) {
            if (++spins < 1000) {
                /* A preempted lcore may need this CPU back. */
                sched_yield();
            } else {
                struct timespec ts = {0, 1000000};
                nanosleep(&ts, NULL);
                if (spins > 2000)
                    break;
            }
        }
    }
}

int munmap(void *addr, size_t len)
{
    shim_burst_gate_quiesce();
    return (int)syscall(SYS_munmap, addr, len);
}

void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
    shim_burst_gate_quiesce();
    return (void *)syscall(SYS_mmap, addr, len, prot, flags, fd, off);
}
