#include "crdma.h"

#include <errno.h>
#include <infiniband/verbs.h>
#include <rdma/rdma_cma.h>

int crdma_device_list(struct ibv_device ***list) {
    int count = 0;
    errno = 0;
    struct ibv_device **devices = ibv_get_device_list(&count);
    if (devices == NULL) {
        *list = NULL;
        return -(errno ? errno : ENODEV);
    }
    *list = devices;
    return count;
}

void crdma_free_device_list(struct ibv_device **list) {
    if (list) ibv_free_device_list(list);
}

const char *crdma_device_name(struct ibv_device *device) { return ibv_get_device_name(device); }

struct ibv_context *crdma_open_device(struct ibv_device *device) { return ibv_open_device(device); }

int crdma_close_device(struct ibv_context *context) { return ibv_close_device(context); }

int crdma_port_count(struct ibv_context *context) {
    struct ibv_device_attr attr;
    int r = ibv_query_device(context, &attr);
    if (r != 0) return -r;
    return attr.phys_port_cnt;
}

int crdma_probe_cm(void) {
    errno = 0;
    struct rdma_event_channel *channel = rdma_create_event_channel();
    if (channel == NULL) return errno ? errno : ENODEV;
    rdma_destroy_event_channel(channel);
    return 0;
}
