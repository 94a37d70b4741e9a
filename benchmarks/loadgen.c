/*
 * loadgen: load generator for a line-protocol TCP server on 127.0.0.1.
 *
 * Each request is one line ending in "\n"; each reply is one line ending in
 * "\r\n", delivered in request order.  Requests and expected replies come from
 * a file of `REQUEST<TAB>EXPECTED` lines, taken in one global cyclic order.
 * Prints a single JSON summary line on stdout.  With --once, every request of
 * the file is sent exactly once, and it stops when all are answered (or
 * when --duration runs out, which the summary shows as fewer replies).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define RBUF_SIZE (64 * 1024)
#define BURST_TIMEOUT_NS (60ULL * 1000000000ULL)

enum mode { M_KEEPALIVE, M_PERCONN, M_BURST };
static const char *mode_names[] = { "keepalive", "per-connection", "burst" };

/* A request occupies data[off, off+rlen) including its '\n'; the expected
 * reply follows immediately at data[off+rlen, off+rlen+elen). */
typedef struct { size_t off; uint32_t rlen, elen; } entry;

enum cstate { C_DONE, C_RETRY, C_CONNECTING, C_OPEN };

typedef struct {
    int fd;
    enum cstate state;
    bool want_out;              /* EPOLLOUT currently in the interest set */
    uint64_t t_connect;
    char *rbuf;
    size_t rlen;
    char *wbuf;
    size_t wlen, woff, wcap;
    uint32_t *q_idx;            /* FIFO ring of outstanding requests */
    uint64_t *q_t;
    int q_head, q_len;
} conn;

static enum mode mode = M_KEEPALIVE;
static int nconns = 50, depth = 1, ep = -1;
static struct sockaddr_in addr;
static char *data;
static entry *reqs;
static size_t nreq, next_req, sent;
static bool once;
static uint64_t t_measure, t_end, t_last_reply;
static unsigned long completed, all_replies, wrong, closed_count, connect_errors;
static conn *conns;
static int nretry, ndone;
static uint64_t *lat;
static size_t nlat, cap_lat;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void *xrealloc(void *p, size_t n)
{
    p = realloc(p, n);
    if (!p) { perror("realloc"); exit(1); }
    return p;
}

static void usage(void)
{
    fprintf(stderr,
        "usage: loadgen --port P --requests FILE [options]\n"
        "  --mode M        keepalive (default) | per-connection | burst\n"
        "  --conns N       concurrent connections (default 50)\n"
        "  --depth D       keepalive pipelining depth per connection (default 1)\n"
        "  --duration S    measured seconds, keepalive/per-connection (default 3)\n"
        "  --warmup S      seconds of load before measuring (default 0.5)\n"
        "  --once          keepalive: send every request of FILE once, stop when\n"
        "                  all are answered; --duration is then a time limit\n"
        "FILE holds lines of REQUEST<TAB>EXPECTED (reply without CRLF).\n");
    exit(2);
}

static void load_requests(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) { perror(path); exit(1); }
    size_t cap = 1 << 20, len = 0, n;
    data = xrealloc(NULL, cap);
    while ((n = fread(data + len, 1, cap - len, f)) > 0) {
        len += n;
        if (len == cap) data = xrealloc(data, cap *= 2);
    }
    if (ferror(f)) { perror(path); exit(1); }
    fclose(f);

    size_t cap_req = 0, lineno = 0;
    for (size_t pos = 0; pos < len; ) {
        char *nl = memchr(data + pos, '\n', len - pos);
        size_t end = nl ? (size_t)(nl - data) : len, next = end + 1;
        lineno++;
        if (end > pos && data[end - 1] == '\r') end--;
        if (end > pos) {
            char *tab = memchr(data + pos, '\t', end - pos);
            if (!tab) {
                fprintf(stderr, "%s:%zu: missing TAB separator\n", path, lineno);
                exit(1);
            }
            *tab = '\n';
            if (nreq == cap_req)
                reqs = xrealloc(reqs, (cap_req = cap_req ? cap_req * 2 : 1024) * sizeof *reqs);
            size_t t = (size_t)(tab - data);
            reqs[nreq++] = (entry){ pos, (uint32_t)(t - pos + 1), (uint32_t)(end - t - 1) };
        }
        pos = next;
    }
    if (nreq == 0) { fprintf(stderr, "%s: no requests\n", path); exit(1); }
}

