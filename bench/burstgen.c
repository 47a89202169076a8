/* The release burst's load generator, compiled: the same patients as bench/scenario.py's run_burst.
 *
 * Why C: the load generator shares the machine's 2 cores with the server it measures. The asyncio one
 * (bench/loadclient.py on uvloop, ~96 µs of CPU per request) took 0.37-0.40 of a core from T to sold out,
 * which the server could not have. This one speaks the same HTTP/1.1 subset over epoll.
 *
 * Input (a file, one item per line, written by bench/burstgen.py):
 *   host port connections timeout_s t_release_unix storm_seconds poll_interval tries seed anonymous_reads
 *   read_path
 *   sessions: S, then S lines "session_id n slot_id..."
 *   patients: N, then N lines "patient_id phase_s token nprefs pref..." (phase: first refresh, from T-storm)
 *   order: N patient indexes (who presses 预约 first at T)
 * Output (stdout): one record per request, "kind t0 t1 status code patient slot booking" (times from T, s).
 * Semantics follow run_burst exactly: one FIFO queue of (patient, step) shared by all connections; a
 * refresh still queued at T is dropped; after a lost try the patient re-reads the page and tries again.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

enum { REFRESH = 0, BOOK = 1, REREAD = 2 };

typedef struct Page {
    char etag[80];
    int *free_start; /* per session index: offset into ids */
    int *free_len;
    int *ids;
    struct Page *next;
} Page;

typedef struct {
    int patient_id;
    double phase;
    char *auth;  /* "Authorization: Bearer ...\r\n" */
    int nprefs;
    int *prefs;  /* session indexes, most wanted first */
    char etag[80];
    Page *page;
    int tries_left;
    int refreshing;
    uint64_t rng;
} Pat;

typedef struct {
    int fd;
    int busy;
    int open;
    int patient;
    int step;
    int slot;
    double t0;
    double deadline;
    char *buf;
    size_t len, cap;
} Conn;

typedef struct {
    int patient, step;
} Item;

static char host[64];
static int port, nconn, tries, nsess, npat, anon_reads;
static double timeout_s, t_release, storm, poll_iv;
static char read_path[512];
static int *sess_ids, *sess_n, **sess_slots;
static Pat *pats;
static int *order;
static Conn *conns;
static Item *queue;
static size_t q_head, q_tail, q_cap;
static int *idle;  /* a ring, oldest idle first: a connection idle past the server's keep-alive is closed */
static size_t idle_head, idle_tail;
static int finished;
static Page *pages;
static int epfd;
static double t_mono;  /* T on the monotonic clock */
typedef struct {
    char kind;
    char code[48];
    int status, patient, slot;
    long booking;
    double t0, t1;
} Rec;
static Rec *recs;  /* formatted after the burst: printf's float formatting is not the burst's business */
static size_t n_recs, cap_recs;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void die(const char *msg) {
    fprintf(stderr, "burstgen: %s (%s)\n", msg, strerror(errno));
    exit(2);
}

static uint64_t next_rand(uint64_t *s) { /* splitmix64 */
    uint64_t z = (*s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static void answered(Conn *c, int status, double t1, const char *body, size_t blen, const char *etag);
typedef void (*AnswerFn)(Conn *, int, double, const char *, size_t, const char *);
static AnswerFn on_answer = answered;  /* the burst's patients, or the hammer's tally */

static void give_back(Conn *c) {
    idle[idle_tail % nconn] = (int)(c - conns);
    idle_tail++;
}

static void push(int patient, int step) {
    queue[q_tail % q_cap] = (Item){patient, step};
    q_tail++;
}

static void record(char kind, double t0, double t1, int status, const char *code, int patient, int slot,
                   long booking) {
    if (n_recs == cap_recs) {
        cap_recs = cap_recs * 2 + 65536;
        recs = realloc(recs, cap_recs * sizeof(Rec));
        if (!recs) die("out of memory");
    }
    Rec *r = &recs[n_recs++];
    *r = (Rec){.kind = kind, .status = status, .patient = patient, .slot = slot, .booking = booking,
               .t0 = t0, .t1 = t1};
    snprintf(r->code, sizeof r->code, "%s", code);
}

static void write_records(void) {
    FILE *f = stdout;
    for (size_t i = 0; i < n_recs; i++) {
        Rec *r = &recs[i];
        fprintf(f, "%s %.6f %.6f %d %s %d %d %ld\n", r->kind == 'b' ? "book" : "read", r->t0 - t_mono,
                r->t1 - t_mono, r->status, r->code, r->patient, r->slot, r->booking);
    }
    fflush(f);
}

static int open_conn(Conn *c) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) < 0) {
        close(fd);
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0) die("epoll_ctl");
    c->fd = fd;
    c->open = 1;
    c->len = 0;
    return 0;
}

