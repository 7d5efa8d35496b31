/*
 * Closed-loop throughput through libfanta's C ABI: the sweep of the Rust section (1, 16, 64 and
 * 256 concurrent callers, 4 connections, 16-byte payloads) with
 *
 * - c_blocking_threads: one POSIX thread per caller, each calling fanta_pool_request() in a loop;
 * - c_async: that many requests kept in flight with fanta_pool_submit(), each completion
 *   callback submitting the next request.
 *
 * usage: fanta_bench --server HOST:PORT [--profile smoke|quick|full] [--part VARIANT:CALLERS]
 *
 * --part runs one variant (blocking or async) for 2 seconds and prints its request count, for a
 * profiler such as strace -c.
 *
 * Prints one JSON object on stdout and progress on stderr. Built and started by
 * fanta-core/benches/run.sh.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanta.h"

#define CONNECTIONS 4
#define TIMEOUT_MS 60000
#define MAX_COUNTS 4
#define MAX_ROUNDS 5

static const uint8_t PAYLOAD[16] = "fanta-bench-0016";

/* Shared by the callers of one measurement. */
struct run {
    const fanta_pool *pool;
    atomic_bool stop;
    atomic_ullong completed;
    /* Asynchronous variant only: requests submitted and not yet completed. */
    atomic_ullong outstanding;
};

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_seconds(double seconds) {
    struct timespec ts;
    ts.tv_sec = (time_t)seconds;
    ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
    nanosleep(&ts, NULL);
}

static void die(const char *call, enum fanta_status status) {
    fprintf(stderr, "fanta_bench: %s failed: %s: %s\n", call, fanta_status_name(status),
            fanta_last_error_message());
    exit(1);
}

static void *blocking_caller(void *argument) {
    struct run *run = argument;
    while (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
        fanta_response *response = NULL;
        enum fanta_status status =
            fanta_pool_request(run->pool, PAYLOAD, sizeof PAYLOAD, TIMEOUT_MS, &response);
        if (status != FANTA_STATUS_OK) {
            die("fanta_pool_request", status);
        }
        if (fanta_response_len(response) != sizeof PAYLOAD) {
            fprintf(stderr, "fanta_bench: echo has the wrong length\n");
            exit(1);
        }
        fanta_response_free(response);
        atomic_fetch_add_explicit(&run->completed, 1, memory_order_relaxed);
    }
    return NULL;
}

static void on_complete(void *user_data, enum fanta_status status, const uint8_t *response,
                        size_t response_len, const char *error_message) {
    (void)response;
    struct run *run = user_data;
    if (status != FANTA_STATUS_OK || response_len != sizeof PAYLOAD) {
        fprintf(stderr, "fanta_bench: request failed: %s: %s\n", fanta_status_name(status),
                error_message ? error_message : "wrong echo length");
        exit(1);
    }
    atomic_fetch_add_explicit(&run->completed, 1, memory_order_relaxed);

    if (!atomic_load_explicit(&run->stop, memory_order_relaxed)) {
        enum fanta_status next =
            fanta_pool_submit(run->pool, PAYLOAD, sizeof PAYLOAD, TIMEOUT_MS, on_complete, run);
        if (next == FANTA_STATUS_OK) {
            return;
        }
        die("fanta_pool_submit", next);
    }
    atomic_fetch_sub_explicit(&run->outstanding, 1, memory_order_release);
}

/* Measures `callers` callers of one variant and returns requests per second over `duration`. */
static double measure(const fanta_pool *pool, bool async, int callers, double warmup,
                      double duration) {
    struct run run = {.pool = pool};
    atomic_init(&run.stop, false);
    atomic_init(&run.completed, 0);
    atomic_init(&run.outstanding, (unsigned long long)callers);

    pthread_t *threads = NULL;
    if (async) {
        for (int i = 0; i < callers; i++) {
            enum fanta_status status =
                fanta_pool_submit(pool, PAYLOAD, sizeof PAYLOAD, TIMEOUT_MS, on_complete, &run);
            if (status != FANTA_STATUS_OK) {
                die("fanta_pool_submit", status);
            }
        }
    } else {
        threads = calloc((size_t)callers, sizeof *threads);
        for (int i = 0; i < callers; i++) {
            if (pthread_create(&threads[i], NULL, blocking_caller, &run) != 0) {
                fprintf(stderr, "fanta_bench: pthread_create failed\n");
                exit(1);
            }
        }
    }

    sleep_seconds(warmup);
    unsigned long long start_count = atomic_load(&run.completed);
    double start = now_seconds();
    sleep_seconds(duration);
    unsigned long long end_count = atomic_load(&run.completed);
    double elapsed = now_seconds() - start;
    atomic_store(&run.stop, true);

    if (async) {
        /* `run` lives on this stack frame, so wait until no callback can still touch it. */
        while (atomic_load_explicit(&run.outstanding, memory_order_acquire) > 0) {
            sleep_seconds(0.001);
        }
    } else {
        for (int i = 0; i < callers; i++) {
            pthread_join(threads[i], NULL);
        }
        free(threads);
    }
    return (double)(end_count - start_count) / elapsed;
}

static int compare_doubles(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int count) {
    qsort(values, (size_t)count, sizeof *values, compare_doubles);
    return count % 2 ? values[count / 2] : (values[count / 2 - 1] + values[count / 2]) / 2;
}

