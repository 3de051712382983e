/*
 * admin-api/token_cli.c — `edgecache token create|list|revoke`: manage API tokens in a
 * data directory, also while a server is running on it.
 *
 *   edgecache token create [--data-dir DIR] --scope SCOPE [--scope ...] [--name NAME]
 *   edgecache token list   [--data-dir DIR] [--json]
 *   edgecache token revoke [--data-dir DIR] NAME_OR_ID
 *
 * (--config FILE reads data_dir from a config file.) It opens the store like the server
 * does: LMDB is multi-process, writes are serialised by LMDB's own lock, and the server
 * reads `tokens` afresh on every request, so a new token works and a revoked one fails
 * from the very next request. The token itself is printed once, on stdout, alone on its
 * line; only its hash is stored. Runs on the main thread of a short-lived process.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sodium.h>
#include "admin-api/admin_int.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: edgecache token create [--data-dir DIR] --scope SCOPE [--scope SCOPE ...] [--name NAME]\n"
               "       edgecache token list   [--data-dir DIR] [--json]\n"
               "       edgecache token revoke [--data-dir DIR] NAME_OR_ID\n"
               "scopes: purge_select (URL and key purges), purge_all, global (everything), global:read (read-only);\n"
               "repeat --scope or separate them with commas. --config FILE takes data_dir from a config file.\n");
}

typedef struct cli_opts {
    config_t cfg;
    unsigned scopes;
    int have_scope;
    const char *name;
    const char *target; /* revoke: NAME_OR_ID */
    int json;
} cli_opts_t;

/* "--opt VALUE" or "--opt=VALUE"; returns the value or NULL (and advances *i) */
static const char *opt_value(int argc, char **argv, int *i, const char *opt)
{
    size_t n = strlen(opt);
    if (strncmp(argv[*i], opt, n) != 0)
        return NULL;
    if (argv[*i][n] == '=')
        return argv[*i] + n + 1;
    if (argv[*i][n] != '\0')
        return NULL;
    if (*i + 1 >= argc) {
        fprintf(stderr, "edgecache token: %s needs a value\n", opt);
        exit(2);
    }
    return argv[++*i];
}

static int parse_opts(int argc, char **argv, const char *cmd, cli_opts_t *o)
{
    char err[256];
    const char *v;

    memset(o, 0, sizeof(*o));
    config_defaults(&o->cfg);
    for (int i = 2; i < argc; i++) {
        if ((v = opt_value(argc, argv, &i, "--data-dir")) != NULL) {
            if (strlen(v) >= sizeof(o->cfg.data_dir)) {
                fprintf(stderr, "edgecache token: --data-dir: path too long\n");
                return -1;
            }
            snprintf(o->cfg.data_dir, sizeof(o->cfg.data_dir), "%s", v);
        } else if ((v = opt_value(argc, argv, &i, "--config")) != NULL) {
            if (config_load_file(&o->cfg, v, err, sizeof(err)) != 0) {
                fprintf(stderr, "edgecache token: %s\n", err);
                return -1;
            }
        } else if (strcmp(cmd, "create") == 0 && (v = opt_value(argc, argv, &i, "--scope")) != NULL) {
            if (admin_scopes_parse(v, strlen(v), &o->scopes, err, sizeof(err)) != 0) {
                fprintf(stderr, "edgecache token: --scope: %s\n", err);
                return -1;
            }
            o->have_scope = 1;
        } else if (strcmp(cmd, "create") == 0 && (v = opt_value(argc, argv, &i, "--name")) != NULL) {
            if (admin_token_name_validate(v, strlen(v)) != 0) {
                fprintf(stderr, "edgecache token: --name: 1..%d printable characters\n", ADMIN_MAX_NAME_LEN);
                return -1;
            }
            o->name = v;
        } else if (strcmp(cmd, "list") == 0 && strcmp(argv[i], "--json") == 0) {
            o->json = 1;
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            exit(0);
        } else if (strcmp(cmd, "revoke") == 0 && argv[i][0] != '-' && o->target == NULL) {
            o->target = argv[i];
        } else {
            fprintf(stderr, "edgecache token %s: unexpected argument '%s'\n", cmd, argv[i]);
            return -1;
        }
    }
    return 0;
}

static int open_store(const cli_opts_t *o, int read_only, store_t **store)
{
    store_options_t so;
    char err[512];

    memset(&so, 0, sizeof(so));
    so.dir = o->cfg.data_dir;
    so.map_size = (size_t)o->cfg.disk_size;
    so.read_only = read_only;
    if (store_open(store, &so, err, sizeof(err)) != 0) {
        fprintf(stderr, "edgecache token: cannot open the store in %s: %s\n", o->cfg.data_dir, err);
        return -1;
    }
    return 0;
}