static void close_conn(Conn *c) {
    if (c->open) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->open = 0;
    c->len = 0;
}

static int sess_index(int session_id) {
    for (int i = 0; i < nsess; i++)
        if (sess_ids[i] == session_id) return i;
    return -1;
}

/* Free numbers per session of a page body, parsed once per ETag (as run_burst's `parsed`). The route
 * writes each slot as {"id":..,"session_id":..,"doctor":{..},...,"status":".."}. */
static Page *parse_page(const char *etag, const char *body, size_t len) {
    for (Page *p = pages; p; p = p->next)
        if (!strcmp(p->etag, etag)) return p;
    Page *p = calloc(1, sizeof *p);
    snprintf(p->etag, sizeof p->etag, "%s", etag);
    p->free_start = calloc(nsess, sizeof(int));
    p->free_len = calloc(nsess, sizeof(int));
    int total = 0;
    for (int i = 0; i < nsess; i++) total += sess_n[i];
    int *tmp_sess = malloc(sizeof(int) * (total + 1)), *tmp_id = malloc(sizeof(int) * (total + 1));
    int n = 0;
    const char *end = body + len, *s = memmem(body, len, "\"slots\":[", 9);
    while (s && s < end) {
        const char *k = memmem(s, end - s, "{\"id\":", 6);
        if (!k) break;
        int id = atoi(k + 6);
        const char *q = memmem(k, end - k, "\"session_id\":", 13);
        const char *st = q ? memmem(q, end - q, "\"status\":\"", 10) : NULL;
        if (!st) break;
        int sid = atoi(q + 13);
        st += 10;
        int i = sess_index(sid);
        if ((!strncmp(st, "available\"", 10) || !strncmp(st, "not_released\"", 13)) && i >= 0 && n < total) {
            tmp_sess[n] = i;
            tmp_id[n++] = id;
        }
        s = st;
    }
    p->ids = malloc(sizeof(int) * (n + 1));
    int at = 0;
    for (int i = 0; i < nsess; i++) {
        p->free_start[i] = at;
        for (int j = 0; j < n; j++)
            if (tmp_sess[j] == i) p->ids[at++] = tmp_id[j];
        p->free_len[i] = at - p->free_start[i];
    }
    free(tmp_sess);
    free(tmp_id);
    p->next = pages;
    pages = p;
    return p;
}

static int choose(Pat *p) {
    for (int k = 0; k < p->nprefs; k++) {
        int i = p->prefs[k];
        if (p->page && p->page->free_len[i])
            return p->page->ids[p->page->free_start[i] + next_rand(&p->rng) % p->page->free_len[i]];
    }
    /* Nothing left on the page: the patient presses 预约 on a number they want anyway. */
    int i = p->prefs[0];
    return sess_slots[i][next_rand(&p->rng) % sess_n[i]];
}

