// CRDMA — the verbs / rdma-cm shim. Opaque types only in this header; the .c file
// includes <infiniband/verbs.h> and <rdma/rdma_cma.h>. Prefix `crdma_`.
#ifndef CRDMA_H
#define CRDMA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct ibv_device;
struct ibv_context;

/// Lists RDMA devices. Returns the count (>= 0) or -errno when the list cannot be
/// read (ENOSYS: the kernel has no InfiniBand/RDMA support). The list is freed
/// with `crdma_free_device_list`. Wraps `ibv_get_device_list`.
int crdma_device_list(struct ibv_device ***list);
void crdma_free_device_list(struct ibv_device **list);

/// The kernel name of a device ("mlx5_0", "rxe0"). Wraps `ibv_get_device_name`.
const char *crdma_device_name(struct ibv_device *device);

/// Opens a device context, or NULL with errno set. Wraps `ibv_open_device`.
struct ibv_context *crdma_open_device(struct ibv_device *device);
/// Closes a device context. Wraps `ibv_close_device`.
int crdma_close_device(struct ibv_context *context);

/// Number of physical ports of an open device, or -errno. Wraps `ibv_query_device`.
int crdma_port_count(struct ibv_context *context);

/// Whether librdmacm can create an event channel (it needs the rdma_cm kernel
/// module). Returns 0 or an errno value. Wraps `rdma_create_event_channel`.
int crdma_probe_cm(void);

#ifdef __cplusplus
}
#endif
#endif