static void record_latency(uint64_t ns)
{
    if (nlat == cap_lat)
        lat = xrealloc(lat, (cap_lat = cap_lat ? cap_lat * 2 : 1 << 16) * sizeof *lat);
    lat[nlat++] = ns;
}


static void epoll_set(conn *c, int op, uint32_t events)
{
    struct epoll_event ev = { .events = events, .data.u32 = (uint32_t)(c - conns) };
    if (epoll_ctl(ep, op, c->fd, &ev) < 0) { perror("epoll_ctl"); exit(1); }
}

static void set_out(conn *c, bool want)
{
    if (want == c->want_out) return;
    c->want_out = want;
    epoll_set(c, EPOLL_CTL_MOD, EPOLLIN | (want ? EPOLLOUT : 0));
}

/* Closes the socket and decides what the slot does next: burst clients finish,
 * other modes reconnect on the next loop iteration when `retry` is set. */
static void conn_drop(conn *c, unsigned long *counter, bool retry)
{
    if (counter) ++*counter;
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
    if (mode == M_BURST) {
        c->state = C_DONE;
        ndone++;
    } else if (retry) {
        c->state = C_RETRY;
        nretry++;
    } else {
        c->state = C_DONE;
    }
}

static void conn_open(conn *c)
{
    c->rlen = c->wlen = c->woff = 0;
    c->q_head = c->q_len = 0;
    c->want_out = true;
    c->t_connect = now_ns();
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        conn_drop(c, &connect_errors, mode == M_PERCONN);
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(c->fd, (struct sockaddr *)&addr, sizeof addr) < 0 && errno != EINPROGRESS) {
        conn_drop(c, &connect_errors, mode == M_PERCONN);
        return;
    }
    c->state = C_CONNECTING;
    epoll_set(c, EPOLL_CTL_ADD, EPOLLIN | EPOLLOUT);
}

/* Writes as much pending output as the socket accepts; returns false if the
 * connection was dropped. */
static bool conn_flush(conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = send(c->fd, c->wbuf + c->woff, c->wlen - c->woff, MSG_NOSIGNAL);
        if (n > 0) {
            c->woff += (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            break;
        } else {
            conn_drop(c, &closed_count, true);
            return false;
        }
    }
    if (c->woff == c->wlen) c->woff = c->wlen = 0;
    set_out(c, c->wlen > 0);
    return true;
}

/* Queues `n` requests from the global cyclic order with send time `t` and
 * writes them in one batch. */
static bool send_requests(conn *c, int n, uint64_t t)
{
    if (c->woff > 0) {
        memmove(c->wbuf, c->wbuf + c->woff, c->wlen - c->woff);
        c->wlen -= c->woff;
        c->woff = 0;
    }
    if (once && (size_t)n > nreq - sent) n = (int)(nreq - sent);
    sent += (size_t)n;
    for (int i = 0; i < n; i++) {
        uint32_t idx = (uint32_t)next_req;
        next_req = (next_req + 1) % nreq;
        const entry *e = &reqs[idx];
        if (c->wlen + e->rlen > c->wcap) {
            while (c->wlen + e->rlen > c->wcap) c->wcap = c->wcap ? c->wcap * 2 : 4096;
            c->wbuf = xrealloc(c->wbuf, c->wcap);
        }
        memcpy(c->wbuf + c->wlen, data + e->off, e->rlen);
        c->wlen += e->rlen;
        int slot = (c->q_head + c->q_len) % depth;
        c->q_idx[slot] = idx;
        c->q_t[slot] = t;
        c->q_len++;
    }
    return conn_flush(c);
}

