/* fork() after using libfanta: in the child, the parent's pool and server fail with
 * FANTA_STATUS_FORKED at once instead of hanging, and a pool opened in the child works. The
 * parent's pool keeps working. An alarm in the child turns a hang into a failure.
 *
 * The child reports its failed checks through a pipe rather than its exit status, because under
 * valgrind the exit status of a child is valgrind's: the child's copies of the parent's runtime
 * memory count as leaked there. */
#include <signal.h>
#include <stdbool.h>
#include <sys/wait.h>
#include <unistd.h>

#include "check.h"

/* Seconds the child may take before SIGALRM ends it. */
#define CHILD_TIME_LIMIT 30

static int request_ping(fanta_pool *pool, fanta_status *status_out) {
    fanta_response *response = NULL;
    *status_out = fanta_pool_request(pool, (const uint8_t *)"PING", 4, 5000, &response);
    int pong = *status_out == FANTA_STATUS_OK && fanta_response_len(response) == 4 &&
               memcmp(fanta_response_data(response), "PONG", 4) == 0;
    fanta_response_free(response);
    return pong;
}

static void ignore_completion(void *user_data, fanta_status status, const uint8_t *response,
                              size_t response_len, const char *error_message) {
    (void)user_data, (void)status, (void)response, (void)response_len, (void)error_message;
}

/* Runs in the child; returns the number of failed checks, as the exit code. */
static int child_checks(fanta_pool *inherited, fanta_server *server, const char *address) {
    int failures = 0;
    fanta_status status;

    fanta_response *response = NULL;
    status = fanta_pool_request(inherited, (const uint8_t *)"PING", 4, 5000, &response);
    if (status != FANTA_STATUS_FORKED || response != NULL) {
        fprintf(stderr, "  child: inherited pool request returned %s\n",
                fanta_status_name(status));
        failures++;
    }
    if (strstr(fanta_last_error_message(), "fork") == NULL) {
        fprintf(stderr, "  child: message \"%s\" does not mention fork\n",
                fanta_last_error_message());
        failures++;
    }
    status = fanta_pool_submit(inherited, (const uint8_t *)"x", 1, 0, ignore_completion, NULL);
    if (status != FANTA_STATUS_FORKED) {
        fprintf(stderr, "  child: inherited pool submit returned %s\n", fanta_status_name(status));
        failures++;
    }
    bool connected = true;
    status = fanta_pool_wait_connected(inherited, 1, 1000, &connected);
    if (status != FANTA_STATUS_FORKED) {
        fprintf(stderr, "  child: inherited pool wait returned %s\n", fanta_status_name(status));
        failures++;
    }
    fanta_stats stats;
    status = fanta_pool_stats(inherited, &stats);
    if (status != FANTA_STATUS_FORKED) {
        fprintf(stderr, "  child: inherited pool stats returned %s\n", fanta_status_name(status));
        failures++;
    }
    status = fanta_server_stop(server);
    if (status != FANTA_STATUS_FORKED) {
        fprintf(stderr, "  child: inherited server stop returned %s\n", fanta_status_name(status));
        failures++;
    }

    /* A pool opened in the child gets fresh library threads and reaches the parent's server. */
    fanta_config *config = NULL;
    fanta_pool *fresh = NULL;
    fanta_config_new(&config);
    fanta_config_add_address(config, address);
    fanta_config_set_connections_per_address(config, 1);
    status = fanta_pool_open(config, &fresh);
    fanta_config_free(config);
    if (status != FANTA_STATUS_OK || !request_ping(fresh, &status)) {
        fprintf(stderr, "  child: fresh pool request returned %s: %s\n",
                fanta_status_name(status), fanta_last_error_message());
        failures++;
    }
    fanta_pool_free(fresh);
    fanta_pool_free(inherited);
    fanta_server_free(server);
    return failures;
}

static void forked_child_gets_forked_status(void) {
    fanta_server *server = NULL;
    fanta_pool *pool = NULL;
    if (!open_server_and_pool(&server, &pool, 2)) {
        CHECK(0, "setup failed");
        return;
    }
    const char *address = NULL;
    fanta_server_address(server, &address);
    fanta_status status;
    CHECK(request_ping(pool, &status), "parent request before fork returned %s",
          fanta_status_name(status));

    int report[2];
    CHECK(pipe(report) == 0, "pipe failed");
    fflush(stdout);
    fflush(stderr);
    pid_t child = fork();
    if (child == 0) {
        alarm(CHILD_TIME_LIMIT);
        close(report[0]);
        int failures = child_checks(pool, server, address);
        ssize_t written = write(report[1], &failures, sizeof failures);
        _exit(written == (ssize_t)sizeof failures && failures == 0 ? 0 : 1);
    }
    CHECK(child > 0, "fork failed");
    close(report[1]);

    CHECK(request_ping(pool, &status), "parent request after fork returned %s",
          fanta_status_name(status));

    int wait_status = 0;
    CHECK(waitpid(child, &wait_status, 0) == child, "waitpid failed");
    CHECK(!WIFSIGNALED(wait_status), "child killed by signal %d%s", WTERMSIG(wait_status),
          WTERMSIG(wait_status) == SIGALRM ? " (it hung)" : "");
    int child_failures = -1;
    ssize_t received = read(report[0], &child_failures, sizeof child_failures);
    close(report[0]);
    CHECK(received == (ssize_t)sizeof child_failures, "child ended without reporting");
    CHECK(child_failures == 0, "child reported %d failed checks", child_failures);

    fanta_pool_free(pool);
    fanta_server_free(server);
}

int main(void) {
    RUN_CASE(forked_child_gets_forked_status);
    return finish();
}
