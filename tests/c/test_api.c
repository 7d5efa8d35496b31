/* The C API's contract: version macros, status names, NULL and invalid arguments for every
 * function, configuration validation, requests and stats against the embedded server, the
 * per-thread last error, and blocking calls from a completion callback. */
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <unistd.h>

#include "check.h"

static void version_macros_match_library(void) {
    CHECK(FANTA_VERSION == FANTA_VERSION_MAJOR * 1000000 + FANTA_VERSION_MINOR * 1000 +
                               FANTA_VERSION_PATCH,
          "FANTA_VERSION is %d", FANTA_VERSION);
    CHECK(FANTA_VERSION == fanta_version_number(), "header %d, library %u", FANTA_VERSION,
          fanta_version_number());
    CHECK(strcmp(FANTA_VERSION_STRING, fanta_version()) == 0, "header %s, library %s",
          FANTA_VERSION_STRING, fanta_version());

    char expected[64];
    snprintf(expected, sizeof expected, "%d.%d.%d", FANTA_VERSION_MAJOR, FANTA_VERSION_MINOR,
             FANTA_VERSION_PATCH);
    CHECK(strcmp(expected, FANTA_VERSION_STRING) == 0, "components %s, string %s", expected,
          FANTA_VERSION_STRING);
}

static void status_names_are_stable(void) {
    static const char *const expected[] = {
        "ok",         "timeout",          "disconnected",        "no_connection", "server",
        "protocol",   "pool_closed",      "invalid_argument",    "blocking_in_runtime",
        "forked",     "cancelled",        "io",                  "panic",
    };
    int count = (int)(sizeof expected / sizeof expected[0]);
    for (int status = 0; status < count; status++) {
        CHECK(strcmp(fanta_status_name(status), expected[status]) == 0, "status %d is %s",
              status, fanta_status_name(status));
    }
    CHECK(FANTA_STATUS_PANIC == 12, "FANTA_STATUS_PANIC is %d", FANTA_STATUS_PANIC);
    CHECK(strcmp(fanta_status_name(count), "unknown") == 0, "got %s", fanta_status_name(count));
    CHECK(strcmp(fanta_status_name(-1), "unknown") == 0, "got %s", fanta_status_name(-1));

    static const char *const states[] = {"connecting", "connected", "draining", "backoff",
                                         "closed"};
    for (int state = 0; state < 5; state++) {
        CHECK(strcmp(fanta_connection_state_name(state), states[state]) == 0, "state %d is %s",
              state, fanta_connection_state_name(state));
    }
    CHECK(FANTA_CONNECTION_STATE_CLOSED == 4, "CLOSED is %d", FANTA_CONNECTION_STATE_CLOSED);
    CHECK(strcmp(fanta_connection_state_name(5), "unknown") == 0, "got %s",
          fanta_connection_state_name(5));
}

static void config_functions_reject_null(void) {
    fanta_config *config = NULL;
    CHECK_INVALID(fanta_config_new(NULL), "config_out is NULL");
    CHECK_STATUS(fanta_config_new(&config), FANTA_STATUS_OK);
    CHECK(strcmp(fanta_last_error_message(), "") == 0, "stale message \"%s\"",
          fanta_last_error_message());

    CHECK_INVALID(fanta_config_add_address(NULL, "127.0.0.1:1"), "config is NULL");
    CHECK_INVALID(fanta_config_add_address(config, NULL), "address is NULL");
    CHECK_INVALID(fanta_config_add_address(config, "\xff\xfe:1"), "not valid UTF-8");
    CHECK_INVALID(fanta_config_set_connections_per_address(NULL, 1), "config is NULL");
    CHECK_INVALID(fanta_config_set_strategy(NULL, "random"), "config is NULL");
    CHECK_INVALID(fanta_config_set_strategy(config, NULL), "name is NULL");
    CHECK_INVALID(fanta_config_set_timeout_ms(NULL, 1), "config is NULL");
    CHECK_INVALID(fanta_config_set_max_in_flight(NULL, 1), "config is NULL");
    CHECK_INVALID(fanta_config_set_max_frame_length(NULL, 64), "config is NULL");
    CHECK_INVALID(fanta_config_set_connect_timeout_ms(NULL, 1), "config is NULL");
    CHECK_INVALID(fanta_config_set_backoff(NULL, 1, 2, 2.0), "config is NULL");
    CHECK_INVALID(fanta_config_set_wait_for_connection(NULL, false), "config is NULL");
    CHECK(strncmp(fanta_last_error_message(), "fanta_config_set_wait_for_connection:", 37) == 0,
          "message \"%s\" does not start with the function name", fanta_last_error_message());

    fanta_pool *pool = NULL;
    CHECK_INVALID(fanta_pool_open(NULL, &pool), "config is NULL");
    CHECK_INVALID(fanta_pool_open(config, NULL), "pool_out is NULL");
    CHECK(pool == NULL, "pool_out was written on failure");

    fanta_config_free(NULL);
    fanta_config_free(config);
}