/* Matches one reply line (without its line ending) against the oldest
 * outstanding request. */
static void handle_reply(conn *c, const char *line, size_t len, bool crlf, uint64_t t)
{
    if (c->q_len == 0) { wrong++; return; }
    uint32_t idx = c->q_idx[c->q_head];
    uint64_t t_send = c->q_t[c->q_head];
    c->q_head = (c->q_head + 1) % depth;
    c->q_len--;
    const entry *e = &reqs[idx];
    all_replies++;
    if (!crlf || len != e->elen || memcmp(line, data + e->off + e->rlen, len) != 0)
        wrong++;
    if (mode == M_BURST || (t >= t_measure && t < t_end)) {
        completed++;
        record_latency(t - t_send);
        t_last_reply = t;
    }
}

/* Performs one read and consumes every complete line in the buffer.  Returns
 * false if the connection was closed or finished. */
static bool conn_read(conn *c)
{
    ssize_t n = read(c->fd, c->rbuf + c->rlen, RBUF_SIZE - c->rlen);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return true;
    if (n <= 0) {
        conn_drop(c, &closed_count, true);
        return false;
    }
    uint64_t t = now_ns();
    c->rlen += (size_t)n;

    size_t pos = 0;
    int replies = 0;
    char *nl;
    while ((nl = memchr(c->rbuf + pos, '\n', c->rlen - pos)) != NULL) {
        size_t len = (size_t)(nl - (c->rbuf + pos));
        bool crlf = len > 0 && c->rbuf[pos + len - 1] == '\r';
        handle_reply(c, c->rbuf + pos, crlf ? len - 1 : len, crlf, t);
        pos += len + 1;
        replies++;
        if (mode != M_KEEPALIVE) {
            /* One request per connection: close and, unless bursting, start over. */
            conn_drop(c, NULL, false);
            if (mode == M_PERCONN) conn_open(c);
            return false;
        }
    }
    if (pos > 0) {
        memmove(c->rbuf, c->rbuf + pos, c->rlen - pos);
        c->rlen -= pos;
    } else if (c->rlen == RBUF_SIZE) {
        /* A reply longer than the read buffer cannot be matched. */
        conn_drop(c, &wrong, true);
        return false;
    }
    if (replies > 0 && t < t_end) return send_requests(c, replies, t);
    return true;
}