/* Write a request on an open, idle connection; its answer is due within timeout_s. */
static void send_request(Conn *c, const char *req, int n) {
    c->busy = 1;
    c->len = 0;
    c->t0 = mono();
    c->deadline = c->t0 + timeout_s;
    /* A request is under 1 KB on an idle keep-alive connection: the socket's buffer takes it whole, so
     * a retry loop stands in for EPOLLOUT bookkeeping. A failed send shows as the connection's close. */
    int off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, req + off, n - off, MSG_NOSIGNAL);
        if (w < 0 && (errno == EAGAIN || errno == EINTR)) continue;
        if (w <= 0) break;
        off += w;
    }
}

static void send_on(Conn *c, int pi, int step) {
    Pat *p = &pats[pi];
    char req[2048];
    int n;
    if (step == BOOK) {
        c->slot = choose(p);
        char body[128];
        int bn = snprintf(body, sizeof body, "{\"slot_id\": %d, \"patient_id\": %d, \"insurance_type\": \"self_pay\"}",
                          c->slot, p->patient_id);
        n = snprintf(req, sizeof req,
                     "POST /api/v1/appointments HTTP/1.1\r\nHost: %s:%d\r\n%sContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s", host, port, p->auth, bn, body);
    } else {
        c->slot = 0;
        if (p->etag[0])
            n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%sIf-None-Match: %s\r\n\r\n",
                         read_path, host, port, anon_reads ? "" : p->auth, p->etag);
        else
            n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: %s:%d\r\n%s\r\n", read_path, host, port,
                         anon_reads ? "" : p->auth);
    }
    c->patient = pi;
    c->step = step;
    if (!c->open && open_conn(c) < 0) {
        c->t0 = mono();
        answered(c, -1, c->t0, NULL, 0, NULL);
        give_back(c);
        return;
    }
    send_request(c, req, n);
}

/* An answer's code as the asyncio generator names it: the status, or what stood for none. */
static void status_code(char code[64], int status) {
    if (status == 0) strcpy(code, "TIMEOUT");
    else if (status == -1) strcpy(code, "CONN_ERROR");
    else sprintf(code, "%d", status);
}

/* The error code of a JSON error body ({"error": {"code": "..."}}), if it has one. */
static void error_code(char code[64], const char *body, size_t blen) {
    const char *k = body ? memmem(body, blen, "\"code\":\"", 8) : NULL;
    if (!k) return;
    k += 8;
    const char *e = memchr(k, '"', body + blen - k);
    size_t l = e ? (size_t)(e - k) : 0;
    if (l > 47) l = 47;
    memcpy(code, k, l);
    code[l] = 0;
}

/* What the patient does with an answer (run_burst's `connection`, `read` and `book`). */
static void answered(Conn *c, int status, double t1, const char *body, size_t blen, const char *etag) {
    int pi = c->patient, step = c->step;
    Pat *p = &pats[pi];
    char code[64];
    long booking = 0;
    status_code(code, status);
    if (status >= 500) sprintf(code, "HTTP_%d", status);
    if (step == BOOK) {
        if (status == 201) {
            const char *k = body ? memmem(body, blen, "\"id\":", 5) : NULL;
            booking = k ? atol(k + 5) : 0;
            strcpy(code, "booked");
        } else if (status > 0 && status < 500) {
            error_code(code, body, blen);
        }
        record('b', c->t0, t1, status, code, pi, c->slot, booking);
        p->tries_left--;
        if (!strcmp(code, "SLOT_TAKEN") || !strcmp(code, "SLOT_BUSY") || !strcmp(code, "SESSION_FULL")
            || !strcmp(code, "NOT_RELEASED"))
            push(pi, REREAD);
        else
            finished++;
    } else {
        if (status == 200 && etag) {
            snprintf(p->etag, sizeof p->etag, "%s", etag);
            p->page = parse_page(etag, body, blen);
        }
        record('r', c->t0, t1, status, code, pi, 0, 0);
        if (step == REFRESH) {
            p->refreshing = 0;
        } else if (p->tries_left > 0) {
            push(pi, BOOK);
        } else {
            finished++;
        }
    }
}

