// CDPDK — the DPDK shim. Its public header uses plain C types and opaque structs
// only, so Swift targets import it without DPDK's include paths or -march flags
// (SwiftPM would strip those, and Debian's libdpdk.pc is not parseable by it).
// Every function is prefixed `cdpdk_` and names the DPDK call it wraps.
#ifndef CDPDK_H
#define CDPDK_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct rte_mbuf;
struct rte_mempool;

/// DPDK's version string, e.g. "DPDK 22.11.11". Wraps `rte_version`.
const char *cdpdk_version(void);

/// Initialises the Environment Abstraction Layer. Returns the number of parsed
/// arguments or a negative value; `rte_errno` is returned through `error`.
/// Wraps `rte_eal_init`.
int cdpdk_eal_init(int argc, char **argv, int *error);

/// The EAL's runtime directory (/var/run/dpdk/PREFIX as root), where its
/// config, memory maps and multi-process socket live. Wraps `rte_eal_get_runtime_dir`.
const char *cdpdk_runtime_dir(void);

/// Gives the calling (non-EAL) thread an lcore id, so its mbuf allocations and
/// frees use a per-lcore mempool cache instead of the shared ring. Returns 0, or
/// a negative value with `rte_errno` in `error` (no free lcore: RTE_MAX_LCORE).
/// Wraps `rte_thread_register`.
int cdpdk_thread_register(int *error);

/// Releases the calling thread's lcore id, if it has one. Wraps `rte_thread_unregister`.
void cdpdk_thread_unregister(void);

/// The calling thread's lcore id, or UINT32_MAX (LCORE_ID_ANY) when it has none.
/// Wraps `rte_lcore_id`.
uint32_t cdpdk_lcore_id(void);

/// A readable message for a DPDK error number. Wraps `rte_strerror`.
const char *cdpdk_strerror(int error);

/// Number of usable Ethernet ports. Wraps `rte_eth_dev_count_avail`.
uint16_t cdpdk_eth_dev_count_avail(void);

// MARK: Memory pools

/// Creates a pool of `count` packet mbufs, each with `data_room` bytes of buffer
/// (headroom included) and a per-lcore cache of `cache_size`, on NUMA `socket_id`
/// (negative: any). Returns the pool, or NULL with `rte_errno` in `error`.
/// Wraps `rte_pktmbuf_pool_create`.
struct rte_mempool *cdpdk_pktmbuf_pool_create(const char *name, uint32_t count, uint32_t cache_size,
                                              uint16_t data_room, int socket_id, int *error);

/// Frees a pool whose mbufs have all come back. Accepts NULL. Wraps `rte_mempool_free`.
void cdpdk_mempool_free(struct rte_mempool *pool);

// MARK: Ports

/// The first valid port id at or after `from`, or -1 when there is none.
/// Wraps `rte_eth_find_next` (the step of `RTE_ETH_FOREACH_DEV`).
int cdpdk_port_next(uint16_t from);

/// The port id of the Ethernet device named `name` (a vdev name such as
/// "net_memif0"). Returns 0, or a negative errno (-ENODEV when there is none).
/// Wraps `rte_eth_dev_get_port_by_name`.
int cdpdk_port_by_name(const char *name, uint16_t *port_id);

/// Writes the device name of `port_id` (NUL-terminated) into `name`, which holds
/// `capacity` bytes. Returns 0 or a negative errno. Wraps `rte_eth_dev_get_name_by_port`.
int cdpdk_port_name(uint16_t port_id, char *name, uint32_t capacity);

/// The NUMA socket of a port, or -1 when unknown (virtual devices). Wraps `rte_eth_dev_socket_id`.
int cdpdk_port_socket_id(uint16_t port_id);

/// Configures `port_id` with `queues` RX and `queues` TX queues (pairs), sets each
/// up with `rx_descriptors`/`tx_descriptors` (adjusted to the device's limits)
/// receiving into `pool`, and starts the port. No offloads, no RSS. On failure
/// returns a negative errno and names the failing step in `failed_step`.
/// Wraps `rte_eth_dev_info_get`, `rte_eth_dev_configure`,
/// `rte_eth_dev_adjust_nb_rx_tx_desc`, `rte_eth_rx_queue_setup`,
/// `rte_eth_tx_queue_setup` and `rte_eth_dev_start`.
int cdpdk_port_setup(uint16_t port_id, uint16_t queues, uint16_t rx_descriptors, uint16_t tx_descriptors,
                     struct rte_mempool *pool, const char **failed_step);

