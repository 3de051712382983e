/*
 * tests/unit/unit_backend.h — what the backend module's suites (test_backend_pick.c,
 * test_backend_config.c, test_backend_module.c) share: the hash of the i-th test object's
 * key, and a valid backend configuration of nb backends (b1.., 127.0.0.1:9000..) and nh
 * health checks (hc1..) with every field at its default.
 * Header-only: static inline functions, one copy per suite.
 */
#ifndef EDGECACHE_UNIT_BACKEND_H
#define EDGECACHE_UNIT_BACKEND_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "server/backend.h"
#include "server/backend_int.h"

static inline void key_hash(unsigned i, uint8_t out[CACHE_HASH_LEN])
{
    char key[64];
    int n = snprintf(key, sizeof(key), "www.example.com/object/%u", i);
    obj_key_hash(key, (size_t)n, out);
}

static inline backend_config_t *config_with(size_t nb, size_t nh)
{
    backend_config_t *c = calloc(1, sizeof(*c));
    for (size_t i = 0; i < nh; ++i) {
        backend_healthcheck_defaults(&c->healthchecks[i]);
        snprintf(c->healthchecks[i].name, sizeof(c->healthchecks[i].name), "hc%zu", i + 1);
    }
    c->num_healthchecks = nh;
    for (size_t i = 0; i < nb; ++i) {
        backend_conf_defaults(&c->backends[i]);
        snprintf(c->backends[i].name, sizeof(c->backends[i].name), "b%zu", i + 1);
        strcpy(c->backends[i].address, "127.0.0.1");
        c->backends[i].port = (uint16_t)(9000 + i);
    }
    c->num_backends = nb;
    return c;
}

#endif