/* A whole answer in c->buf? Then handle it and free the connection. */
static void try_parse(Conn *c) {
    char *he = memmem(c->buf, c->len, "\r\n\r\n", 4);
    if (!he) return;
    size_t hlen = he - c->buf;
    long cl = 0;
    char etag[80] = {0};
    for (char *line = memchr(c->buf, '\n', hlen); line && line < he; line = memchr(line + 1, '\n', he - line)) {
        char *l = line + 1;
        if (!strncasecmp(l, "content-length:", 15)) cl = atol(l + 15);
        else if (!strncasecmp(l, "transfer-encoding:", 18)) {
            fprintf(stderr, "burstgen: chunked responses are not spoken here\n");
            exit(2);
        } else if (!strncasecmp(l, "etag:", 5)) {
            char *v = l + 5;
            while (*v == ' ') v++;
            char *e = memchr(v, '\r', he - v + 2);
            size_t n = e ? (size_t)(e - v) : 0;
            if (n >= sizeof etag) n = sizeof etag - 1;
            memcpy(etag, v, n);
        }
    }
    size_t total = hlen + 4 + cl;
    if (c->len < total) return;
    double t1 = mono();
    int status = atoi(c->buf + 9);
    c->busy = 0;
    on_answer(c, status, t1, he + 4, cl, etag[0] ? etag : NULL);
    memmove(c->buf, c->buf + total, c->len - total);
    c->len -= total;
    give_back(c);
}

static void on_readable(Conn *c) {
    if (c->cap - c->len < 65536) {
        c->cap = c->cap * 2 + 65536;
        c->buf = realloc(c->buf, c->cap);
        if (!c->buf) die("out of memory");
    }
    /* One recv per readiness: epoll is level-triggered, so what is left wakes us again (a second recv
     * only to hear EAGAIN was a syscall per answer). */
    ssize_t r = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
    if (r > 0) {
        c->len += r;
        if (c->busy) try_parse(c);
        return;
    }
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
    int was_busy = c->busy; /* closed or failed */
    close_conn(c);
    if (was_busy) {
        c->busy = 0;
        on_answer(c, -1, mono(), NULL, 0, NULL);
        give_back(c);
    }
}

/* A request unanswered past its deadline: the connection is dropped and the answer is a timeout. */
static int expired(Conn *c, double now) {
    if (!c->busy || now <= c->deadline) return 0;
    close_conn(c);
    c->busy = 0;
    on_answer(c, 0, now, NULL, 0, NULL);
    return 1;
}

/* storm: a binary heap of (due, patient) */
static double *h_due;
static int *h_pat, h_n;
static void h_push(double due, int pi) {
    int i = h_n++;
    while (i > 0) {
        int up = (i - 1) / 2;
        if (h_due[up] <= due) break;
        h_due[i] = h_due[up];
        h_pat[i] = h_pat[up];
        i = up;
    }
    h_due[i] = due;
    h_pat[i] = pi;
}
static void h_pop(void) {
    double due = h_due[--h_n];
    int pi = h_pat[h_n], i = 0;
    for (;;) {
        int l = 2 * i + 1, m = i;
        if (l < h_n && h_due[l] < due) m = l;
        if (l + 1 < h_n && h_due[l + 1] < (m == i ? due : h_due[l])) m = l + 1;
        if (m == i) break;
        h_due[i] = h_due[m];
        h_pat[i] = h_pat[m];
        i = m;
    }
    h_due[i] = due;
    h_pat[i] = pi;
}

static char *read_all(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) die("cannot open the input");
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc(n + 1);
    if (fread(s, 1, n, f) != (size_t)n) die("cannot read the input");
    s[n] = 0;
    fclose(f);
    return s;
}

/* --- the hammer: pre-built requests back to back on every connection for a while (the ceilings) --- */

static char **h_req;
static int *h_len, h_count, h_next, h_cycle;

static int hammer_send(Conn *c) {
    if (h_next >= h_count) {
        if (!h_cycle) return 0;
        h_next = 0;
    }
    int i = h_next++;
    if (!c->open && open_conn(c) < 0) die("cannot connect");
    send_request(c, h_req[i], h_len[i]);
    return 1;
}

