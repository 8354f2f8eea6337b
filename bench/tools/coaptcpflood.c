/*
 * coaptcpflood -- a small load generator for CoAP over TCP (RFC 8323).
 *
 * Usage:
 *   coaptcpflood [options] HOST PORT PATH
 *
 * Options:
 *   -c N     connections (default 1)
 *   -w N     requests in flight per connection (default 1)
 *   -d SEC   measured duration in seconds (default 5)
 *   -u SEC   warm-up seconds before measuring (default 1)
 *
 * Each connection sends its CSM (7.01), waits for the server's, then keeps
 * -w GET requests for PATH in flight, each with a token unique on that
 * connection; responses are matched by token.  Nothing is retransmitted: the
 * transport is reliable.  A connection that closes ends the run with an error.
 *
 * Output: one line on stdout, in the style of coapflood:
 *   sent=... ok=... err=... rps=... p50_us=... p99_us=... elapsed_s=...
 *   connections=... window=...
 *
 * Build: gcc -O2 -o coaptcpflood coaptcpflood.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WINDOW 1024
#define INBUF (1 << 16)
#define MAX_SAMPLES (1 << 22)

typedef struct {
    int fd;
    int ready;                    /* the server's CSM came */
    uint32_t next_token;
    uint64_t sent_at[MAX_WINDOW]; /* by token % window; 0: free */
    unsigned char in[INBUF];
    size_t in_len;
    unsigned char out[1 << 16];
    size_t out_len;
} conn_t;

static const char *path;
static int window = 1;
static uint64_t measure_from, measure_until;
static uint64_t sent, ok, err;
static uint32_t *samples;
static size_t nsamples;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Append one frame: Len/TKL (+ extension), code, token, body. */
static void put_frame(conn_t *c, uint8_t code, const uint8_t *token, int tkl,
                      const uint8_t *body, size_t blen) {
    unsigned char *p = c->out + c->out_len;
    if (blen < 13) {
        *p++ = (uint8_t)((blen << 4) | tkl);
    } else if (blen < 269) {
        *p++ = (uint8_t)((13 << 4) | tkl);
        *p++ = (uint8_t)(blen - 13);
    } else {
        *p++ = (uint8_t)((14 << 4) | tkl);
        *p++ = (uint8_t)((blen - 269) >> 8);
        *p++ = (uint8_t)((blen - 269) & 0xff);
    }
    *p++ = code;
    memcpy(p, token, (size_t)tkl);
    p += tkl;
    memcpy(p, body, blen);
    p += blen;
    c->out_len = (size_t)(p - c->out);
}

static unsigned char request_body[512];
static size_t request_body_len;

static void build_request_body(void) {
    /* Uri-Path options (11), one per segment */
    const char *s = path;
    int previous = 0;
    unsigned char *p = request_body;
    while (*s == '/') s++;
    while (*s) {
        const char *e = strchr(s, '/');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        int delta = 11 - previous;
        previous = 11;
        if (len < 13) {
            *p++ = (uint8_t)((delta << 4) | len);
        } else {
            *p++ = (uint8_t)((delta << 4) | 13);
            *p++ = (uint8_t)(len - 13);
        }
        memcpy(p, s, len);
        p += len;
        if (!e) break;
        s = e + 1;
    }
    request_body_len = (size_t)(p - request_body);
}

static void send_request(conn_t *c) {
    uint32_t t = c->next_token++;
    uint8_t token[4] = {(uint8_t)(t >> 24), (uint8_t)(t >> 16), (uint8_t)(t >> 8), (uint8_t)t};
    c->sent_at[t % (uint32_t)window] = now_ns();
    put_frame(c, 0x01, token, 4, request_body, request_body_len);
    sent++;
}

static void flush(conn_t *c) {
    size_t done = 0;
    while (done < c->out_len) {
        ssize_t n = write(c->fd, c->out + done, c->out_len - done);
        if (n < 0) {
            if (errno == EAGAIN) break;
            perror("write");
            exit(2);
        }
        done += (size_t)n;
    }
    memmove(c->out, c->out + done, c->out_len - done);
    c->out_len -= done;
}

