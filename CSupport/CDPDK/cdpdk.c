#include "cdpdk.h"

#include <dlfcn.h>
#include <errno.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_pause.h>
#include <rte_version.h>

const char *cdpdk_version(void) { return rte_version(); }

int cdpdk_eal_init(int argc, char **argv, int *error) {
    int r = rte_eal_init(argc, argv);
    if (error) *error = r < 0 ? rte_errno : 0;
    return r;
}

const char *cdpdk_runtime_dir(void) { return rte_eal_get_runtime_dir(); }

int cdpdk_thread_register(int *error) {
    int r = rte_thread_register();
    if (error) *error = r < 0 ? rte_errno : 0;
    return r;
}

void cdpdk_thread_unregister(void) { rte_thread_unregister(); }

uint32_t cdpdk_lcore_id(void) { return rte_lcore_id(); }

const char *cdpdk_strerror(int error) { return rte_strerror(error); }

uint16_t cdpdk_eth_dev_count_avail(void) { return rte_eth_dev_count_avail(); }

// MARK: Memory pools

struct rte_mempool *cdpdk_pktmbuf_pool_create(const char *name, uint32_t count, uint32_t cache_size,
                                              uint16_t data_room, int socket_id, int *error) {
    struct rte_mempool *pool = rte_pktmbuf_pool_create(
        name, count, cache_size, 0, data_room, socket_id < 0 ? SOCKET_ID_ANY : socket_id);
    if (error) *error = pool ? 0 : rte_errno;
    return pool;
}

void cdpdk_mempool_free(struct rte_mempool *pool) { rte_mempool_free(pool); }

// MARK: Ports

int cdpdk_port_next(uint16_t from) {
    uint16_t next = rte_eth_find_next(from);
    return next >= RTE_MAX_ETHPORTS ? -1 : (int)next;
}

int cdpdk_port_by_name(const char *name, uint16_t *port_id) {
    return rte_eth_dev_get_port_by_name(name, port_id);
}

int cdpdk_port_name(uint16_t port_id, char *name, uint32_t capacity) {
    char buffer[RTE_ETH_NAME_MAX_LEN];
    int r = rte_eth_dev_get_name_by_port(port_id, buffer);
    if (r < 0) return r;
    if (capacity == 0) return -EINVAL;
    size_t n = strnlen(buffer, sizeof buffer);
    if (n >= capacity) n = capacity - 1;
    memcpy(name, buffer, n);
    name[n] = 0;
    return 0;
}

int cdpdk_port_socket_id(uint16_t port_id) { return rte_eth_dev_socket_id(port_id); }

int cdpdk_port_setup(uint16_t port_id, uint16_t queues, uint16_t rx_descriptors, uint16_t tx_descriptors,
                     struct rte_mempool *pool, const char **failed_step) {
    const char *unused;
    if (!failed_step) failed_step = &unused;
    *failed_step = NULL;
    if (!rte_eth_dev_is_valid_port(port_id)) {
        *failed_step = "rte_eth_dev_is_valid_port";
        return -ENODEV;
    }
    if (queues == 0 || !pool) {
        *failed_step = "arguments (no queues or no pool)";
        return -EINVAL;
    }
    struct rte_eth_dev_info info;
    int r = rte_eth_dev_info_get(port_id, &info);
    if (r != 0) {
        *failed_step = "rte_eth_dev_info_get";
        return r;
    }
    if (queues > info.max_rx_queues || queues > info.max_tx_queues) {
        *failed_step = "queue count (above the device's max_rx_queues/max_tx_queues)";
        return -EINVAL;
    }
    struct rte_eth_conf conf;
    memset(&conf, 0, sizeof conf);
    r = rte_eth_dev_configure(port_id, queues, queues, &conf);
    if (r != 0) {
        *failed_step = "rte_eth_dev_configure";
        return r;
    }
    uint16_t nb_rx = rx_descriptors, nb_tx = tx_descriptors;
    r = rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &nb_rx, &nb_tx);
    if (r != 0) {
        *failed_step = "rte_eth_dev_adjust_nb_rx_tx_desc";
        return r;
    }
    int socket = rte_eth_dev_socket_id(port_id);
    unsigned int socket_id = socket < 0 ? (unsigned int)SOCKET_ID_ANY : (unsigned int)socket;
    for (uint16_t q = 0; q < queues; q++) {
        r = rte_eth_rx_queue_setup(port_id, q, nb_rx, socket_id, NULL, pool);
        if (r < 0) {
            *failed_step = "rte_eth_rx_queue_setup";
            return r;
        }
        r = rte_eth_tx_queue_setup(port_id, q, nb_tx, socket_id, NULL);
        if (r < 0) {
            *failed_step = "rte_eth_tx_queue_setup";
            return r;
        }
    }
    r = rte_eth_dev_start(port_id);
    if (r < 0) {
        *failed_step = "rte_eth_dev_start";
        return r;
    }
    return 0;
}

