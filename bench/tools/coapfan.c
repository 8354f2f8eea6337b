/*
 * coapfan -- a CoAP/UDP load generator that speaks from many source addresses at once, as many
 * devices would: what a load balancer hashing on the client's address (nginx's
 * "hash $remote_addr consistent") needs to spread the load.
 *
 * Usage:
 *   coapfan [options] HOST PORT PATH
 *
 * Options:
 *   -s N     sources: sockets bound to 127.0.0.2, 127.0.0.3, ... (default 16, at most 4000)
 *   -w N     CON requests in flight per source (default 4, at most 256)
 *   -d SEC   measured duration in seconds (default 5)
 *   -u SEC   warm-up seconds before measuring (default 1)
 *   -T MS    a request unanswered after MS milliseconds is counted lost and its slot reused
 *            (default 2000); nothing is retransmitted
 *
 * Each source keeps -w CON GET requests for PATH in flight, each with a fresh message ID and
 * a 4-byte token unique on that source; a piggybacked response (ACK with the request's
 * message ID) answers it.  Anything else is counted as stale.
 *
 * Output: one line on stdout, in the style of coapflood:
 *   sent=... ok=... err=... lost=... stale=... rps=... p50_us=... p99_us=... elapsed_s=...
 *   sources=... window=...
 *
 * Build: gcc -O2 -o coapfan coapfan.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_SOURCES 4000
#define MAX_WINDOW 256
#define MAX_SAMPLES (1 << 22)

typedef struct {
    int fd;
    uint16_t next_mid;
    uint32_t next_token;
    uint64_t sent_at[MAX_WINDOW]; /* by slot; 0: free */
    uint16_t mid[MAX_WINDOW];
    uint32_t token[MAX_WINDOW];
    int measured[MAX_WINDOW];
} source_t;

static source_t sources[MAX_SOURCES];
static uint32_t samples[MAX_SAMPLES];
static size_t sample_count;
static char path[256];
static size_t path_len;
static struct sockaddr_in server;

