/* Many application threads sharing one pool through the blocking API: 16 threads x 10,000
 * requests against the embedded server, each response checked byte for byte against its
 * request. */
#include <pthread.h>
#include <stdint.h>

#include "check.h"

#define THREADS 16
#define REQUESTS_PER_THREAD 10000

struct worker {
    fanta_pool *pool;
    int index;
    long requests;
    long succeeded;
    long mismatched;
    long failed;
    fanta_status first_failure;
    char first_message[256];
};

/* Writes a payload unique to (thread, request), of a length that varies from 16 to 527 bytes. */
static size_t make_payload(uint8_t *buffer, int thread, long request) {
    int written = snprintf((char *)buffer, 32, "t%02d-r%07ld-", thread, request);
    size_t length = 16 + (size_t)((thread * 7919 + request * 104729) % 512);
    for (size_t i = (size_t)written; i < length; i++) {
        buffer[i] = (uint8_t)('a' + (i + (size_t)request) % 26);
    }
    return length;
}

static void *run_worker(void *arg) {
    struct worker *worker = arg;
    uint8_t payload[600];
    for (long request = 0; request < worker->requests; request++) {
        size_t length = make_payload(payload, worker->index, request);
        fanta_response *response = NULL;
        fanta_status status = fanta_pool_request(worker->pool, payload, length, 10000, &response);
        if (status != FANTA_STATUS_OK) {
            if (worker->failed++ == 0) {
                worker->first_failure = status;
                snprintf(worker->first_message, sizeof worker->first_message, "%s",
                         fanta_last_error_message());
            }
            continue;
        }
        if (fanta_response_len(response) == length &&
            memcmp(fanta_response_data(response), payload, length) == 0) {
            worker->succeeded++;
        } else {
            worker->mismatched++;
        }
        fanta_response_free(response);
    }
    return NULL;
}

static void sixteen_threads_blocking_requests(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 4)) {
        CHECK(0, "setup failed");
        return;
    }
    long per_thread = scaled(REQUESTS_PER_THREAD);
    struct worker workers[THREADS];
    pthread_t threads[THREADS];

    double started = now_seconds();
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (struct worker){.pool = pool, .index = i, .requests = per_thread};
        pthread_create(&threads[i], NULL, run_worker, &workers[i]);
    }
    long succeeded = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        succeeded += workers[i].succeeded;
        CHECK(workers[i].succeeded == per_thread, "thread %d: %ld of %ld succeeded", i,
              workers[i].succeeded, per_thread);
        CHECK(workers[i].mismatched == 0, "thread %d: %ld responses differ from their request",
              i, workers[i].mismatched);
        CHECK(workers[i].failed == 0, "thread %d: %ld failed, first with %s: %s", i,
              workers[i].failed, fanta_status_name(workers[i].first_failure),
              workers[i].first_message);
    }
    double elapsed = now_seconds() - started;
    fprintf(stderr, "  %d threads x %ld blocking requests in %.2f s (%.0f requests/s)\n",
            THREADS, per_thread, elapsed, (double)succeeded / elapsed);

    fanta_stats stats;
    CHECK_STATUS(fanta_pool_stats(pool, &stats), FANTA_STATUS_OK);
    CHECK(stats.completed == (uint64_t)(THREADS * per_thread), "pool completed %llu",
          (unsigned long long)stats.completed);
    CHECK(stats.errors_total == 0, "pool errors %llu", (unsigned long long)stats.errors_total);

    uint64_t received = 0;
    fanta_server_requests_received(server, &received);
    CHECK(received == (uint64_t)(THREADS * per_thread), "server received %llu",
          (unsigned long long)received);

    fanta_pool_free(pool);
    fanta_server_free(server);
}

int main(void) {
    RUN_CASE(sixteen_threads_blocking_requests);
    return finish();
}