/* Opens a pool from a config with one valid address plus `adjust`, expecting rejection. */
typedef void (*adjust_fn)(fanta_config *config);

static void expect_open_rejects(adjust_fn adjust, const char *setting) {
    fanta_config *config = NULL;
    fanta_pool *pool = NULL;
    fanta_config_new(&config);
    adjust(config);
    CHECK_INVALID(fanta_pool_open(config, &pool), setting);
    CHECK(pool == NULL, "pool_out was written on failure (%s)", setting);
    fanta_pool_free(pool);
    fanta_config_free(config);
}

static void add_no_address(fanta_config *config) { (void)config; }
static void add_hostless(fanta_config *config) { fanta_config_add_address(config, "nohost"); }
static void add_port_zero(fanta_config *config) { fanta_config_add_address(config, "h:0"); }
static void add_valid(fanta_config *config) { fanta_config_add_address(config, "127.0.0.1:9"); }
static void zero_connections(fanta_config *config) {
    add_valid(config);
    fanta_config_set_connections_per_address(config, 0);
}
static void too_many_connections(fanta_config *config) {
    add_valid(config);
    fanta_config_set_connections_per_address(config, 1025);
}
static void unknown_strategy(fanta_config *config) {
    add_valid(config);
    fanta_config_set_strategy(config, "fastest");
}
static void zero_timeout(fanta_config *config) {
    add_valid(config);
    fanta_config_set_timeout_ms(config, 0);
}
static void zero_max_in_flight(fanta_config *config) {
    add_valid(config);
    fanta_config_set_max_in_flight(config, 0);
}
static void short_frame_length(fanta_config *config) {
    add_valid(config);
    fanta_config_set_max_frame_length(config, 10);
}
static void zero_connect_timeout(fanta_config *config) {
    add_valid(config);
    fanta_config_set_connect_timeout_ms(config, 0);
}
static void zero_backoff_initial(fanta_config *config) {
    add_valid(config);
    fanta_config_set_backoff(config, 0, 100, 2.0);
}
static void backoff_max_below_initial(fanta_config *config) {
    add_valid(config);
    fanta_config_set_backoff(config, 100, 10, 2.0);
}
static void backoff_multiplier_below_one(fanta_config *config) {
    add_valid(config);
    fanta_config_set_backoff(config, 10, 100, 0.5);
}
static void backoff_multiplier_nan(fanta_config *config) {
    add_valid(config);
    fanta_config_set_backoff(config, 10, 100, NAN);
}

static void pool_open_rejects_invalid_settings(void) {
    expect_open_rejects(add_no_address, "addresses");
    expect_open_rejects(add_hostless, "address");
    expect_open_rejects(add_port_zero, "address");
    expect_open_rejects(zero_connections, "connections_per_address");
    expect_open_rejects(too_many_connections, "connections_per_address");
    expect_open_rejects(unknown_strategy, "strategy");
    expect_open_rejects(zero_timeout, "timeout");
    expect_open_rejects(zero_max_in_flight, "max_in_flight");
    expect_open_rejects(short_frame_length, "max_frame_length");
    expect_open_rejects(zero_connect_timeout, "connect_timeout");
    expect_open_rejects(zero_backoff_initial, "backoff_initial");
    expect_open_rejects(backoff_max_below_initial, "backoff_max");
    expect_open_rejects(backoff_multiplier_below_one, "backoff_multiplier");
    expect_open_rejects(backoff_multiplier_nan, "backoff_multiplier");
}