/// Stops a started port. Returns 0 or a negative errno. Wraps `rte_eth_dev_stop`.
int cdpdk_port_stop(uint16_t port_id);

/// Starts a configured, stopped port again (a memif client connects anew).
/// Returns 0 or a negative errno. Wraps `rte_eth_dev_start`.
int cdpdk_port_start(uint16_t port_id);

/// Closes a stopped port, releasing its queues (and, for vdevs such as memif,
/// their sockets). Returns 0 or a negative errno. Wraps `rte_eth_dev_close`.
int cdpdk_port_close(uint16_t port_id);

/// Copies the port's MAC address (6 bytes) into `mac`. Returns 0 or a negative
/// errno. Wraps `rte_eth_macaddr_get`.
int cdpdk_port_mac(uint16_t port_id, uint8_t mac[6]);

/// 1 when the port's link is up, 0 when down, a negative errno on error.
/// Does not wait. Wraps `rte_eth_link_get_nowait`.
int cdpdk_port_link_up(uint16_t port_id);

/// A port's basic counters, copied out of `struct rte_eth_stats`.
struct cdpdk_port_counters {
    uint64_t ipackets, opackets, ibytes, obytes, imissed, ierrors, oerrors, rx_nombuf;
};
/// Reads a port's counters. Returns 0 or a negative errno. Wraps `rte_eth_stats_get`.
int cdpdk_port_stats(uint16_t port_id, struct cdpdk_port_counters *stats);

// MARK: Bursts

/// Receives up to `count` packets from RX queue `queue` into `mbufs`; returns how
/// many. The caller owns (and must free) each one. Wraps `rte_eth_rx_burst`.
uint16_t cdpdk_rx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count);

/// Queues up to `count` packets on TX queue `queue`; returns how many were taken.
/// The driver owns (and frees) those; the caller still owns `mbufs[result...]`.
/// Wraps `rte_eth_tx_burst`.
uint16_t cdpdk_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count);

// Both bursts mark the calling thread as inside one while DPDK runs: the
// shim's `munmap` (which stands in for libc's in the whole process) waits
// for every burst under way before it unmaps, so a memif link torn down on
// the EAL interrupt thread cannot unmap a ring under a burst (see cdpdk.c).

/// 1 when the shim's `munmap` is the one the process's libraries (the PMDs
/// included) call; 0 when it is not compiled in (sanitizer builds) or another
/// definition comes first.
int cdpdk_munmap_is_guarded(void);

/// For tests of the guard: marks the calling thread as inside a burst, as
/// `cdpdk_rx_burst` does while DPDK runs, until `cdpdk_burst_hold_end` (same thread).
void cdpdk_burst_hold_begin(void);
void cdpdk_burst_hold_end(void);

// MARK: Mbufs

/// A fresh single-segment mbuf with empty data, or NULL when the pool is empty.
/// Wraps `rte_pktmbuf_alloc`.
struct rte_mbuf *cdpdk_pktmbuf_alloc(struct rte_mempool *pool);

/// Returns an mbuf (all its segments) to its pool. Accepts NULL. Wraps `rte_pktmbuf_free`.
void cdpdk_pktmbuf_free(struct rte_mbuf *m);

/// Returns `count` mbufs to their pools; NULL entries are skipped.
/// Wraps `rte_pktmbuf_free_bulk`.
void cdpdk_pktmbuf_free_bulk(struct rte_mbuf **mbufs, uint32_t count);

// The mbuf accessors below run several times per frame, so they are inline
// here rather than calls into the shim (each a call, and the caller's
// registers saved around it, for one load or two). They read and write the fields of
// DPDK 22.11's `struct rte_mbuf` at these offsets, which this header cannot
// take from <rte_mbuf.h> (see the top); cdpdk.c, compiled against the real
// struct, checks every one with a static assertion, so a DPDK whose layout
// differs fails to build instead of misreading mbufs.
#define CDPDK_MBUF_BUF_ADDR 0   // void *buf_addr
#define CDPDK_MBUF_DATA_OFF 16  // uint16_t data_off
#define CDPDK_MBUF_REFCNT 18    // uint16_t refcnt
#define CDPDK_MBUF_NB_SEGS 20   // uint16_t nb_segs
#define CDPDK_MBUF_PKT_LEN 36   // uint32_t pkt_len
#define CDPDK_MBUF_DATA_LEN 40  // uint16_t data_len
#define CDPDK_MBUF_BUF_LEN 54   // uint16_t buf_len