static void on_event(conn *c, uint32_t events)
{
    if (c->state == C_CONNECTING) {
        int err = 0;
        socklen_t l = sizeof err;
        if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &l) < 0) err = errno;
        if (err) {
            conn_drop(c, &connect_errors, mode == M_PERCONN);
            return;
        }
        c->state = C_OPEN;
        /* Outside keepalive mode latency runs from the connect() call. */
        uint64_t t = mode == M_KEEPALIVE ? now_ns() : c->t_connect;
        if (!send_requests(c, mode == M_KEEPALIVE ? depth : 1, t)) return;
    }
    if (c->state != C_OPEN) return;
    if ((events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && !conn_read(c)) return;
    if ((events & EPOLLOUT) && c->wlen > 0) conn_flush(c);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile in microseconds. */
static double percentile(double p)
{
    if (nlat == 0) return 0.0;
    double exact = p * (double)nlat;
    size_t rank = (size_t)exact;
    if ((double)rank < exact || rank < 1) rank++;
    if (rank > nlat) rank = nlat;
    return (double)lat[rank - 1] / 1000.0;
}

static double parse_num(const char *s, double min)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min) || v > 1e12) usage();
    return v;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "port", required_argument, NULL, 'p' },
        { "requests", required_argument, NULL, 'r' },
        { "mode", required_argument, NULL, 'm' },
        { "conns", required_argument, NULL, 'c' },
        { "depth", required_argument, NULL, 'd' },
        { "duration", required_argument, NULL, 't' },
        { "warmup", required_argument, NULL, 'w' },
        { "once", no_argument, NULL, 'o' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    int port = 0, opt;
    const char *path = NULL;
    double duration = 3.0, warmup = 0.5;

    while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (opt) {
        case 'p': port = (int)parse_num(optarg, 1); if (port > 65535) usage(); break;
        case 'r': path = optarg; break;
        case 'm':
            if (!strcmp(optarg, "keepalive")) mode = M_KEEPALIVE;
            else if (!strcmp(optarg, "per-connection")) mode = M_PERCONN;
            else if (!strcmp(optarg, "burst")) mode = M_BURST;
            else usage();
            break;
        case 'c': nconns = (int)parse_num(optarg, 1); break;
        case 'd': depth = (int)parse_num(optarg, 1); break;
        case 't': duration = parse_num(optarg, 0); if (duration <= 0) usage(); break;
        case 'w': warmup = parse_num(optarg, 0); break;
        case 'o': once = true; break;
        default: usage();
        }
    }
    if (optind != argc || port == 0 || !path || nconns > 1000000 || depth > 1000000) usage();
    if (mode != M_KEEPALIVE) depth = 1;
    if (once && mode != M_KEEPALIVE) usage();

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    load_requests(path);

    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0) { perror("epoll_create1"); return 1; }
    conns = calloc((size_t)nconns, sizeof *conns);
    if (!conns) { perror("calloc"); return 1; }
    for (int i = 0; i < nconns; i++) {
        conn *c = &conns[i];
        c->fd = -1;
        c->rbuf = xrealloc(NULL, RBUF_SIZE);
        c->q_idx = xrealloc(NULL, (size_t)depth * sizeof *c->q_idx);
        c->q_t = xrealloc(NULL, (size_t)depth * sizeof *c->q_t);
    }

    uint64_t t_start = now_ns();
    if (mode == M_BURST) {
        t_measure = t_start;
        t_end = t_start + BURST_TIMEOUT_NS;
    } else {
        t_measure = t_start + (uint64_t)(warmup * 1e9);
        t_end = t_measure + (uint64_t)(duration * 1e9);
    }
    for (int i = 0; i < nconns; i++) conn_open(&conns[i]);

    int maxev = nconns < 1024 ? nconns : 1024;
    struct epoll_event *evs = xrealloc(NULL, (size_t)maxev * sizeof *evs);
    for (;;) {
        uint64_t now = now_ns();
        if (now >= t_end || (mode == M_BURST && ndone == nconns) || (once && all_replies >= nreq)) break;
        if (nretry > 0) {
            nretry = 0;
            for (int i = 0; i < nconns; i++)
                if (conns[i].state == C_RETRY) conn_open(&conns[i]);
        }
        /* Poll briefly while reconnects are pending so refused connects back off. */
        uint64_t left_ms = (t_end - now + 999999) / 1000000;
        int timeout = nretry > 0 ? 1 : (int)(left_ms < 100 ? left_ms : 100);
        int n = epoll_wait(ep, evs, maxev, timeout);
        if (n < 0 && errno != EINTR) { perror("epoll_wait"); return 1; }
        for (int i = 0; i < n; i++) on_event(&conns[evs[i].data.u32], evs[i].events);
    }

    double seconds = duration;
    if (once)
        seconds = (double)(now_ns() - t_measure) / 1e9;
    if (mode == M_BURST)
        seconds = (double)((nlat ? t_last_reply : now_ns()) - t_start) / 1e9;
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    printf("{\"mode\": \"%s\", \"conns\": %d, \"depth\": %d, \"requests\": %lu, "
           "\"seconds\": %.3f, \"rps\": %.1f, \"p50_us\": %.1f, \"p90_us\": %.1f, "
           "\"p99_us\": %.1f, \"max_us\": %.1f, \"wrong\": %lu, \"closed\": %lu, "
           "\"connect_errors\": %lu, \"replies\": %lu}\n",
           mode_names[mode], nconns, depth, completed, seconds,
           seconds > 0 ? (double)completed / seconds : 0.0,
           percentile(0.50), percentile(0.90), percentile(0.99), percentile(1.0),
           wrong, closed_count, connect_errors, all_replies);
    return 0;
}