static atomic_int never_called_count;

static void never_called(void *user_data, fanta_status status, const uint8_t *response,
                         size_t response_len, const char *error_message) {
    (void)user_data, (void)status, (void)response, (void)response_len, (void)error_message;
    atomic_fetch_add(&never_called_count, 1);
}

static void pool_functions_reject_null_and_invalid(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 1)) {
        CHECK(0, "setup failed");
        return;
    }
    fanta_response *response = NULL;
    const uint8_t payload[] = "abc";
    uint64_t one_year_and_a_day_ms = (365ULL + 1) * 24 * 3600 * 1000;

    CHECK_INVALID(fanta_pool_request(NULL, payload, 3, 0, &response), "pool is NULL");
    CHECK_INVALID(fanta_pool_request(pool, NULL, 3, 0, &response), "payload is NULL");
    CHECK_INVALID(fanta_pool_request(pool, payload, 3, 0, NULL), "response_out is NULL");
    CHECK_INVALID(fanta_pool_request(pool, payload, 3, one_year_and_a_day_ms, &response),
                  "timeout");
    CHECK(response == NULL, "response_out was written on failure");

    CHECK(fanta_response_data(NULL) == NULL, "data of NULL is not NULL");
    CHECK(fanta_response_len(NULL) == 0, "length of NULL is not 0");
    fanta_response_free(NULL);

    CHECK_INVALID(fanta_pool_submit(NULL, payload, 3, 0, never_called, NULL), "pool is NULL");
    CHECK_INVALID(fanta_pool_submit(pool, NULL, 3, 0, never_called, NULL), "payload is NULL");
    CHECK_INVALID(fanta_pool_submit(pool, payload, 3, 0, NULL, NULL), "callback is NULL");
    CHECK_INVALID(fanta_pool_submit(pool, payload, 3, one_year_and_a_day_ms, never_called, NULL),
                  "timeout");

    bool connected = false;
    CHECK_INVALID(fanta_pool_wait_connected(NULL, 1, 10, &connected), "pool is NULL");
    CHECK_INVALID(fanta_pool_wait_connected(pool, 1, 10, NULL), "connected_out is NULL");

    fanta_stats stats;
    fanta_connection_stats entries[2];
    size_t count = 99;
    CHECK_INVALID(fanta_pool_stats(NULL, &stats), "pool is NULL");
    CHECK_INVALID(fanta_pool_stats(pool, NULL), "stats_out is NULL");
    CHECK_INVALID(fanta_pool_connection_stats(NULL, entries, 2, &count), "pool is NULL");
    CHECK_INVALID(fanta_pool_connection_stats(pool, NULL, 2, &count), "entries is NULL");
    CHECK_INVALID(fanta_pool_connection_stats(pool, entries, 2, NULL), "count_out is NULL");
    CHECK(count == 99, "count_out was written on failure");
    CHECK_STATUS(fanta_pool_connection_stats(pool, NULL, 0, &count), FANTA_STATUS_OK);
    CHECK(count == 1, "slot count is %zu, expected 1", count);

    CHECK_INVALID(fanta_pool_close(NULL), "pool is NULL");
    fanta_pool_free(NULL);

    CHECK(atomic_load(&never_called_count) == 0, "a rejected submission ran its callback");
    fanta_pool_free(pool);
    fanta_server_free(server);
}