#define CDPDK_MBUF_FIELD(m, offset, type) (*(type *)((char *)(m) + (offset)))
#define CDPDK_MBUF_CFIELD(m, offset, type) (*(const type *)((const char *)(m) + (offset)))

/// The start of an mbuf's packet data: `rte_pktmbuf_mtod`, `buf_addr + data_off`.
static inline void *cdpdk_mbuf_data(struct rte_mbuf *m) {
    void *buf_addr = CDPDK_MBUF_FIELD(m, CDPDK_MBUF_BUF_ADDR, void *);  // read as what it is: a void *
    return (char *)buf_addr + CDPDK_MBUF_CFIELD(m, CDPDK_MBUF_DATA_OFF, uint16_t);
}
/// Length of the first segment's data. Reads `rte_mbuf.data_len`.
static inline uint16_t cdpdk_mbuf_data_len(const struct rte_mbuf *m) {
    return CDPDK_MBUF_CFIELD(m, CDPDK_MBUF_DATA_LEN, uint16_t);
}
/// Length of the whole packet, all segments. Reads `rte_mbuf.pkt_len`.
static inline uint32_t cdpdk_mbuf_pkt_len(const struct rte_mbuf *m) {
    return CDPDK_MBUF_CFIELD(m, CDPDK_MBUF_PKT_LEN, uint32_t);
}
/// 1 when the packet is one segment, so `data`/`data_len` cover all of it:
/// `rte_pktmbuf_is_contiguous`, `nb_segs == 1`.
static inline int cdpdk_mbuf_is_contiguous(const struct rte_mbuf *m) {
    return CDPDK_MBUF_CFIELD(m, CDPDK_MBUF_NB_SEGS, uint16_t) == 1;
}
/// The most data a single-segment mbuf can hold from its data start:
/// `data_len` plus `rte_pktmbuf_tailroom`, that is `buf_len - data_off`.
static inline uint16_t cdpdk_mbuf_capacity(const struct rte_mbuf *m) {
    return (uint16_t)(CDPDK_MBUF_CFIELD(m, CDPDK_MBUF_BUF_LEN, uint16_t) - CDPDK_MBUF_CFIELD(m, CDPDK_MBUF_DATA_OFF, uint16_t));
}
/// Sets a single-segment mbuf's `data_len` and `pkt_len` to `length`. Returns 0,
/// or -1 (changing nothing) when the mbuf is segmented or `length` exceeds
/// `cdpdk_mbuf_capacity`. The bounds-checked counterpart of `rte_pktmbuf_append`.
static inline int cdpdk_mbuf_set_len(struct rte_mbuf *m, uint16_t length) {
    if (!cdpdk_mbuf_is_contiguous(m) || length > cdpdk_mbuf_capacity(m)) return -1;
    CDPDK_MBUF_FIELD(m, CDPDK_MBUF_DATA_LEN, uint16_t) = length;
    CDPDK_MBUF_FIELD(m, CDPDK_MBUF_PKT_LEN, uint32_t) = length;
    return 0;
}
/// An mbuf's reference count: `rte_mbuf_refcnt_read`, a relaxed atomic load.
static inline uint16_t cdpdk_mbuf_refcnt_read(const struct rte_mbuf *m) {
    return __atomic_load_n((const uint16_t *)((const char *)m + CDPDK_MBUF_REFCNT), __ATOMIC_RELAXED);
}
/// Adds `delta` to an mbuf's reference count and returns the new count: a frame
/// kept for retransmission holds one reference, and each `tx_burst` of it
/// hands the driver another (the driver drops it once sent). Wraps `rte_mbuf_refcnt_update`.
uint16_t cdpdk_mbuf_refcnt_update(struct rte_mbuf *m, int16_t delta);

#ifdef __cplusplus
}
#endif
#endif
