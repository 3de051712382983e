/*
 * server/listen.c — listening sockets; see listen.h.
 */
#include "server/listen.h"

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static uint16_t listen_port_of(const struct sockaddr_storage *ss)
{
    return ntohs(ss->ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)ss)->sin6_port
                                           : ((const struct sockaddr_in *)ss)->sin_port);
}

/* LISTEN_GROUP_FIRST's check (listen.h); sets the port in addr to the one it got */
static int listen_claim_port(struct sockaddr *addr, socklen_t addr_len)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int one = 1, fd = socket(addr->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 || bind(fd, addr, addr_len) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    close(fd);
    if (addr->sa_family == AF_INET6)
        ((struct sockaddr_in6 *)addr)->sin6_port = htons(listen_port_of(&ss));
    else
        ((struct sockaddr_in *)addr)->sin_port = htons(listen_port_of(&ss));
    return 0;
}

int listen_open(const config_addr_t *a, const char *flag, uint16_t port, listen_mode_t mode, int *fd_out, uint16_t *port_out,
                char *err, size_t errlen)
{
    struct addrinfo hints = {0}, *res = NULL;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    char portstr[8];
    int fd = -1, one = 1, gai;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(portstr, sizeof(portstr), "%u", (unsigned)port);
    if ((gai = getaddrinfo(a->host[0] != '\0' ? a->host : NULL, portstr, &hints, &res)) != 0) {
        snprintf(err, errlen, "%s %s:%u: %s", flag, a->host, (unsigned)port, gai_strerror(gai));
        return -1;
    }
    if ((mode == LISTEN_GROUP_FIRST && listen_claim_port(res->ai_addr, res->ai_addrlen) != 0) ||
        (fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        (mode != LISTEN_ALONE && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0) ||
        bind(fd, res->ai_addr, res->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) != 0) {
        int e = errno;
        snprintf(err, errlen, "%s %s:%u: %s%s", flag, a->host, (unsigned)port, strerror(e),
                 e == EADDRINUSE ? " (another edgecache on it?)" : "");
        if (fd != -1)
            close(fd);
        freeaddrinfo(res);
        return -1;
    }
    freeaddrinfo(res);
    *fd_out = fd;
    *port_out = listen_port_of(&ss);
    return 0;
}