static void server_functions_reject_null_and_invalid(void) {
    fanta_server *server = NULL;
    const char *address = NULL;
    uint64_t received = 7;

    CHECK_INVALID(fanta_server_start(NULL, NULL), "server_out is NULL");
    CHECK_INVALID(fanta_server_start("\xff:0", &server), "not valid UTF-8");
    CHECK_STATUS(fanta_server_start("not an address", &server), FANTA_STATUS_IO);
    CHECK(server == NULL, "server_out was written on failure");
    CHECK_INVALID(fanta_server_address(NULL, &address), "server is NULL");
    CHECK_INVALID(fanta_server_requests_received(NULL, &received), "server is NULL");
    CHECK_INVALID(fanta_server_drop_connections(NULL), "server is NULL");
    CHECK_INVALID(fanta_server_stop(NULL), "server is NULL");
    fanta_server_free(NULL);

    CHECK_STATUS(fanta_server_start("127.0.0.1:0", &server), FANTA_STATUS_OK);
    CHECK_INVALID(fanta_server_address(server, NULL), "address_out is NULL");
    CHECK_INVALID(fanta_server_requests_received(server, NULL), "count_out is NULL");
    CHECK_STATUS(fanta_server_address(server, &address), FANTA_STATUS_OK);
    CHECK(address != NULL, "address is NULL");
    CHECK(address != NULL && strncmp(address, "127.0.0.1:", 10) == 0, "address %s", address);

    /* A second server on the same port must fail to bind. */
    fanta_server *second = NULL;
    CHECK_STATUS(fanta_server_start(address, &second), FANTA_STATUS_IO);
    CHECK(strstr(fanta_last_error_message(), address) != NULL, "message \"%s\"",
          fanta_last_error_message());

    CHECK_STATUS(fanta_server_requests_received(server, &received), FANTA_STATUS_OK);
    CHECK(received == 0, "received %llu", (unsigned long long)received);
    CHECK_STATUS(fanta_server_stop(server), FANTA_STATUS_OK);
    CHECK_STATUS(fanta_server_stop(server), FANTA_STATUS_OK);
    fanta_server_free(server);
}

static void blocking_request_echoes_payload(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 2)) {
        CHECK(0, "setup failed");
        return;
    }

    fanta_response *response = NULL;
    CHECK_STATUS(fanta_pool_request(pool, (const uint8_t *)"PING", 4, 5000, &response),
                 FANTA_STATUS_OK);
    CHECK(fanta_response_len(response) == 4 &&
              memcmp(fanta_response_data(response), "PONG", 4) == 0,
          "PING was not answered PONG");
    fanta_response_free(response);

    response = NULL;
    CHECK_STATUS(fanta_pool_request(pool, NULL, 0, 0, &response), FANTA_STATUS_OK);
    CHECK(fanta_response_len(response) == 0, "empty payload got %zu bytes",
          fanta_response_len(response));
    fanta_response_free(response);

    static uint8_t large[1 << 20];
    for (size_t i = 0; i < sizeof large; i++) {
        large[i] = (uint8_t)(i * 31 + 7);
    }
    response = NULL;
    CHECK_STATUS(fanta_pool_request(pool, large, sizeof large, 0, &response), FANTA_STATUS_OK);
    CHECK(fanta_response_len(response) == sizeof large, "1 MiB payload came back as %zu bytes",
          fanta_response_len(response));
    CHECK(fanta_response_len(response) == sizeof large &&
              memcmp(fanta_response_data(response), large, sizeof large) == 0,
          "1 MiB payload not echoed intact");

    /* A response stays valid after its pool is freed. */
    fanta_pool_free(pool);
    CHECK(fanta_response_len(response) == sizeof large, "length changed after the pool was freed");
    CHECK(memcmp(fanta_response_data(response), large, sizeof large) == 0,
          "bytes changed after the pool was freed");
    fanta_response_free(response);
    fanta_server_free(server);
}

