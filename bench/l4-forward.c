// The least work any reverse proxy can do: a byte forwarder with no HTTP parsing. Each client connection
// gets its own upstream connection; one read and one write per message each way, on epoll, with one
// process per core like nginx's workers. bench/ceiling.sh uses it to measure the ceiling for a proxy on
// this machine. 127.0.0.1 only.
//
//   cc -O2 -o l4-forward bench/l4-forward.c && ./l4-forward LISTEN_PORT UPSTREAM_PORT PROCESSES
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_FD 65536
static int peer[MAX_FD];

static int tcp(int port, int listening) {
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (listening) {
        setsockopt(s, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
        if (bind(s, (struct sockaddr *)&a, sizeof a) || listen(s, 1024)) { perror("listen"); exit(1); }
    } else if (connect(s, (struct sockaddr *)&a, sizeof a) && errno != EINPROGRESS) {
        close(s);
        return -1;
    }
    return s;
}

int main(int argc, char **argv) {
    if (argc < 3) { fprintf(stderr, "usage: %s LISTEN_PORT UPSTREAM_PORT [PROCESSES]\n", argv[0]); return 2; }
    int listen_port = atoi(argv[1]), upstream_port = atoi(argv[2]), processes = argc > 3 ? atoi(argv[3]) : 1;
    for (int i = 1; i < processes; i++) if (fork() == 0) break;
    int l = tcp(listen_port, 1), ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = l}, events[256];
    epoll_ctl(ep, EPOLL_CTL_ADD, l, &ev);
    static char buf[65536];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int i = 0; i < n; i++) {
            int fd = events[i].data.fd;
            if (fd == l) {
                int c;
                while ((c = accept4(l, 0, 0, SOCK_NONBLOCK)) >= 0) {
                    int one = 1, u = tcp(upstream_port, 0);
                    if (u < 0 || c >= MAX_FD || u >= MAX_FD) { close(c); if (u >= 0) close(u); continue; }
                    setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    peer[c] = u, peer[u] = c;
                    struct epoll_event ec = {.events = EPOLLIN, .data.fd = c}, eu = {.events = EPOLLIN, .data.fd = u};
                    epoll_ctl(ep, EPOLL_CTL_ADD, c, &ec), epoll_ctl(ep, EPOLL_CTL_ADD, u, &eu);
                }
                continue;
            }
            ssize_t r = read(fd, buf, sizeof buf);
            if (r > 0) {
                // Small messages on loopback: the socket buffer takes them whole; a short write ends the pair.
                if (write(peer[fd], buf, r) != r) r = 0;
            }
            if (r == 0 || (r < 0 && errno != EAGAIN)) { close(peer[fd]); close(fd); }
        }
    }
}