static uint64_t now_us(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int compare(const void *a, const void *b) {
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Send the request of slot `slot` of source `s`; returns 0 on success. */
static int send_request(source_t *s, int slot, uint64_t now, int measured) {
    unsigned char buf[512];
    size_t n = 0;
    uint16_t mid = s->next_mid++;
    uint32_t token = s->next_token++;
    buf[n++] = 0x44; /* version 1, CON, token length 4 */
    buf[n++] = 0x01; /* GET */
    buf[n++] = (unsigned char)(mid >> 8);
    buf[n++] = (unsigned char)(mid & 0xff);
    memcpy(buf + n, &token, 4);
    n += 4;
    /* Uri-Path (11), one segment */
    if (path_len < 13) {
        buf[n++] = (unsigned char)(0xb0 | path_len);
    } else {
        buf[n++] = 0xbd;
        buf[n++] = (unsigned char)(path_len - 13);
    }
    memcpy(buf + n, path, path_len);
    n += path_len;
    if (send(s->fd, buf, n, 0) < 0) {
        return errno == EAGAIN ? 0 : -1;
    }
    s->sent_at[slot] = now;
    s->mid[slot] = mid;
    s->token[slot] = token;
    s->measured[slot] = measured;
    return 0;
}

int main(int argc, char **argv) {
    int count = 16, window = 4, timeout_ms = 2000;
    double duration = 5, warmup = 1;
    int opt;
    while ((opt = getopt(argc, argv, "s:w:d:u:T:")) != -1) {
        switch (opt) {
        case 's': count = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'u': warmup = atof(optarg); break;
        case 'T': timeout_ms = atoi(optarg); break;
        default: goto usage;
        }
    }
    if (argc - optind != 3 || count < 1 || count > MAX_SOURCES || window < 1 ||
        window > MAX_WINDOW) {
    usage:
        fprintf(stderr, "usage: coapfan [-s sources] [-w window] [-d sec] [-u sec] [-T ms] "
                        "HOST PORT PATH\n");
        return 2;
    }
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
    if (inet_pton(AF_INET, argv[optind], &server.sin_addr) != 1) {
        fprintf(stderr, "coapfan: HOST must be an IPv4 address\n");
        return 2;
    }
    const char *p = argv[optind + 2];
    while (*p == '/') p++;
    path_len = strlen(p);
    if (path_len == 0 || path_len > 200 || strchr(p, '/')) {
        fprintf(stderr, "coapfan: PATH must be one segment\n");
        return 2;
    }
    memcpy(path, p, path_len);

    struct rlimit files;
    if (getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur < (rlim_t)count + 64) {
        files.rlim_cur = files.rlim_max < (rlim_t)count + 64 ? files.rlim_max : (rlim_t)count + 64;
        setrlimit(RLIMIT_NOFILE, &files);
    }
    int epoll = epoll_create1(0);
    srand((unsigned)now_us());
    for (int i = 0; i < count; i++) {
        source_t *s = &sources[i];
        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in local;
        memset(&local, 0, sizeof local);
        local.sin_family = AF_INET;
        local.sin_addr.s_addr = htonl(0x7f000002u + (uint32_t)i); /* 127.0.0.2 + i */
        if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&local, sizeof local) < 0 ||
            connect(s->fd, (struct sockaddr *)&server, sizeof server) < 0) {
            perror("coapfan: socket");
            return 1;
        }
        s->next_mid = (uint16_t)rand();
        s->next_token = (uint32_t)rand();
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epoll, EPOLL_CTL_ADD, s->fd, &event);
    }

    uint64_t start = now_us();
    uint64_t measure_from = start + (uint64_t)(warmup * 1e6);
    uint64_t measure_until = measure_from + (uint64_t)(duration * 1e6);
    uint64_t last_answer = measure_from;
    uint64_t sent = 0, ok = 0, err = 0, lost = 0, stale = 0;
    uint64_t timeout_us = (uint64_t)timeout_ms * 1000u;

    for (int i = 0; i < count; i++) {
        for (int slot = 0; slot < window; slot++) {
            send_request(&sources[i], slot, now_us(), 0);
        }
    }
    struct epoll_event events[64];
    unsigned char in[2048];
    uint64_t last_sweep = start;
    for (;;) {
        uint64_t now = now_us();
        int sending = now < measure_until;
        int busy = 0;
        if (!sending) {
            for (int i = 0; i < count && !busy; i++)
                for (int slot = 0; slot < window; slot++)
                    if (sources[i].sent_at[slot] && sources[i].measured[slot]) {
                        busy = 1;
                        break;
                    }
            if (!busy) break;
        }
        int ready = epoll_wait(epoll, events, 64, 10);
        now = now_us();
        for (int e = 0; e < ready; e++) {
            source_t *s = &sources[events[e].data.u32];
            for (;;) {
                ssize_t n = recv(s->fd, in, sizeof in, 0);
                if (n < 0) break;
                if (n < 8 || (in[0] & 0x0f) != 4) {
                    stale++;
                    continue;
                }
                uint16_t mid = (uint16_t)((in[2] << 8) | in[3]);
                uint32_t token;
                memcpy(&token, in + 4, 4);
                int slot = -1;
                for (int k = 0; k < window; k++) {
                    if (s->sent_at[k] && s->token[k] == token && s->mid[k] == mid) {
                        slot = k;
                        break;
                    }
                }
                if (slot < 0 || (in[0] & 0x30) != 0x20) {
                    stale++;
                    continue;
                }
                if (s->measured[slot]) {
                    if (in[1] >= 0x40 && in[1] < 0x60) {
                        ok++;
                        if (sample_count < MAX_SAMPLES)
                            samples[sample_count++] = (uint32_t)(now - s->sent_at[slot]);
                    } else {
                        err++;
                    }
                    last_answer = now;
                }
                s->sent_at[slot] = 0;
                if (now < measure_until) {
                    int measured = now >= measure_from;
                    if (send_request(s, slot, now, measured) == 0 && measured) sent++;
                }
            }
        }
        if (now - last_sweep > 100000) { /* every 0.1 s: give up on the unanswered */
            last_sweep = now;
            for (int i = 0; i < count; i++) {
                source_t *s = &sources[i];
                for (int slot = 0; slot < window; slot++) {
                    if (s->sent_at[slot] && now - s->sent_at[slot] > timeout_us) {
                        if (s->measured[slot]) lost++;
                        s->sent_at[slot] = 0;
                        if (now < measure_until) {
                            int measured = now >= measure_from;
                            if (send_request(s, slot, now, measured) == 0 && measured) sent++;
                        }
                    }
                }
            }
        }
    }
    uint64_t end = last_answer > measure_until ? last_answer : measure_until;
    double elapsed = (double)(end - measure_from) / 1e6;
    qsort(samples, sample_count, sizeof samples[0], compare);
    uint32_t p50 = sample_count ? samples[sample_count / 2] : 0;
    uint32_t p99 = sample_count ? samples[(size_t)((double)sample_count * 0.99)] : 0;
    printf("sent=%llu ok=%llu err=%llu lost=%llu stale=%llu rps=%.1f p50_us=%u p99_us=%u "
           "elapsed_s=%.3f sources=%d window=%d\n",
           (unsigned long long)sent, (unsigned long long)ok, (unsigned long long)err,
           (unsigned long long)lost, (unsigned long long)stale, elapsed > 0 ? ok / elapsed : 0.0,
           p50, p99, elapsed, count, window);
    return 0;
}
