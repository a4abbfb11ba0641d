#include "cdpdk.h"

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_lcore.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
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

// MARK: Bursts

uint16_t cdpdk_rx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count) {
    return rte_eth_rx_burst(port_id, queue, mbufs, count);
}

uint16_t cdpdk_tx_burst(uint16_t port_id, uint16_t queue, struct rte_mbuf **mbufs, uint16_t count) {
    return rte_eth_tx_burst(port_id, queue, mbufs, count);
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

