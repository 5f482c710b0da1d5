/*
 * The cheapest possible "middle process", for the floor rows of
 * `mix muontrap.bench`: any design that puts a process between the BEAM
 * and the command (MuonTrap's port binary, the C original's) costs at
 * least this much.
 *
 *   floor PROGRAM ARGS...           posix_spawnp + waitpid, nothing else
 *   floor --relay PROGRAM ARGS...   the same with the program's stdout
 *                                   moved to ours by splice(2): a second
 *                                   pipe hop without flow control
 *   floor --idle                    an idle dynamically linked C program
 *                                   (RSS floor); exits at EOF on stdin
 *   floor --resident                the least a resident spawner with a
 *                                   containment process per command can
 *                                   cost: per request line "ID PROGRAM
 *                                   ARGS..." on stdin (space separated),
 *                                   it forks a child, which posix_spawnp's
 *                                   the program with stdout on a pipe,
 *                                   collects the output, waits, and writes
 *                                   "ID STATUS HEXOUTPUT" as one line to
 *                                   stdout; requests run concurrently and
 *                                   the resident reaps its children as
 *                                   SIGCHLD arrives; exits at EOF on stdin
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static int wait_status(pid_t pid)
{
    int status;

    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static void relay(int from)
{
    char buf[65536];

    for (;;) {
        ssize_t n = splice(from, NULL, 1, NULL, 1 << 20, SPLICE_F_MOVE);
        if (n > 0)
            continue;
        if (n == 0)
            return;
        if (errno == EINTR)
            continue;
        break; /* stdout refuses splice: copy */
    }
    for (;;) {
        ssize_t n = read(from, buf, sizeof buf);
        if (n == 0)
            return;
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(1, buf + off, n - off);
            if (w < 0 && errno != EINTR)
                return;
            if (w > 0)
                off += w;
        }
    }
}

/* Output kept per request: one reply line stays below PIPE_BUF, so the
 * concurrent children's writes to the shared stdout never interleave. */
#define OUT_MAX 1500
#define LINE_MAX_ 4096

static volatile sig_atomic_t got_chld;

static void on_chld(int sig)
{
    (void)sig;
    got_chld = 1;
}

/* The per-request child: spawn, collect, wait, report, _exit. */
static void serve(char *line)
{
    char *argv[64], *save = NULL, *id = strtok_r(line, " ", &save);
    char out[OUT_MAX], reply[LINE_MAX_];
    posix_spawn_file_actions_t fa;
    size_t len = 0;
    int p[2], argc = 0, n;
    pid_t pid;

    signal(SIGCHLD, SIG_DFL);
    while (argc < 63 && (argv[argc] = strtok_r(NULL, " ", &save)) != NULL)
        argc++;
    argv[argc] = NULL;
    if (id == NULL || argc == 0 || pipe(p) < 0)
        _exit(2);
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, p[1], 1);
    posix_spawn_file_actions_addclose(&fa, p[0]);
    posix_spawn_file_actions_addclose(&fa, p[1]);
    if (posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ) != 0) {
        n = snprintf(reply, sizeof reply, "%s 127 \n", id);
        _exit(write(1, reply, n) == n ? 0 : 1);
    }
    close(p[1]);
    for (;;) {
        char buf[4096];
        ssize_t r = read(p[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        for (ssize_t i = 0; i < r && len < OUT_MAX; i++)
            out[len++] = buf[i];
    }
    n = snprintf(reply, sizeof reply, "%s %d ", id, wait_status(pid));
    for (size_t i = 0; i < len; i++)
        n += snprintf(reply + n, sizeof reply - n, "%02x", (unsigned char)out[i]);
    reply[n++] = '\n';
    _exit(write(1, reply, n) == n ? 0 : 1);
}

static void reap(void)
{
    got_chld = 0;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

static int resident(void)
{
    struct sigaction sa;
    char buf[LINE_MAX_];
    size_t have = 0;

    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_chld; /* no SA_RESTART: SIGCHLD interrupts read() */
    sigaction(SIGCHLD, &sa, NULL);
    for (;;) {
        ssize_t r;

        if (got_chld)
            reap();
        r = read(0, buf + have, sizeof buf - have);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        have += r;
        for (char *nl; (nl = memchr(buf, '\n', have)) != NULL;) {
            size_t used = nl - buf + 1;

            *nl = '\0';
            if (fork() == 0)
                serve(buf);
            memmove(buf, buf + used, have - used);
            have -= used;
        }
        if (have == sizeof buf)
            return 2;
    }
    while (wait(NULL) > 0 || errno == EINTR)
        ;
    return 0;
}

int main(int argc, char **argv)
{
    pid_t pid;

    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "--idle") == 0) {
        char c;
        while (read(0, &c, 1) > 0)
            ;
        return 0;
    }
    if (strcmp(argv[1], "--resident") == 0)
        return resident();
    if (strcmp(argv[1], "--relay") == 0) {
        posix_spawn_file_actions_t fa;
        int p[2];

        if (argc < 3 || pipe(p) < 0)
            return 2;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_adddup2(&fa, p[1], 1);
        posix_spawn_file_actions_addclose(&fa, p[0]);
        posix_spawn_file_actions_addclose(&fa, p[1]);
        if (posix_spawnp(&pid, argv[2], &fa, NULL, argv + 2, environ) != 0)
            return 127;
        close(p[1]);
        relay(p[0]);
        return wait_status(pid);
    }
    if (posix_spawnp(&pid, argv[1], NULL, NULL, argv + 1, environ) != 0)
        return 127;
    return wait_status(pid);
}
