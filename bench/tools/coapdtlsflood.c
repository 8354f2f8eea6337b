/*
 * coapdtlsflood -- a small load generator for CoAP over DTLS 1.2 (RFC 7252 §9), PSK.
 *
 * Usage:
 *   coapdtlsflood [options] HOST PORT PATH
 *
 * Options:
 *   -m MODE  handshakes: each session does a whole PSK handshake (cookie exchange
 *            included, never resumed), then sends close_notify and starts again;
 *            requests: each session makes its handshake once, then keeps -w CON
 *            GET requests for PATH in flight;
 *            plain: as requests, over plain UDP (no DTLS), for the ratio
 *            (default requests)
 *   -c N     sessions (sockets) at once (default 1)
 *   -w N     requests in flight per session (default 1)
 *   -d SEC   measured duration in seconds (default 5)
 *   -u SEC   warm-up seconds before measuring (default 1)
 *   -i ID    PSK identity (default "bench"), -k KEY the key (default "benchkey")
 *   -C LIST  OpenSSL cipher list (default PSK-AES128-GCM-SHA256:@SECLEVEL=0)
 *
 * A request unanswered after 2 s is counted lost and its slot reused; a handshake
 * retransmits on OpenSSL's timer (DTLSv1_handle_timeout).  Responses are matched by
 * token and must be 2.05 piggybacked in the ACK.
 *
 * Output: one line on stdout:
 *   mode=... ok=... lost=... rate=... p50_us=... p99_us=... elapsed_s=... cpu_pct=...
 *   sessions=... window=...
 * rate = ok per second of measurement: handshakes per second (mode handshakes) or
 * requests per second; latencies are per handshake or per request.  cpu_pct is this
 * process's CPU use over the whole run (100 = one core).
 *
 * Build: gcc -O2 -o coapdtlsflood coapdtlsflood.c -lssl -lcrypto
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_WINDOW 256
#define MAX_SAMPLES (1 << 22)
#define LOST_NS 2000000000ULL

enum mode { HANDSHAKES, REQUESTS, PLAIN };

typedef struct {
    int fd;
    SSL *ssl;
    int ready;          /* handshake done (or plain) */
    uint64_t began;     /* when the handshake started */
    uint16_t mid;
    uint32_t token;
    uint64_t sent_at[MAX_WINDOW]; /* by token % window; 0: free */
} conn_t;

static enum mode mode = REQUESTS;
static int window = 1;
static const char *identity = "bench";
static const char *key = "benchkey";
static const char *path = "hello";
static struct sockaddr_in server;
static SSL_CTX *ctx;
static uint64_t *samples;
static size_t nsamples;
static uint64_t ok_count, lost_count;
static int measuring;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static unsigned int psk_callback(SSL *ssl, const char *hint, char *id, unsigned int max_id,
                                 unsigned char *psk, unsigned int max_psk) {
    (void)ssl;
    (void)hint;
    size_t id_len = strlen(identity), key_len = strlen(key);
    if (id_len + 1 > max_id || key_len > max_psk) return 0;
    memcpy(id, identity, id_len + 1);
    memcpy(psk, key, key_len);
    return (unsigned int)key_len;
}

static void record(uint64_t began) {
    if (!measuring) return;
    ok_count++;
    if (nsamples < MAX_SAMPLES) samples[nsamples++] = (now_ns() - began) / 1000;
}

static int new_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) < 0) {
        perror("socket");
        exit(1);
    }
    return fd;
}

static void start_handshake(conn_t *c) {
    c->ssl = SSL_new(ctx);
    BIO *bio = BIO_new_dgram(c->fd, BIO_NOCLOSE);
    BIO_ctrl(bio, BIO_CTRL_DGRAM_SET_CONNECTED, 0, &server);
    SSL_set_bio(c->ssl, bio, bio);
    SSL_set_connect_state(c->ssl);
    c->ready = 0;
    c->began = now_ns();
    SSL_do_handshake(c->ssl);
}

static size_t build_get(conn_t *c, unsigned char *out, uint32_t token) {
    size_t n = 0, len = strlen(path);
    out[n++] = 0x44; /* CON, token length 4 */
    out[n++] = 0x01; /* GET */
    c->mid++;
    out[n++] = (unsigned char)(c->mid >> 8);
    out[n++] = (unsigned char)c->mid;
    memcpy(out + n, &token, 4);
    n += 4;
    if (len == 0) {
        return n; /* the root resource: no Uri-Path */
    } else if (len < 13) {
        out[n++] = (unsigned char)(0xB0 | len); /* Uri-Path (11) */
    } else {
        out[n++] = 0xBD;
        out[n++] = (unsigned char)(len - 13);
    }
    memcpy(out + n, path, len);
    return n + len;
}

static void send_request(conn_t *c) {
    unsigned char buf[512];
    uint32_t token = ++c->token;
    size_t n = build_get(c, buf, token);
    c->sent_at[token % window] = now_ns();
    if (mode == PLAIN) {
        send(c->fd, buf, n, 0);
    } else {
        SSL_write(c->ssl, buf, (int)n);
    }
}

static void answer(conn_t *c, const unsigned char *data, int n) {
    if (n < 8 || (data[0] & 0x30) != 0x20 || data[1] != 0x45 || (data[0] & 0x0F) != 4) return;
    uint32_t token;
    memcpy(&token, data + 4, 4);
    uint64_t sent = c->sent_at[token % window];
    if (!sent || token + (uint32_t)window <= c->token) return; /* stale */
    c->sent_at[token % window] = 0;
    record(sent);
    send_request(c);
}