int main(int argc, char **argv) {
    const char *server = NULL;
    const char *profile = "quick";
    const char *part = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--server") == 0 && i + 1 < argc) {
            server = argv[++i];
        } else if (strcmp(argv[i], "--profile") == 0 && i + 1 < argc) {
            profile = argv[++i];
        } else if (strcmp(argv[i], "--part") == 0 && i + 1 < argc) {
            part = argv[++i];
        } else {
            fprintf(stderr, "usage: fanta_bench --server HOST:PORT [--profile smoke|quick|full] "
                            "[--part VARIANT:CALLERS]\n");
            return 2;
        }
    }
    if (server == NULL) {
        fprintf(stderr, "fanta_bench: missing --server HOST:PORT\n");
        return 2;
    }

    int counts[MAX_COUNTS] = {1, 16, 64, 256};
    int count_total = MAX_COUNTS, rounds = 2;
    double warmup = 0.2, duration = 1.0;
    if (strcmp(profile, "smoke") == 0) {
        count_total = 2, rounds = 1, warmup = 0.1, duration = 0.2;
    } else if (strcmp(profile, "full") == 0) {
        rounds = MAX_ROUNDS, warmup = 0.5, duration = 3.0;
    } else if (strcmp(profile, "quick") != 0) {
        fprintf(stderr, "fanta_bench: --profile: expected smoke, quick or full, got \"%s\"\n",
                profile);
        return 2;
    }

    fanta_config *config = NULL;
    enum fanta_status status = fanta_config_new(&config);
    if (status != FANTA_STATUS_OK) die("fanta_config_new", status);
    if ((status = fanta_config_add_address(config, server)) != FANTA_STATUS_OK)
        die("fanta_config_add_address", status);
    if ((status = fanta_config_set_connections_per_address(config, CONNECTIONS)) != FANTA_STATUS_OK)
        die("fanta_config_set_connections_per_address", status);
    if ((status = fanta_config_set_strategy(config, "round_robin")) != FANTA_STATUS_OK)
        die("fanta_config_set_strategy", status);

    fanta_pool *pool = NULL;
    if ((status = fanta_pool_open(config, &pool)) != FANTA_STATUS_OK) die("fanta_pool_open", status);
    fanta_config_free(config);
    bool connected = false;
    status = fanta_pool_wait_connected(pool, CONNECTIONS, 10000, &connected);
    if (status != FANTA_STATUS_OK || !connected) {
        fprintf(stderr, "fanta_bench: pool did not connect to %s\n", server);
        return 1;
    }

    if (part != NULL) {
        char variant[16];
        int callers = 0;
        if (sscanf(part, "%15[a-z]:%d", variant, &callers) != 2 || callers < 1 ||
            (strcmp(variant, "blocking") != 0 && strcmp(variant, "async") != 0)) {
            fprintf(stderr, "fanta_bench: --part: expected blocking:N or async:N, got \"%s\"\n",
                    part);
            return 2;
        }
        double rate = measure(pool, strcmp(variant, "async") == 0, callers, 0.0, 2.0);
        fprintf(stderr, "c: %s with %d callers: %.0f requests in 2 s\n", variant, callers,
                rate * 2.0);
        fanta_pool_free(pool);
        return 0;
    }

    static const char *const names[2] = {"c_blocking_threads", "c_async"};
    static const char *const descriptions[2] = {
        "fanta_pool_request from one thread per caller",
        "fanta_pool_submit, each callback submitting the next request",
    };
    double samples[2][MAX_COUNTS][MAX_ROUNDS];
    for (int round = 0; round < rounds; round++) {
        for (int c = 0; c < count_total; c++) {
            for (int offset = 0; offset < 2; offset++) {
                int variant = (offset + round + c) % 2;
                double rate = measure(pool, variant == 1, counts[c], warmup, duration);
                fprintf(stderr, "c: round %d %18s callers %3d: %10.0f req/s\n", round,
                        names[variant], counts[c], rate);
                samples[variant][c][round] = rate;
            }
        }
    }
    fanta_pool_free(pool);

    printf("{\"section\":\"c\",\"profile\":\"%s\",\"connections\":%d,\"payload_bytes\":%zu,"
           "\"rounds\":%d,\"seconds_per_sample\":%g,\"reference\":\"pool_round_robin\","
           "\"about\":\"The C program fanta-core/benches/c/fanta_bench.c, compiled with cc -O2 "
           "against include/fanta.h and target/release/libfanta.so, with the timing of section 2 "
           "(median of %d samples of %g s, %d connections, round_robin).\",\"variants\":[",
           profile, CONNECTIONS, sizeof PAYLOAD, rounds, duration, rounds, duration, CONNECTIONS);
    for (int variant = 0; variant < 2; variant++) {
        printf("%s{\"name\":\"%s\",\"description\":\"%s\",\"points\":[", variant ? "," : "",
               names[variant], descriptions[variant]);
        for (int c = 0; c < count_total; c++) {
            printf("%s{\"callers\":%d,\"samples\":[", c ? "," : "", counts[c]);
            for (int round = 0; round < rounds; round++) {
                printf("%s%.1f", round ? "," : "", samples[variant][c][round]);
            }
            printf("],\"requests_per_second\":%.1f}", median(samples[variant][c], rounds));
        }
        printf("]}");
    }
    printf("]}\n");
    return 0;
}
