/* The asynchronous API's promise: every accepted submission gets exactly one completion. Three
 * runs of 100,000 requests: undisturbed, with the server stopped part way, and with the pool
 * closed part way. Each request has its own completion counter, checked after the run and again
 * after a pause, so a lost or a doubled completion fails the test. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stdint.h>
#include <unistd.h>

#include "check.h"

#define REQUESTS 100000
/* Submissions allowed to wait for their completion at once; the submitter blocks beyond it. */
#define WINDOW 2000
#define STATUS_COUNT 13

struct run;

struct request_slot {
    struct run *run;
    uint32_t index;
    atomic_int completions;
};

struct run {
    fanta_pool *pool;
    struct request_slot *slots;
    long total;
    pthread_mutex_t lock;
    pthread_cond_t changed;
    long outstanding;
    long completed;
    atomic_long by_status[STATUS_COUNT];
    atomic_long mismatched;
    atomic_long missing_message;
};

static void run_init(struct run *run, fanta_pool *pool, long total) {
    memset(run, 0, sizeof *run);
    run->pool = pool;
    run->total = total;
    run->slots = calloc((size_t)total, sizeof *run->slots);
    for (long i = 0; i < total; i++) {
        run->slots[i].run = run;
        run->slots[i].index = (uint32_t)i;
    }
    pthread_mutex_init(&run->lock, NULL);
    pthread_cond_init(&run->changed, NULL);
}

static void run_free(struct run *run) {
    free(run->slots);
    pthread_mutex_destroy(&run->lock);
    pthread_cond_destroy(&run->changed);
}

static void on_complete(void *user_data, fanta_status status, const uint8_t *response,
                        size_t response_len, const char *error_message) {
    struct request_slot *slot = user_data;
    struct run *run = slot->run;
    atomic_fetch_add(&slot->completions, 1);

    if (status == FANTA_STATUS_OK) {
        uint32_t echoed = UINT32_MAX;
        if (response_len == sizeof echoed) {
            memcpy(&echoed, response, sizeof echoed);
        }
        if (echoed != slot->index || error_message != NULL) {
            atomic_fetch_add(&run->mismatched, 1);
        }
    } else if (error_message == NULL || error_message[0] == '\0' || response != NULL) {
        atomic_fetch_add(&run->missing_message, 1);
    }
    if ((int)status >= 0 && (int)status < STATUS_COUNT) {
        atomic_fetch_add(&run->by_status[status], 1);
    }

    pthread_mutex_lock(&run->lock);
    run->outstanding--;
    run->completed++;
    pthread_cond_broadcast(&run->changed);
    pthread_mutex_unlock(&run->lock);
}

/* Submits request `index`, waiting while WINDOW submissions are outstanding. Returns the status
 * of fanta_pool_submit. */
static fanta_status submit_one(struct run *run, long index) {
    pthread_mutex_lock(&run->lock);
    while (run->outstanding >= WINDOW) {
        pthread_cond_wait(&run->changed, &run->lock);
    }
    run->outstanding++;
    pthread_mutex_unlock(&run->lock);

    uint32_t payload = (uint32_t)index;
    fanta_status status = fanta_pool_submit(run->pool, (const uint8_t *)&payload, sizeof payload,
                                            0, on_complete, &run->slots[index]);
    if (status != FANTA_STATUS_OK) {
        pthread_mutex_lock(&run->lock);
        run->outstanding--;
        pthread_mutex_unlock(&run->lock);
    }
    return status;
}

/* Waits until `accepted` completions arrived or `timeout` seconds passed; returns the count. */
static long wait_completed(struct run *run, long accepted, double timeout) {
    double deadline = now_seconds() + timeout;
    pthread_mutex_lock(&run->lock);
    while (run->completed < accepted && now_seconds() < deadline) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 50 * 1000 * 1000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&run->changed, &run->lock, &until);
    }
    long completed = run->completed;
    pthread_mutex_unlock(&run->lock);
    return completed;
}

/* Checks that the accepted requests each completed exactly once, and the rejected ones never. */
static void check_exactly_once(struct run *run, const bool *accepted, long accepted_count) {
    long completed = wait_completed(run, accepted_count, 60.0);
    CHECK(completed == accepted_count, "%ld of %ld accepted requests completed in 60 s",
          completed, accepted_count);

    /* A late second completion would show up during this pause. */
    usleep(200000);
    long never = 0, twice = 0, rejected_but_completed = 0;
    for (long i = 0; i < run->total; i++) {
        int completions = atomic_load(&run->slots[i].completions);
        if (accepted[i]) {
            never += completions == 0;
            twice += completions > 1;
        } else {
            rejected_but_completed += completions != 0;
        }
    }
    CHECK(never == 0, "%ld accepted requests never completed", never);
    CHECK(twice == 0, "%ld requests completed more than once", twice);
    CHECK(rejected_but_completed == 0, "%ld rejected submissions ran their callback",
          rejected_but_completed);
    CHECK(atomic_load(&run->mismatched) == 0, "%ld responses did not match their request",
          atomic_load(&run->mismatched));
    CHECK(atomic_load(&run->missing_message) == 0,
          "%ld failures came without an error message (or with a response)",
          atomic_load(&run->missing_message));

    long sum = 0;
    for (int status = 0; status < STATUS_COUNT; status++) {
        sum += atomic_load(&run->by_status[status]);
    }
    CHECK(sum == completed, "statuses add up to %ld, completions %ld", sum, completed);
}