int cdpdk_port_stop(uint16_t port_id) { return rte_eth_dev_stop(port_id); }

int cdpdk_port_start(uint16_t port_id) { return rte_eth_dev_start(port_id); }

int cdpdk_port_close(uint16_t port_id) { return rte_eth_dev_close(port_id); }

int cdpdk_port_mac(uint16_t port_id, uint8_t mac[6]) {
    struct rte_ether_addr address;
    int r = rte_eth_macaddr_get(port_id, &address);
    if (r == 0) memcpy(mac, address.addr_bytes, RTE_ETHER_ADDR_LEN);
    return r;
}

int cdpdk_port_link_up(uint16_t port_id) {
    struct rte_eth_link link;
    memset(&link, 0, sizeof link);
    int r = rte_eth_link_get_nowait(port_id, &link);
    if (r < 0) return r;
    return link.link_status == RTE_ETH_LINK_UP ? 1 : 0;
}

int cdpdk_port_stats(uint16_t port_id, struct cdpdk_port_counters *stats) {
    struct rte_eth_stats s;
    int r = rte_eth_stats_get(port_id, &s);
    if (r != 0) return r;
    stats->ipackets = s.ipackets;
    stats->opackets = s.opackets;
    stats->ibytes = s.ibytes;
    stats->obytes = s.obytes;
    stats->imissed = s.imissed;
    stats->ierrors = s.ierrors;
    stats->oerrors = s.oerrors;
    stats->rx_nombuf = s.rx_nombuf;
    return 0;
}

// MARK: Bursts, and the memif disconnect race
//
// DPDK 22.11's memif tears a link down on the EAL interrupt thread when its
// peer's control socket closes (a peer killed with SIGKILL says nothing
// first): `memif_disconnect` marks the link down, closes descriptors, then
// unmaps the shared regions the rings live in (`memif_free_regions`), with no
// synchronisation with the data path. A burst that passed its "connected"
// check a moment earlier then reads or writes unmapped memory (SIGSEGV in
// `eth_memif_tx` under `cdpdk_tx_burst`, in a memif server whose client was
// killed).
//
// The fix is a quiescence wait, the Dekker pattern: each burst marks its
// thread's slot (a seq_cst read-modify-write) before DPDK looks at the link,
// and this file's `munmap`, which interposes libc's for the whole process,
// waits until no slot is marked before unmapping. The disconnect clears the
// "connected" flag before it unmaps, so a burst either started before the
// wait (and is waited for) or sees the flag cleared and touches nothing.
// Costs: one uncontended atomic add and subtract per burst on the thread's
// own cache line; a scan of the claimed slots per `munmap` (rare). Left out
// under a sanitizer, whose runtime must see every munmap itself.

#define CDPDK_BURST_SLOTS 256

struct cdpdk_burst_slot {
    _Atomic uint32_t depth;  // bursts under way on the threads sharing this slot
} __attribute__((aligned(64)));

static struct cdpdk_burst_slot cdpdk_burst_slots[CDPDK_BURST_SLOTS];
static _Atomic uint32_t cdpdk_burst_slots_claimed;
static __thread struct cdpdk_burst_slot *cdpdk_thread_slot;
static __thread uint32_t cdpdk_thread_depth;  // this thread's own bursts under way

static inline struct cdpdk_burst_slot *cdpdk_burst_enter(void) {
    struct cdpdk_burst_slot *slot = cdpdk_thread_slot;
    if (__builtin_expect(slot == NULL, 0)) {
        // A slot per thread; past CDPDK_BURST_SLOTS threads share (depth is a count).
        uint32_t k = atomic_fetch_add_explicit(&cdpdk_burst_slots_claimed, 1, memory_order_relaxed);
        slot = cdpdk_thread_slot = &cdpdk_burst_slots[k % CDPDK_BURST_SLOTS];
    }
    cdpdk_thread_depth++;
    atomic_fetch_add_explicit(&slot->depth, 1, memory_order_seq_cst);
    return slot;
}

static inline void cdpdk_burst_leave(struct cdpdk_burst_slot *slot) {
    atomic_fetch_sub_explicit(&slot->depth, 1, memory_order_release);
    cdpdk_thread_depth--;
}