static void stats_count_requests_and_connections(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 3)) {
        CHECK(0, "setup failed");
        return;
    }
    bool connected = false;
    CHECK_STATUS(fanta_pool_wait_connected(pool, 3, 5000, &connected), FANTA_STATUS_OK);
    CHECK(connected, "3 connections not up within 5 s");

    for (int i = 0; i < 10; i++) {
        fanta_response *response = NULL;
        CHECK_STATUS(fanta_pool_request(pool, (const uint8_t *)"x", 1, 0, &response),
                     FANTA_STATUS_OK);
        fanta_response_free(response);
    }
    fanta_pool_close(pool);
    fanta_response *response = NULL;
    CHECK_STATUS(fanta_pool_request(pool, (const uint8_t *)"x", 1, 0, &response),
                 FANTA_STATUS_POOL_CLOSED);

    fanta_stats stats;
    CHECK_STATUS(fanta_pool_stats(pool, &stats), FANTA_STATUS_OK);
    CHECK(stats.configured == 3, "configured %zu", stats.configured);
    CHECK(stats.completed == 10, "completed %llu", (unsigned long long)stats.completed);
    CHECK(stats.errors.pool_closed == 1, "pool_closed %llu",
          (unsigned long long)stats.errors.pool_closed);
    CHECK(stats.errors_total == 1, "errors_total %llu", (unsigned long long)stats.errors_total);
    CHECK(stats.in_flight == 0, "in_flight %llu", (unsigned long long)stats.in_flight);

    const char *address = NULL;
    fanta_server_address(server, &address);
    fanta_connection_stats entries[2];
    size_t count = 0;
    CHECK_STATUS(fanta_pool_connection_stats(pool, entries, 2, &count), FANTA_STATUS_OK);
    CHECK(count == 3, "count %zu, expected 3 even with room for 2", count);
    for (int i = 0; i < 2; i++) {
        /* Closing does not wait for the connection tasks, so a slot may still be draining. */
        CHECK(entries[i].state == FANTA_CONNECTION_STATE_CLOSED ||
                  entries[i].state == FANTA_CONNECTION_STATE_DRAINING,
              "entry %d is %s after close", i, fanta_connection_state_name(entries[i].state));
        CHECK(strcmp(entries[i].address, address) == 0, "entry %d address %s", i,
              entries[i].address);
        CHECK(entries[i].in_flight == 0, "entry %d in flight %u", i, entries[i].in_flight);
    }

    uint64_t received = 0;
    fanta_server_requests_received(server, &received);
    CHECK(received == 10, "server received %llu", (unsigned long long)received);
    fanta_pool_free(pool);
    fanta_server_free(server);
}

static void no_connection_when_not_waiting(void) {
    /* A port that was bound and released, so nothing listens on it. */
    fanta_server *server = NULL;
    const char *address = NULL;
    char closed_address[64];
    fanta_server_start(NULL, &server);
    fanta_server_address(server, &address);
    snprintf(closed_address, sizeof closed_address, "%s", address);
    fanta_server_free(server);

    fanta_config *config = NULL;
    fanta_pool *pool = NULL;
    fanta_config_new(&config);
    fanta_config_add_address(config, closed_address);
    fanta_config_set_wait_for_connection(config, false);
    CHECK_STATUS(fanta_pool_open(config, &pool), FANTA_STATUS_OK);
    fanta_config_free(config);

    fanta_response *response = NULL;
    CHECK_STATUS(fanta_pool_request(pool, (const uint8_t *)"x", 1, 1000, &response),
                 FANTA_STATUS_NO_CONNECTION);
    CHECK(response == NULL, "response_out was written on failure");
    fanta_pool_free(pool);

    /* Waiting instead: the deadline passes with nothing to route to. */
    fanta_config_new(&config);
    fanta_config_add_address(config, closed_address);
    fanta_pool_open(config, &pool);
    fanta_config_free(config);
    bool connected = true;
    CHECK_STATUS(fanta_pool_wait_connected(pool, 1, 100, &connected), FANTA_STATUS_OK);
    CHECK(!connected, "connected to a port nothing listens on");

    double started = now_seconds();
    CHECK_STATUS(fanta_pool_request(pool, (const uint8_t *)"x", 1, 200, &response),
                 FANTA_STATUS_NO_CONNECTION);
    double elapsed = now_seconds() - started;
    CHECK(elapsed >= 0.15, "gave up after %.3f s, before the 200 ms deadline", elapsed);
    CHECK(elapsed < 5.0, "waited %.3f s for a 200 ms deadline", elapsed);
    fanta_pool_free(pool);
}

