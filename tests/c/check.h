/* A minimal test harness for the libfanta C tests.
 *
 * Each test program runs its cases with RUN_CASE and prints one line per case on stdout, either
 * "PASS name" or "FAIL name", which tests/c/run.sh counts. The reasons for a failure go to
 * stderr. CHECK records a failure and carries on, so one run reports every broken check. */
#ifndef FANTA_TEST_CHECK_H
#define FANTA_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fanta.h"

static int case_failed;
static int cases_failed;

#define CHECK(condition, ...)                                                  \
    do {                                                                       \
        if (!(condition)) {                                                    \
            fprintf(stderr, "  check failed at %s:%d: %s: ", __FILE__,         \
                    __LINE__, #condition);                                     \
            fprintf(stderr, __VA_ARGS__);                                      \
            fputc('\n', stderr);                                               \
            case_failed = 1;                                                   \
        }                                                                      \
    } while (0)

/* Checks that `call` returns `expected`, printing both names and the last error otherwise. */
#define CHECK_STATUS(call, expected)                                           \
    do {                                                                       \
        fanta_status check_status_ = (call);                                   \
        CHECK(check_status_ == (expected), "got %s, expected %s (%s)",         \
              fanta_status_name(check_status_), fanta_status_name(expected),   \
              fanta_last_error_message());                                     \
    } while (0)

/* Checks that `call` returns FANTA_STATUS_INVALID_ARGUMENT with a message containing `word`. */
#define CHECK_INVALID(call, word)                                              \
    do {                                                                       \
        CHECK_STATUS(call, FANTA_STATUS_INVALID_ARGUMENT);                     \
        CHECK(strstr(fanta_last_error_message(), (word)) != NULL,              \
              "message \"%s\" does not name \"%s\"",                           \
              fanta_last_error_message(), (word));                             \
    } while (0)

#define RUN_CASE(function)                                                     \
    do {                                                                       \
        case_failed = 0;                                                       \
        function();                                                            \
        printf("%s %s\n", case_failed ? "FAIL" : "PASS", #function);           \
        fflush(stdout);                                                        \
        cases_failed += case_failed;                                           \
    } while (0)

/* Divides request counts, so that the same tests run under valgrind in bounded time:
 * FANTA_TEST_SCALE=100 runs 1/100 of the requests. */
static inline long scaled(long count) {
    const char *text = getenv("FANTA_TEST_SCALE");
    long divisor = text != NULL ? atol(text) : 1;
    if (divisor < 1) {
        divisor = 1;
    }
    long result = count / divisor;
    return result > 0 ? result : 1;
}

static inline double now_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

/* Starts an embedded server on a free loopback port and opens a pool to it. */
static inline int open_server_and_pool(fanta_server **server, fanta_pool **pool,
                                       size_t connections) {
    const char *address = NULL;
    fanta_config *config = NULL;
    int ok = fanta_server_start(NULL, server) == FANTA_STATUS_OK &&
             fanta_server_address(*server, &address) == FANTA_STATUS_OK &&
             fanta_config_new(&config) == FANTA_STATUS_OK &&
             fanta_config_add_address(config, address) == FANTA_STATUS_OK &&
             fanta_config_set_connections_per_address(config, connections) ==
                 FANTA_STATUS_OK &&
             fanta_pool_open(config, pool) == FANTA_STATUS_OK;
    if (!ok) {
        fprintf(stderr, "  setup failed: %s\n", fanta_last_error_message());
    }
    fanta_config_free(config);
    return ok;
}

static inline int finish(void) {
    return cases_failed == 0 ? 0 : 1;
}

#endif