#if defined(__has_feature)
#if __has_feature(thread_sanitizer) || __has_feature(address_sanitizer)
#define CDPDK_NO_MUNMAP_GUARD 1
#endif
#endif

#ifndef CDPDK_NO_MUNMAP_GUARD
// Returns once no other thread is inside a burst; at once from inside one.
static void cdpdk_wait_for_bursts(void) {
    // From inside a burst (a signal handler on a bursting thread) it would wait for itself.
    if (cdpdk_thread_depth > 0) return;
    atomic_thread_fence(memory_order_seq_cst);
    uint32_t claimed = atomic_load_explicit(&cdpdk_burst_slots_claimed, memory_order_relaxed);
    if (claimed > CDPDK_BURST_SLOTS) claimed = CDPDK_BURST_SLOTS;
    for (uint32_t k = 0; k < claimed; k++) {
        for (unsigned spins = 0; atomic_load_explicit(&cdpdk_burst_slots[k].depth, memory_order_acquire) != 0; spins++) {
            if (spins < 64) {
                rte_pause();
            } else {
                sched_yield();  // the bursting thread may be preempted: let it finish
            }
        }
    }
}

// Interposes libc's munmap for the process (the executable's definition comes
// first in symbol lookup, for the PMDs the EAL loads too): every unmapping waits
// for the bursts under way, then makes the system call itself.
int munmap(void *address, size_t length) {
    cdpdk_wait_for_bursts();
    return (int)syscall(SYS_munmap, address, length);
}
#endif

int cdpdk_munmap_is_guarded(void) {
#ifdef CDPDK_NO_MUNMAP_GUARD
    return 0;
#else
    // What a PMD's call binds to: the first definition in the global scope.
    return dlsym(RTLD_DEFAULT, "munmap") == (void *)munmap ? 1 : 0;
#endif
}

void cdpdk_burst_hold_begin(void) { (void)cdpdk_burst_enter(); }

void cdpdk_burst_hold_end(void) { cdpdk_burst_leave(cdpdk_thread_slot); }

uint16_t cdpdk_rx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count) {
    struct cdpdk_burst_slot *slot = cdpdk_burst_enter();
    uint16_t n = rte_eth_rx_burst(port_id, queue, mbufs, count);
    cdpdk_burst_leave(slot);
    return n;
}

uint16_t cdpdk_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count) {
    struct cdpdk_burst_slot *slot = cdpdk_burst_enter();
    uint16_t n = rte_eth_tx_burst(port_id, queue, mbufs, count);
    cdpdk_burst_leave(slot);
    return n;
}

// MARK: Mbufs

struct rte_mbuf *cdpdk_pktmbuf_alloc(struct rte_mempool *pool) { return rte_pktmbuf_alloc(pool); }

void cdpdk_pktmbuf_free(struct rte_mbuf *m) { rte_pktmbuf_free(m); }

void cdpdk_pktmbuf_free_bulk(struct rte_mbuf **mbufs, uint32_t count) { rte_pktmbuf_free_bulk(mbufs, count); }

// The inline accessors in cdpdk.h read `struct rte_mbuf` at fixed offsets:
// each must be the real field's, of the size the accessor reads.
#define CDPDK_CHECK_FIELD(field, offset, type)                                                  \
    _Static_assert(offsetof(struct rte_mbuf, field) == (offset), "rte_mbuf." #field " moved: " \
                                                                   "update CDPDK_MBUF_* in cdpdk.h"); \
    _Static_assert(sizeof(((struct rte_mbuf *)0)->field) == sizeof(type), "rte_mbuf." #field " changed size")
CDPDK_CHECK_FIELD(buf_addr, CDPDK_MBUF_BUF_ADDR, void *);
CDPDK_CHECK_FIELD(data_off, CDPDK_MBUF_DATA_OFF, uint16_t);
CDPDK_CHECK_FIELD(refcnt, CDPDK_MBUF_REFCNT, uint16_t);
CDPDK_CHECK_FIELD(nb_segs, CDPDK_MBUF_NB_SEGS, uint16_t);
CDPDK_CHECK_FIELD(pkt_len, CDPDK_MBUF_PKT_LEN, uint32_t);
CDPDK_CHECK_FIELD(data_len, CDPDK_MBUF_DATA_LEN, uint16_t);
CDPDK_CHECK_FIELD(buf_len, CDPDK_MBUF_BUF_LEN, uint16_t);

uint16_t cdpdk_mbuf_refcnt_update(struct rte_mbuf *m, int16_t delta) { return rte_mbuf_refcnt_update(m, delta); }