static int cmd_create(const cli_opts_t *o)
{
    admin_token_rec_t rec;
    char token[ADMIN_TOKEN_STR_CAP], hash[ADMIN_TOKEN_HASH_HEX];
    store_t *store = NULL;
    char *val;
    int ret;

    if (!o->have_scope) {
        fprintf(stderr, "edgecache token create: --scope is required (purge_select, purge_all, global, global:read)\n");
        return 2;
    }
    if (open_store(o, 0, &store) != 0)
        return 1;
    memset(&rec, 0, sizeof(rec));
    admin_token_generate(token, rec.id);
    snprintf(rec.name, sizeof(rec.name), "%s", o->name != NULL ? o->name : "cli");
    rec.scopes = o->scopes;
    rec.created = (int64_t)time(NULL);
    admin_token_hash_hex(token, strlen(token), hash);
    val = admin_token_rec_dump(&rec);
    ret = store_kv_put_sync(store, "tokens", hash, val, strlen(val));
    free(val);
    store_close(&store);
    if (ret != 0) {
        sodium_memzero(token, sizeof(token));
        fprintf(stderr, "edgecache token create: could not store the token (error %d)\n", ret);
        return 1;
    }
    json_t *scopes = admin_scopes_to_json(rec.scopes);
    char *sc = json_dumps(scopes, JSON_COMPACT);
    json_decref(scopes);
    printf("%s\n", token);
    fflush(stdout);
    fprintf(stderr, "created token id %s, name '%s', scopes %s; the token is shown only this once\n", rec.id, rec.name,
            sc != NULL ? sc : "?");
    free(sc);
    sodium_memzero(token, sizeof(token));
    return 0;
}

typedef struct list_ctx {
    json_t *arr;
} list_ctx_t;

static int list_one(void *arg, const char *key, size_t key_len, const void *val, size_t val_len)
{
    list_ctx_t *l = arg;
    admin_token_rec_t rec;
    (void)key, (void)key_len;
    if (admin_token_rec_parse(val, val_len, &rec) == 0)
        json_array_append_new(l->arr, admin_token_rec_to_json(&rec));
    return 0;
}

static int cmd_list(const cli_opts_t *o)
{
    store_t *store = NULL;
    list_ctx_t l = {json_array()};
    size_t i;
    json_t *t;

    if (l.arr == NULL)
        abort();
    if (open_store(o, 1, &store) != 0) {
        json_decref(l.arr);
        return 1;
    }
    store_kv_foreach(store, "tokens", list_one, &l);
    store_close(&store);
    if (o->json) {
        char *s = json_dumps(l.arr, JSON_INDENT(2));
        printf("%s\n", s != NULL ? s : "[]");
        free(s);
    } else {
        printf("%-16s  %-24s  %-40s  %s\n", "ID", "NAME", "SCOPES", "CREATED");
        json_array_foreach (l.arr, i, t) {
            char scopes[128] = "";
            size_t k;
            json_t *sc;
            json_array_foreach (json_object_get(t, "scopes"), k, sc) {
                if (scopes[0] != '\0')
                    strncat(scopes, ",", sizeof(scopes) - strlen(scopes) - 1);
                strncat(scopes, json_string_value(sc), sizeof(scopes) - strlen(scopes) - 1);
            }
            printf("%-16s  %-24s  %-40s  %s\n", json_string_value(json_object_get(t, "id")),
                   json_string_value(json_object_get(t, "name")), scopes, json_string_value(json_object_get(t, "created_at")));
        }
    }
    json_decref(l.arr);
    return 0;
}

static int cmd_revoke(const cli_opts_t *o)
{
    store_t *store = NULL;
    char hash[ADMIN_TOKEN_HASH_HEX];
    admin_token_rec_t rec;
    int ret;

    if (o->target == NULL) {
        fprintf(stderr, "edgecache token revoke: which token? give its name or id\n");
        return 2;
    }
    if (open_store(o, 0, &store) != 0)
        return 1;
    ret = admin_token_find(store, o->target, hash, &rec, 0);
    if (ret == ADMIN_EAMBIGUOUS) {
        fprintf(stderr, "edgecache token revoke: several tokens are named '%s'; revoke by id (see `edgecache token list`)\n",
                o->target);
        store_close(&store);
        return 1;
    }
    if (ret != 0) {
        fprintf(stderr, "edgecache token revoke: no token with id or name '%s'\n", o->target);
        store_close(&store);
        return 1;
    }
    ret = store_kv_put_sync(store, "tokens", hash, NULL, 0);
    store_close(&store);
    if (ret != 0 && ret != STORE_ENOTFOUND) {
        fprintf(stderr, "edgecache token revoke: could not delete the token (error %d)\n", ret);
        return 1;
    }
    printf("revoked token id %s, name '%s'\n", rec.id, rec.name);
    return 0;
}

int admin_token_cli(int argc, char **argv)
{
    cli_opts_t o;
    const char *cmd;

    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "create") != 0 && strcmp(cmd, "list") != 0 && strcmp(cmd, "revoke") != 0) {
        fprintf(stderr, "edgecache token: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "edgecache token: libsodium failed to initialise\n");
        return 1;
    }
    if (parse_opts(argc, argv, cmd, &o) != 0)
        return 2;
    if (strcmp(cmd, "create") == 0)
        return cmd_create(&o);
    if (strcmp(cmd, "list") == 0)
        return cmd_list(&o);
    return cmd_revoke(&o);
}