static void dropped_connections_reconnect(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 2)) {
        CHECK(0, "setup failed");
        return;
    }
    bool connected = false;
    CHECK_STATUS(fanta_pool_wait_connected(pool, 2, 5000, &connected), FANTA_STATUS_OK);
    CHECK(connected, "2 connections not up within 5 s");

    CHECK_STATUS(fanta_server_drop_connections(server), FANTA_STATUS_OK);

    /* Both slots reconnect on their own; a request sent before that may fail as disconnected. */
    fanta_stats stats = {0};
    for (int i = 0; i < 500 && stats.reconnects < 2; i++) {
        usleep(10000);
        CHECK_STATUS(fanta_pool_stats(pool, &stats), FANTA_STATUS_OK);
    }
    CHECK(stats.reconnects == 2, "reconnects %llu after 5 s", (unsigned long long)stats.reconnects);

    fanta_response *response = NULL;
    CHECK_STATUS(fanta_pool_request(pool, (const uint8_t *)"PING", 4, 5000, &response),
                 FANTA_STATUS_OK);
    fanta_response_free(response);
    CHECK_STATUS(fanta_pool_wait_connected(pool, 2, 5000, &connected), FANTA_STATUS_OK);
    CHECK(connected, "2 connections not back within 5 s");
    fanta_pool_free(pool);
    fanta_server_free(server);
}

struct thread_error {
    const char *argument;
    int matched;
};

static void *fail_with_own_argument(void *arg) {
    struct thread_error *error = arg;
    for (int i = 0; i < 1000; i++) {
        if (strcmp(error->argument, "config") == 0) {
            fanta_config_add_address(NULL, "h:1");
        } else {
            fanta_pool_stats(NULL, NULL);
        }
        char expected[64];
        snprintf(expected, sizeof expected, "%s is NULL", error->argument);
        if (strstr(fanta_last_error_message(), expected) != NULL) {
            error->matched++;
        }
    }
    return NULL;
}

static void last_error_is_per_thread(void) {
    struct thread_error errors[2] = {{"config", 0}, {"pool", 0}};
    pthread_t threads[2];
    for (int i = 0; i < 2; i++) {
        pthread_create(&threads[i], NULL, fail_with_own_argument, &errors[i]);
    }
    for (int i = 0; i < 2; i++) {
        pthread_join(threads[i], NULL);
        CHECK(errors[i].matched == 1000, "thread %d read its own message %d of 1000 times", i,
              errors[i].matched);
    }
}

struct callback_probe {
    fanta_pool *pool;
    pthread_t submitter;
    bool ran_on_submitter;
    fanta_status blocking_status;
    fanta_status wait_status;
    fanta_status submit_status;
    fanta_status stats_status;
    fanta_status server_status;
    char message[256];
    atomic_int done;
};

static void probe_blocking_calls(void *user_data, fanta_status status, const uint8_t *response,
                                 size_t response_len, const char *error_message) {
    (void)status, (void)response, (void)response_len, (void)error_message;
    struct callback_probe *probe = user_data;
    probe->ran_on_submitter = pthread_equal(pthread_self(), probe->submitter);
    fanta_response *nested = NULL;
    probe->blocking_status =
        fanta_pool_request(probe->pool, (const uint8_t *)"x", 1, 1000, &nested);
    snprintf(probe->message, sizeof probe->message, "%s", fanta_last_error_message());
    bool connected = false;
    probe->wait_status = fanta_pool_wait_connected(probe->pool, 1, 1000, &connected);
    probe->submit_status =
        fanta_pool_submit(probe->pool, (const uint8_t *)"y", 1, 0, never_called, NULL);
    fanta_stats stats;
    probe->stats_status = fanta_pool_stats(probe->pool, &stats);
    fanta_server *server = NULL;
    probe->server_status = fanta_server_start(NULL, &server);
    fanta_server_free(server);
    fanta_response_free(nested);
    atomic_store(&probe->done, 1);
}