static void hammer_answered(Conn *c, int status, double t1, const char *body, size_t blen, const char *etag) {
    (void)etag;
    char code[64];
    status_code(code, status);
    if (status == 409) error_code(code, body, blen);
    record('h', c->t0, t1, status, code, 0, 0, 0);
}

/* Input: "host port connections timeout seconds cycle count\n", then per request its length, "\n", and
 * its bytes. Output: "lat status code" per answer. Each connection sends its next request as soon as the
 * answer to its last has come, until `seconds` have passed (those in flight are awaited), or, without
 * `cycle`, until the requests run out. */
static int hammer_main(const char *path) {
    char *in = read_all(path), *p = in;
    double seconds;
    if (sscanf(p, "%63s %d %d %lf %lf %d %d", host, &port, &nconn, &timeout_s, &seconds, &h_cycle, &h_count) != 7)
        die("bad hammer input");
    p = strchr(p, '\n') + 1;
    h_req = malloc(sizeof(char *) * (h_count + 1));
    h_len = malloc(sizeof(int) * (h_count + 1));
    for (int i = 0; i < h_count; i++) {
        h_len[i] = (int)strtol(p, &p, 10);
        p++; /* the newline */
        h_req[i] = p;
        p += h_len[i];
    }
    on_answer = hammer_answered;
    idle = malloc(sizeof(int) * nconn);  /* the shared read path hands connections back to it; unused here */
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conns = calloc(nconn, sizeof(Conn));
    for (int i = 0; i < nconn; i++)
        if (open_conn(&conns[i]) < 0) die("cannot connect");
    t_mono = mono();
    double end = t_mono + seconds;
    int in_flight = 0;
    for (int i = 0; i < nconn; i++) in_flight += hammer_send(&conns[i]);
    struct epoll_event evs[512];
    while (in_flight) {
        int n = epoll_wait(epfd, evs, 512, 50);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) {
            Conn *c = (Conn *)evs[i].data.ptr;
            int was_busy = c->busy;
            on_readable(c);
            if (was_busy && !c->busy) {
                in_flight--;
                if (mono() < end) in_flight += hammer_send(c);
            }
        }
        double now = mono();
        for (int i = 0; i < nconn; i++) {
            Conn *c = &conns[i];
            if (expired(c, now)) {
                in_flight--;
                if (now < end) in_flight += hammer_send(c);
            }
        }
    }
    printf("took %.6f\n", mono() - t_mono);
    for (size_t i = 0; i < n_recs; i++)
        printf("%.6f %d %s\n", recs[i].t1 - recs[i].t0, recs[i].status, recs[i].code);
    fflush(stdout);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "hammer")) return hammer_main(argv[2]);
    if (argc != 2) {
        fprintf(stderr, "usage: burstgen INPUT > records  |  burstgen hammer INPUT > latencies\n");
        return 2;
    }
    char *in = read_all(argv[1]), *cur = in, *tok;
