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
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
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