static void blocking_call_in_callback_fails(void) {
    fanta_server *server = NULL;
    struct callback_probe probe = {0};
    if (!open_server_and_pool(&server, &probe.pool, 1)) {
        CHECK(0, "setup failed");
        return;
    }
    int before = atomic_load(&never_called_count);
    probe.submitter = pthread_self();

    CHECK_STATUS(fanta_pool_submit(probe.pool, (const uint8_t *)"x", 1, 5000,
                                   probe_blocking_calls, &probe),
                 FANTA_STATUS_OK);
    for (int i = 0; i < 500 && !atomic_load(&probe.done); i++) {
        usleep(10000);
    }
    CHECK(atomic_load(&probe.done), "callback did not run within 5 s");
    CHECK(!probe.ran_on_submitter, "callback ran on the submitting thread");
    CHECK(probe.blocking_status == FANTA_STATUS_BLOCKING_IN_RUNTIME, "request returned %s",
          fanta_status_name(probe.blocking_status));
    CHECK(strstr(probe.message, "fanta_pool_request") != NULL, "message \"%s\"", probe.message);
    CHECK(probe.wait_status == FANTA_STATUS_BLOCKING_IN_RUNTIME, "wait returned %s",
          fanta_status_name(probe.wait_status));
    CHECK(probe.submit_status == FANTA_STATUS_OK, "submit returned %s",
          fanta_status_name(probe.submit_status));
    CHECK(probe.stats_status == FANTA_STATUS_OK, "stats returned %s",
          fanta_status_name(probe.stats_status));
    CHECK(probe.server_status == FANTA_STATUS_IO, "server start returned %s",
          fanta_status_name(probe.server_status));

    /* The nested submission's completion arrives too. */
    for (int i = 0; i < 500 && atomic_load(&never_called_count) == before; i++) {
        usleep(10000);
    }
    CHECK(atomic_load(&never_called_count) == before + 1, "nested completion missing");
    atomic_store(&never_called_count, 0);
    fanta_pool_free(probe.pool);
    fanta_server_free(server);
}

static atomic_int freed_in_callback;

static void free_own_pool(void *user_data, fanta_status status, const uint8_t *response,
                          size_t response_len, const char *error_message) {
    (void)status, (void)response, (void)response_len, (void)error_message;
    fanta_pool_free(user_data);
    atomic_store(&freed_in_callback, 1);
}

static void pool_freed_in_own_callback(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 1)) {
        CHECK(0, "setup failed");
        return;
    }
    CHECK_STATUS(fanta_pool_submit(pool, (const uint8_t *)"x", 1, 5000, free_own_pool, pool),
                 FANTA_STATUS_OK);
    for (int i = 0; i < 500 && !atomic_load(&freed_in_callback); i++) {
        usleep(10000);
    }
    CHECK(atomic_load(&freed_in_callback), "callback did not free the pool within 5 s");
    fanta_server_free(server);
}

static void submit_after_close_is_rejected(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 1)) {
        CHECK(0, "setup failed");
        return;
    }
    CHECK_STATUS(fanta_pool_close(pool), FANTA_STATUS_OK);
    CHECK_STATUS(fanta_pool_close(pool), FANTA_STATUS_OK);
    CHECK_STATUS(fanta_pool_submit(pool, (const uint8_t *)"x", 1, 0, never_called, NULL),
                 FANTA_STATUS_POOL_CLOSED);
    usleep(50000);
    CHECK(atomic_load(&never_called_count) == 0, "a rejected submission ran its callback");
    fanta_pool_free(pool);
    fanta_server_free(server);
}

int main(void) {
    RUN_CASE(version_macros_match_library);
    RUN_CASE(status_names_are_stable);
    RUN_CASE(config_functions_reject_null);
    RUN_CASE(pool_open_rejects_invalid_settings);
    RUN_CASE(pool_functions_reject_null_and_invalid);
    RUN_CASE(server_functions_reject_null_and_invalid);
    RUN_CASE(blocking_request_echoes_payload);
    RUN_CASE(stats_count_requests_and_connections);
    RUN_CASE(no_connection_when_not_waiting);
    RUN_CASE(dropped_connections_reconnect);
    RUN_CASE(last_error_is_per_thread);
    RUN_CASE(blocking_call_in_callback_fails);
    RUN_CASE(submit_after_close_is_rejected);
    RUN_CASE(pool_freed_in_own_callback);
    return finish();
}
