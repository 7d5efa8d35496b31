/* A libfanta client in C: open a pool, send blocking requests from several threads, send
 * asynchronous requests with a completion callback, read the stats, shut down.
 *
 * Usage: client [ADDRESS [REQUESTS]]
 *   ADDRESS   host:port of a Fantaprotocol v1 server; without it, an embedded reference server
 *             is started on a free loopback port.
 *   REQUESTS  requests of each kind, blocking and asynchronous (default 20000).
 *
 * Build, after fanta-ffi/install.sh PREFIX with PREFIX/lib/pkgconfig on PKG_CONFIG_PATH:
 *   cc client.c $(pkg-config --cflags --libs fanta) -pthread -Wl,-rpath,PREFIX/lib -o client
 * The rpath (or LD_LIBRARY_PATH) is needed when PREFIX/lib is not a system library folder. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <fanta.h>

#define THREADS 4

static double now_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Prints the failed call's status and message; returns the status for chaining. */
static fanta_status report(const char *call, fanta_status status) {
    if (status != FANTA_STATUS_OK) {
        fprintf(stderr, "%s failed: %s: %s\n", call, fanta_status_name(status),
                fanta_last_error_message());
    }
    return status;
}

/* ---- Blocking requests: each thread waits for each response in turn. ---- */

struct worker {
    fanta_pool *pool;
    long requests;
    long errors;
};

static void *send_blocking(void *arg) {
    struct worker *worker = arg;
    char payload[64];
    for (long i = 0; i < worker->requests; i++) {
        int length = snprintf(payload, sizeof payload, "blocking request %ld", i);
        fanta_response *response = NULL;
        /* timeout_ms 0: the pool's default deadline. */
        fanta_status status =
            fanta_pool_request(worker->pool, (const uint8_t *)payload, (size_t)length, 0, &response);
        if (status != FANTA_STATUS_OK) {
            worker->errors++;
            continue;
        }
        if (fanta_response_len(response) != (size_t)length ||
            memcmp(fanta_response_data(response), payload, (size_t)length) != 0) {
            worker->errors++; /* the reference server echoes the payload */
        }
        fanta_response_free(response);
    }
    return NULL;
}

/* ---- Asynchronous requests: submit returns at once, a callback receives each result. ---- */

struct batch {
    pthread_mutex_t lock;
    pthread_cond_t done;
    long pending;
    long errors;
};

/* Runs on a libfanta thread: keep it short, and never call a blocking libfanta function here. */
static void on_complete(void *user_data, fanta_status status, const uint8_t *response,
                        size_t response_len, const char *error_message) {
    (void)response, (void)response_len, (void)error_message;
    struct batch *batch = user_data;
    pthread_mutex_lock(&batch->lock);
    if (status != FANTA_STATUS_OK) {
        batch->errors++;
    }
    if (--batch->pending == 0) {
        pthread_cond_signal(&batch->done);
    }
    pthread_mutex_unlock(&batch->lock);
}

static long send_async(fanta_pool *pool, long requests) {
    struct batch batch = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};
    for (long i = 0; i < requests; i++) {
        /* Counted before submitting, because the callback may run before submit returns. */
        pthread_mutex_lock(&batch.lock);
        batch.pending++;
        pthread_mutex_unlock(&batch.lock);

        /* The payload is copied, so a stack buffer is fine. */
        char payload[64];
        int length = snprintf(payload, sizeof payload, "async request %ld", i);
        fanta_status status = fanta_pool_submit(pool, (const uint8_t *)payload, (size_t)length,
                                                0, on_complete, &batch);
        if (status != FANTA_STATUS_OK) {
            /* Not accepted: the callback will not run for this request. */
            pthread_mutex_lock(&batch.lock);
            batch.pending--;
            batch.errors++;
            pthread_mutex_unlock(&batch.lock);
        }
    }

    /* Every accepted request gets exactly one completion, so this wait ends. */
    pthread_mutex_lock(&batch.lock);
    while (batch.pending > 0) {
        pthread_cond_wait(&batch.done, &batch.lock);
    }
    long errors = batch.errors;
    pthread_mutex_unlock(&batch.lock);
    return errors;
}

static void print_stats(fanta_pool *pool) {
    fanta_stats stats;
    if (report("fanta_pool_stats", fanta_pool_stats(pool, &stats)) != FANTA_STATUS_OK) {
        return;
    }
    printf("pool: %zu of %zu connections up, %llu completed, %llu errors, %llu reconnects\n",
           stats.connected, stats.configured, (unsigned long long)stats.completed,
           (unsigned long long)stats.errors_total, (unsigned long long)stats.reconnects);

    fanta_connection_stats entries[16];
    size_t count = 0;
    fanta_pool_connection_stats(pool, entries, 16, &count);
    for (size_t i = 0; i < count && i < 16; i++) {
        printf("  connection %zu: %s, %s, %llu completed\n", i, entries[i].address,
               fanta_connection_state_name(entries[i].state),
               (unsigned long long)entries[i].completed);
    }
}

int main(int argc, char **argv) {
    long requests = argc > 2 ? atol(argv[2]) : 20000;
    fanta_server *server = NULL;
    const char *address = argc > 1 ? argv[1] : NULL;
    if (address == NULL) {
        if (report("fanta_server_start", fanta_server_start(NULL, &server)) != FANTA_STATUS_OK) {
            return 1;
        }
        fanta_server_address(server, &address);
        printf("embedded server on %s\n", address);
    }
    printf("c: libfanta %s\n", fanta_version());

    /* Configure and open the pool; the config may be freed right after. */
    fanta_config *config = NULL;
    fanta_pool *pool = NULL;
    fanta_config_new(&config);
    fanta_config_add_address(config, address);
    fanta_config_set_connections_per_address(config, 4);
    fanta_config_set_timeout_ms(config, 5000);
    fanta_status status = report("fanta_pool_open", fanta_pool_open(config, &pool));
    fanta_config_free(config);
    if (status != FANTA_STATUS_OK) {
        fanta_server_free(server);
        return 1;
    }
    bool connected = false;
    fanta_pool_wait_connected(pool, 1, 5000, &connected);

    double started = now_seconds();
    struct worker workers[THREADS];
    pthread_t threads[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){pool, requests / THREADS, 0};
        pthread_create(&threads[i], NULL, send_blocking, &workers[i]);
    }
    long blocking_errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        blocking_errors += workers[i].errors;
    }
    double blocking_seconds = now_seconds() - started;

    started = now_seconds();
    long async_errors = send_async(pool, requests);
    double async_seconds = now_seconds() - started;

    print_stats(pool);
    long blocking_requests = requests / THREADS * THREADS;
    printf("blocking: %ld requests, %ld errors, %.0f requests/s (%d threads)\n",
           blocking_requests, blocking_errors, (double)blocking_requests / blocking_seconds,
           THREADS);
    printf("async: %ld requests, %ld errors, %.0f requests/s\n", requests, async_errors,
           (double)requests / async_seconds);

    /* Close fails anything still pending; free releases the pool. */
    fanta_pool_close(pool);
    fanta_pool_free(pool);
    fanta_server_free(server);
    return blocking_errors + async_errors == 0 ? 0 : 1;
}