#define NEXT() (tok = strtok_r(NULL, " \n", &cur))
    tok = strtok_r(in, " \n", &cur);
    snprintf(host, sizeof host, "%s", tok);
    port = atoi(NEXT());
    nconn = atoi(NEXT());
    timeout_s = atof(NEXT());
    t_release = atof(NEXT());
    storm = atof(NEXT());
    poll_iv = atof(NEXT());
    tries = atoi(NEXT());
    uint64_t seed = strtoull(NEXT(), NULL, 10);
    anon_reads = atoi(NEXT());
    snprintf(read_path, sizeof read_path, "%s", NEXT());
    nsess = atoi(NEXT());
    sess_ids = malloc(sizeof(int) * nsess);
    sess_n = malloc(sizeof(int) * nsess);
    sess_slots = malloc(sizeof(int *) * nsess);
    for (int i = 0; i < nsess; i++) {
        sess_ids[i] = atoi(NEXT());
        sess_n[i] = atoi(NEXT());
        sess_slots[i] = malloc(sizeof(int) * sess_n[i]);
        for (int j = 0; j < sess_n[i]; j++) sess_slots[i][j] = atoi(NEXT());
    }
    npat = atoi(NEXT());
    pats = calloc(npat + 1, sizeof(Pat));
    for (int i = 0; i < npat; i++) {
        Pat *p = &pats[i];
        p->patient_id = atoi(NEXT());
        p->phase = atof(NEXT());
        char *t = NEXT();
        size_t tl = strlen(t) + 40;
        p->auth = malloc(tl);
        snprintf(p->auth, tl, "Authorization: Bearer %s\r\n", t);
        p->nprefs = atoi(NEXT());
        p->prefs = malloc(sizeof(int) * (p->nprefs + 1));
        for (int k = 0; k < p->nprefs; k++) {
            int j = sess_index(atoi(NEXT()));
            p->prefs[k] = j < 0 ? 0 : j;
        }
        p->rng = seed * 7919 + i;
    }
    order = malloc(sizeof(int) * (npat + 1));
    for (int i = 0; i < npat; i++) order[i] = atoi(NEXT());
#undef NEXT

    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    t_mono = mono() + (t_release - (rt.tv_sec + rt.tv_nsec * 1e-9));
    q_cap = 2 * (size_t)npat + 16;
    queue = malloc(sizeof(Item) * q_cap);
    epfd = epoll_create1(0);
    if (epfd < 0) die("epoll_create1");
    conns = calloc(nconn, sizeof(Conn));
    idle = malloc(sizeof(int) * nconn);
    /* Every connection open ahead, as browsers that have been refreshing hold theirs open. */
    for (int i = 0; i < nconn; i++) {
        if (open_conn(&conns[i]) < 0) die("cannot connect");
        give_back(&conns[i]);
    }
    h_due = malloc(sizeof(double) * (npat + 1));
    h_pat = malloc(sizeof(int) * (npat + 1));
    for (int i = 0; i < npat; i++) h_push(t_mono - storm + pats[i].phase, i);
    int released = 0;
    struct epoll_event evs[512];
    while (finished < npat || !released) {
        double now = mono();
        /* the storm: one refresh a second per patient, each at its own phase, until T */
        while (h_n && h_due[0] < t_mono && h_due[0] <= now) {
            double due = h_due[0];
            int pi = h_pat[0];
            h_pop();
            if (!pats[pi].refreshing) {
                pats[pi].refreshing = 1;
                push(pi, REFRESH);
            }
            h_push(due + poll_iv, pi);
        }
        if (!released && now >= t_mono) {
            released = 1;
            for (int i = 0; i < npat; i++) {
                pats[order[i]].tries_left = tries;
                push(order[i], BOOK);
            }
        }
        /* idle connections serve the queue, first come first served */
        while (idle_head < idle_tail && q_head < q_tail) {
            Item it = queue[q_head % q_cap];
            q_head++;
            if (it.step == REFRESH && now >= t_mono) {
                pats[it.patient].refreshing = 0;  /* at T the patient presses 预约 instead */
                continue;
            }
            Conn *c = &conns[idle[idle_head % nconn]];
            idle_head++;
            send_on(c, it.patient, it.step);
        }
        double wake = released ? now + 0.05 : (h_n && h_due[0] < t_mono ? h_due[0] : t_mono);
        if (!released && t_mono < wake) wake = t_mono;
        int ms = wake > now ? (int)((wake - now) * 1000.0 + 0.999) : 0;
        if (ms > 50) ms = 50;
        int n = epoll_wait(epfd, evs, 512, ms);
        if (n < 0 && errno != EINTR) die("epoll_wait");
        for (int i = 0; i < n; i++) on_readable((Conn *)evs[i].data.ptr);
        now = mono();
        for (int i = 0; i < nconn; i++)
            if (expired(&conns[i], now)) give_back(&conns[i]);
    }
    write_records();
    return 0;
}
