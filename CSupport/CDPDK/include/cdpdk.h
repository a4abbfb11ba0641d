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

/// Releases EAL resources (hugepage files among them). Wraps `rte_eal_cleanup`.
int cdpdk_eal_cleanup(void);

/// A readable message for a DPDK error number. Wraps `rte_strerror`.
const char *cdpdk_strerror(int error);

/// Number of usable Ethernet ports. Wraps `rte_eth_dev_count_avail`.
uint16_t cdpdk_eth_dev_count_avail(void);

/// The start of an mbuf's packet data. Wraps the macro `rte_pktmbuf_mtod`.
void *cdpdk_mbuf_data(struct rte_mbuf *m);
/// Length of the first segment's data. Reads `rte_mbuf.data_len`.
uint16_t cdpdk_mbuf_data_len(const struct rte_mbuf *m);

#ifdef __cplusplus
}
#endif
#endif