static void print_statuses(const char *name, struct run *run, double elapsed) {
    fprintf(stderr, "  %s: %ld requests in %.2f s:", name, run->total, elapsed);
    for (int status = 0; status < STATUS_COUNT; status++) {
        long count = atomic_load(&run->by_status[status]);
        if (count != 0) {
            fprintf(stderr, " %s=%ld", fanta_status_name(status), count);
        }
    }
    fputc('\n', stderr);
}

static fanta_pool *open_pool(const char *address, bool wait_for_connection) {
    fanta_config *config = NULL;
    fanta_pool *pool = NULL;
    fanta_config_new(&config);
    fanta_config_add_address(config, address);
    fanta_config_set_connections_per_address(config, 4);
    fanta_config_set_timeout_ms(config, 5000);
    fanta_config_set_backoff(config, 5, 50, 2.0);
    fanta_config_set_wait_for_connection(config, wait_for_connection);
    if (fanta_pool_open(config, &pool) != FANTA_STATUS_OK) {
        fprintf(stderr, "  open failed: %s\n", fanta_last_error_message());
    }
    fanta_config_free(config);
    return pool;
}

static void async_requests_complete_exactly_once(void) {
    fanta_server *server = NULL;
    const char *address = NULL;
    fanta_server_start(NULL, &server);
    fanta_server_address(server, &address);
    fanta_pool *pool = open_pool(address, true);
    long total = scaled(REQUESTS);
    struct run run;
    run_init(&run, pool, total);
    bool *accepted = calloc((size_t)total, sizeof *accepted);

    double started = now_seconds();
    long accepted_count = 0;
    for (long i = 0; i < total; i++) {
        fanta_status status = submit_one(&run, i);
        accepted[i] = status == FANTA_STATUS_OK;
        accepted_count += accepted[i];
    }
    CHECK(accepted_count == total, "%ld of %ld submissions accepted", accepted_count, total);
    check_exactly_once(&run, accepted, accepted_count);
    print_statuses("undisturbed", &run, now_seconds() - started);
    CHECK(atomic_load(&run.by_status[FANTA_STATUS_OK]) == total, "%ld of %ld succeeded",
          atomic_load(&run.by_status[FANTA_STATUS_OK]), total);

    fanta_pool_free(pool);
    fanta_server_free(server);
    run_free(&run);
    free(accepted);
}

/* Returns whether a TCP connect to `address` ("127.0.0.1:port") is refused. */
static bool connect_refused(const char *address) {
    char host[64];
    int port = 0;
    if (sscanf(address, "%63[^:]:%d", host, &port) != 2) {
        return false;
    }
    struct sockaddr_in target = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, host, &target.sin_addr);

    int probe = socket(AF_INET, SOCK_STREAM, 0);
    int result = connect(probe, (const struct sockaddr *)&target, sizeof target);
    bool refused = result != 0 && errno == ECONNREFUSED;
    close(probe);
    return refused;
}

/* Stops the server and waits until it is gone for the pool: its port refuses connections and
 * the pool has no routable connection. Returns whether that happened within `timeout` s.
 *
 * NOTE: a connection that the embedded server accepts while fanta_server_stop() runs survives
 * the stop: the server registers it after closing the registered ones and never closes it.
 * Under valgrind a pool reconnect hits that window often. A later stop closes such a
 * connection, because it is registered by then, so this stops again once the port refuses
 * connections, and every 500 ms while a connection is still up. */
static bool stop_server(fanta_server *server, fanta_pool *pool, const char *address,
                        double timeout) {
    double deadline = now_seconds() + timeout;
    CHECK_STATUS(fanta_server_stop(server), FANTA_STATUS_OK);
    while (!connect_refused(address)) {
        if (now_seconds() >= deadline) {
            return false;
        }
        usleep(1000);
    }
    fanta_server_stop(server);

    double next_stop = now_seconds() + 0.5;
    fanta_stats stats;
    while (fanta_pool_stats(pool, &stats) == FANTA_STATUS_OK && now_seconds() < deadline) {
        if (stats.connected == 0) {
            return true;
        }
        if (now_seconds() >= next_stop) {
            fprintf(stderr, "  %zu connections survived the server stop; stopping again\n",
                    stats.connected);
            fanta_server_stop(server);
            next_stop = now_seconds() + 0.5;
        }
        usleep(1000);
    }
    return false;
}