/* Parse whole frames in c->in; answer the CSM; match responses. */
static void consume(conn_t *c) {
    size_t pos = 0;
    while (pos < c->in_len) {
        unsigned char *f = c->in + pos;
        size_t avail = c->in_len - pos;
        int nib = f[0] >> 4, tkl = f[0] & 0x0f;
        size_t head = 1, blen;
        if (nib < 13) {
            blen = (size_t)nib;
        } else if (nib == 13) {
            if (avail < 2) break;
            blen = (size_t)f[1] + 13;
            head = 2;
        } else if (nib == 14) {
            if (avail < 3) break;
            blen = (((size_t)f[1] << 8) | f[2]) + 269;
            head = 3;
        } else {
            if (avail < 5) break;
            blen = (((size_t)f[1] << 24) | ((size_t)f[2] << 16) | ((size_t)f[3] << 8) | f[4]) + 65805;
            head = 5;
        }
        size_t total = head + 1 + (size_t)tkl + blen;
        if (avail < total) break;
        uint8_t code = f[head];
        if (code == 0xE1) { /* CSM */
            if (!c->ready) {
                c->ready = 1;
                for (int i = 0; i < window; i++) send_request(c);
            }
        } else if (code == 0xE2) { /* Ping: answer Pong */
            put_frame(c, 0xE3, f + head + 1, tkl, NULL, 0);
        } else if (code >= 0x40 && tkl == 4) {
            const unsigned char *tk = f + head + 1;
            uint32_t t = ((uint32_t)tk[0] << 24) | ((uint32_t)tk[1] << 16) | ((uint32_t)tk[2] << 8) | tk[3];
            uint64_t at = c->sent_at[t % (uint32_t)window];
            uint64_t now = now_ns();
            if (at) {
                c->sent_at[t % (uint32_t)window] = 0;
                if (at >= measure_from && at < measure_until) {
                    if ((code >> 5) == 2) {
                        ok++;
                        if (nsamples < MAX_SAMPLES) samples[nsamples++] = (uint32_t)((now - at) / 1000);
                    } else {
                        err++;
                    }
                }
                if (now < measure_until) send_request(c);
            }
        } else if (code == 0xE4 || code == 0xE5) {
            fprintf(stderr, "the server released or aborted a connection\n");
            exit(2);
        }
        pos += total;
    }
    memmove(c->in, c->in + pos, c->in_len - pos);
    c->in_len -= pos;
}

static int cmp_u32(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

int main(int argc, char **argv) {
    int nconn = 1, opt;
    double duration = 5, warmup = 1;
    while ((opt = getopt(argc, argv, "c:w:d:u:")) != -1) {
        switch (opt) {
        case 'c': nconn = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'u': warmup = atof(optarg); break;
        default:
            fprintf(stderr, "usage: coaptcpflood [-c N] [-w N] [-d SEC] [-u SEC] HOST PORT PATH\n");
            return 2;
        }
    }
    if (argc - optind != 3 || window < 1 || window > MAX_WINDOW || nconn < 1) {
        fprintf(stderr, "usage: coaptcpflood [-c N] [-w N<=1024] [-d SEC] [-u SEC] HOST PORT PATH\n");
        return 2;
    }
    const char *host = argv[optind];
    int port = atoi(argv[optind + 1]);
    path = argv[optind + 2];
    build_request_body();
    samples = malloc(sizeof(uint32_t) * MAX_SAMPLES);
    conn_t *conns = calloc((size_t)nconn, sizeof(conn_t));
    int ep = epoll_create1(0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &sa.sin_addr);
    uint64_t start = now_ns();
    measure_from = start + (uint64_t)(warmup * 1e9);
    measure_until = measure_from + (uint64_t)(duration * 1e9);
    /* our CSM: Max-Message-Size 1152 */
    const uint8_t csm_body[] = {0x22, 0x04, 0x80};
    for (int i = 0; i < nconn; i++) {
        conn_t *c = &conns[i];
        c->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            perror("connect");
            return 2;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        put_frame(c, 0xE1, NULL, 0, csm_body, sizeof csm_body);
        flush(c);
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    struct epoll_event events[256];
    for (;;) {
        uint64_t now = now_ns();
        if (now > measure_until + 2000000000ull) break;
        int outstanding = 0;
        for (int i = 0; i < nconn && !outstanding; i++)
            for (int k = 0; k < window; k++)
                if (conns[i].sent_at[k]) { outstanding = 1; break; }
        if (now >= measure_until && !outstanding) break;
        int n = epoll_wait(ep, events, 256, 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = events[i].data.ptr;
            ssize_t r = read(c->fd, c->in + c->in_len, INBUF - c->in_len);
            if (r <= 0) {
                fprintf(stderr, "a connection closed\n");
                return 2;
            }
            c->in_len += (size_t)r;
            consume(c);
            flush(c);
        }
    }
    double elapsed = duration;
    qsort(samples, nsamples, sizeof(uint32_t), cmp_u32);
    uint32_t p50 = nsamples ? samples[nsamples / 2] : 0;
    uint32_t p99 = nsamples ? samples[(size_t)(nsamples * 0.99)] : 0;
    printf("sent=%llu ok=%llu err=%llu rps=%.0f p50_us=%u p99_us=%u elapsed_s=%.2f connections=%d window=%d\n",
           (unsigned long long)sent, (unsigned long long)ok, (unsigned long long)err, ok / elapsed, p50, p99,
           elapsed, nconn, window);
    return 0;
}