static void readable(conn_t *c) {
    unsigned char buf[4096];
    if (mode == PLAIN) {
        int n;
        while ((n = (int)recv(c->fd, buf, sizeof buf, 0)) > 0) answer(c, buf, n);
        return;
    }
    if (!c->ready) {
        int rc = SSL_do_handshake(c->ssl);
        if (rc == 1) {
            c->ready = 1;
            if (mode == HANDSHAKES) {
                record(c->began);
                SSL_shutdown(c->ssl);
                SSL_free(c->ssl);
                while (recv(c->fd, buf, sizeof buf, 0) > 0) {
                } /* anything left of that session */
                start_handshake(c);
                return;
            }
            for (int i = 0; i < window; i++) send_request(c);
        } else if (SSL_get_error(c->ssl, rc) != SSL_ERROR_WANT_READ) {
            ERR_print_errors_fp(stderr);
            fprintf(stderr, "handshake failed\n");
            exit(1);
        }
        return;
    }
    int n;
    while ((n = SSL_read(c->ssl, buf, sizeof buf)) > 0) answer(c, buf, n);
    ERR_clear_error();
}

static void sweep(conn_t *conns, int count) {
    uint64_t now = now_ns();
    for (int i = 0; i < count; i++) {
        conn_t *c = &conns[i];
        if (mode != PLAIN && !c->ready) {
            DTLSv1_handle_timeout(c->ssl);
            continue;
        }
        for (int j = 0; j < window; j++) {
            if (c->sent_at[j] && now - c->sent_at[j] > LOST_NS) {
                c->sent_at[j] = 0;
                if (measuring) lost_count++;
                send_request(c);
            }
        }
    }
}

static int compare(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int sessions = 1, opt;
    double duration = 5, warmup = 1;
    const char *ciphers = "PSK-AES128-GCM-SHA256:@SECLEVEL=0";
    while ((opt = getopt(argc, argv, "m:c:w:d:u:i:k:C:")) != -1) {
        switch (opt) {
        case 'm':
            mode = !strcmp(optarg, "handshakes") ? HANDSHAKES
                   : !strcmp(optarg, "plain")    ? PLAIN
                                                 : REQUESTS;
            break;
        case 'c': sessions = atoi(optarg); break;
        case 'w': window = atoi(optarg); break;
        case 'd': duration = atof(optarg); break;
        case 'u': warmup = atof(optarg); break;
        case 'i': identity = optarg; break;
        case 'k': key = optarg; break;
        case 'C': ciphers = optarg; break;
        default:
            fprintf(stderr, "usage: %s [-m handshakes|requests|plain] [-c N] [-w N] [-d SEC] "
                            "[-u SEC] [-i ID] [-k KEY] [-C CIPHERS] HOST PORT PATH\n",
                    argv[0]);
            return 2;
        }
    }
    if (argc - optind != 3 || window < 1 || window > MAX_WINDOW || sessions < 1) {
        fprintf(stderr, "usage: %s [options] HOST PORT PATH\n", argv[0]);
        return 2;
    }
    memset(&server, 0, sizeof server);
    server.sin_family = AF_INET;
    server.sin_port = htons((uint16_t)atoi(argv[optind + 1]));
    inet_pton(AF_INET, argv[optind], &server.sin_addr);
    path = argv[optind + 2];
    if (*path == '/') path++;
    samples = malloc(sizeof(uint64_t) * MAX_SAMPLES);

    ctx = SSL_CTX_new(DTLS_client_method());
    SSL_CTX_set_min_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_max_proto_version(ctx, DTLS1_2_VERSION);
    SSL_CTX_set_cipher_list(ctx, ciphers);
    SSL_CTX_set_psk_client_callback(ctx, psk_callback);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);

    int ep = epoll_create1(0);
    conn_t *conns = calloc((size_t)sessions, sizeof(conn_t));
    for (int i = 0; i < sessions; i++) {
        conns[i].fd = new_socket();
        conns[i].mid = (uint16_t)(i * 7919);
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
        if (mode == PLAIN) {
            conns[i].ready = 1;
            for (int j = 0; j < window; j++) send_request(&conns[i]);
        } else {
            start_handshake(&conns[i]);
        }
    }

    struct epoll_event events[256];
    uint64_t start = now_ns(), measure_start = 0, end = 0, last_sweep = start;
    uint64_t warm_ns = (uint64_t)(warmup * 1e9), run_ns = (uint64_t)(duration * 1e9);
    for (;;) {
        uint64_t now = now_ns();
        if (!measuring && !end && now - start >= warm_ns) {
            measuring = 1;
            measure_start = now;
        }
        if (measuring && now - measure_start >= run_ns) {
            measuring = 0;
            end = now;
            break;
        }
        int n = epoll_wait(ep, events, 256, 10);
        for (int i = 0; i < n; i++) readable(&conns[events[i].data.u32]);
        if (now_ns() - last_sweep > 20000000ULL) {
            sweep(conns, sessions);
            last_sweep = now_ns();
        }
    }
    double elapsed = (double)(end - measure_start) / 1e9;
    qsort(samples, nsamples, sizeof(uint64_t), compare);
    uint64_t p50 = nsamples ? samples[nsamples / 2] : 0;
    uint64_t p99 = nsamples ? samples[(size_t)((double)nsamples * 0.99)] : 0;
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    double cpu = (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
                 (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
    double wall = (double)(now_ns() - start) / 1e9;
    const char *names[] = {"handshakes", "requests", "plain"};
    printf("mode=%s ok=%llu lost=%llu rate=%.0f p50_us=%llu p99_us=%llu elapsed_s=%.2f "
           "cpu_pct=%.0f sessions=%d window=%d\n",
           names[mode], (unsigned long long)ok_count, (unsigned long long)lost_count,
           (double)ok_count / elapsed, (unsigned long long)p50, (unsigned long long)p99, elapsed,
           100.0 * cpu / wall, sessions, window);
    return 0;
}