static void server_stopped_midway_completes_all(void) {
    fanta_server *server = NULL;
    const char *address = NULL;
    fanta_server_start(NULL, &server);
    fanta_server_address(server, &address);
    fanta_pool *pool = open_pool(address, false);
    bool connected = false;
    fanta_pool_wait_connected(pool, 4, 5000, &connected);
    long total = scaled(REQUESTS);
    struct run run;
    run_init(&run, pool, total);
    bool *accepted = calloc((size_t)total, sizeof *accepted);

    double started = now_seconds();
    long accepted_count = 0;
    for (long i = 0; i < total; i++) {
        if (i == total / 2) {
            CHECK(stop_server(server, pool, address, 10.0),
                  "server still reachable 10 s after the stop");
        }
        fanta_status status = submit_one(&run, i);
        accepted[i] = status == FANTA_STATUS_OK;
        accepted_count += accepted[i];
    }
    CHECK(accepted_count == total, "%ld of %ld submissions accepted", accepted_count, total);
    check_exactly_once(&run, accepted, accepted_count);
    print_statuses("server stopped midway", &run, now_seconds() - started);

    /* Only requests submitted before the stop can succeed, and nothing reconnects after it. */
    long succeeded = atomic_load(&run.by_status[FANTA_STATUS_OK]);
    long failed = atomic_load(&run.by_status[FANTA_STATUS_DISCONNECTED]) +
                  atomic_load(&run.by_status[FANTA_STATUS_NO_CONNECTION]);
    CHECK(succeeded >= total / 2 - WINDOW, "%ld succeeded, expected at least %ld", succeeded,
          total / 2 - WINDOW);
    CHECK(succeeded <= total / 2, "%ld succeeded, expected at most %ld", succeeded, total / 2);
    CHECK(succeeded + failed == total, "%ld ended with a status other than ok, disconnected "
          "or no_connection", total - succeeded - failed);

    fanta_pool_free(pool);
    fanta_server_free(server);
    run_free(&run);
    free(accepted);
}

struct submitter {
    struct run *run;
    bool *accepted;
    long first;
    long last;
    long accepted_count;
    long rejected_closed;
};

static void *submit_range(void *arg) {
    struct submitter *submitter = arg;
    for (long i = submitter->first; i < submitter->last; i++) {
        fanta_status status = submit_one(submitter->run, i);
        submitter->accepted[i] = status == FANTA_STATUS_OK;
        submitter->accepted_count += status == FANTA_STATUS_OK;
        submitter->rejected_closed += status == FANTA_STATUS_POOL_CLOSED;
    }
    return NULL;
}

static void pool_closed_midway_completes_all(void) {
    fanta_server *server = NULL;
    const char *address = NULL;
    fanta_server_start(NULL, &server);
    fanta_server_address(server, &address);
    fanta_pool *pool = open_pool(address, true);
    long total = scaled(REQUESTS);
    struct run run;
    run_init(&run, pool, total);
    bool *accepted = calloc((size_t)total, sizeof *accepted);

    /* Two threads submit while this one closes the pool once a third has completed. */
    double started = now_seconds();
    struct submitter submitters[2] = {
        {&run, accepted, 0, total / 2, 0, 0},
        {&run, accepted, total / 2, total, 0, 0},
    };
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&threads[i], NULL, submit_range, &submitters[i]);
    }
    wait_completed(&run, total / 3, 60.0);
    CHECK_STATUS(fanta_pool_close(pool), FANTA_STATUS_OK);
    long accepted_count = 0, rejected_closed = 0;
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        accepted_count += submitters[i].accepted_count;
        rejected_closed += submitters[i].rejected_closed;
    }
    /* Free the pool with completions possibly still pending: they must arrive regardless. */
    fanta_pool_free(pool);

    CHECK(accepted_count + rejected_closed == total, "%ld submissions failed otherwise",
          total - accepted_count - rejected_closed);
    CHECK(rejected_closed > 0, "no submission was rejected after the close");
    check_exactly_once(&run, accepted, accepted_count);
    print_statuses("pool closed midway", &run, now_seconds() - started);

    long succeeded = atomic_load(&run.by_status[FANTA_STATUS_OK]);
    long closed = atomic_load(&run.by_status[FANTA_STATUS_POOL_CLOSED]);
    CHECK(succeeded >= total / 3, "%ld succeeded", succeeded);
    CHECK(succeeded + closed == accepted_count, "%ld ended with a status other than ok or "
          "pool_closed", accepted_count - succeeded - closed);

    fanta_server_free(server);
    run_free(&run);
    free(accepted);
}

int main(void) {
    RUN_CASE(async_requests_complete_exactly_once);
    RUN_CASE(server_stopped_midway_completes_all);
    RUN_CASE(pool_closed_midway_completes_all);
    return finish();
}
