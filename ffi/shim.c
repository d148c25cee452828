/* The one value bindgen cannot reach: rte_errno is a per-lcore TLS macro. */
#include <rte_errno.h>

int fsw_rte_errno(void) { return rte_errno; }
