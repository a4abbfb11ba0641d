#include "cdpdk.h"

#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_version.h>

const char *cdpdk_version(void) { return rte_version(); }

int cdpdk_eal_init(int argc, char **argv, int *error) {
    int r = rte_eal_init(argc, argv);
    if (error) *error = r < 0 ? rte_errno : 0;
    return r;
}

int cdpdk_eal_cleanup(void) { return rte_eal_cleanup(); }

const char *cdpdk_strerror(int error) { return rte_strerror(error); }

uint16_t cdpdk_eth_dev_count_avail(void) { return rte_eth_dev_count_avail(); }

void *cdpdk_mbuf_data(struct rte_mbuf *m) { return rte_pktmbuf_mtod(m, void *); }

uint16_t cdpdk_mbuf_data_len(const struct rte_mbuf *m) { return m->data_len; }
