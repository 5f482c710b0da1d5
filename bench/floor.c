/*
 * The cheapest possible "middle process", for the floor rows of
 * `mix muontrap.bench`: any design that puts a process between the BEAM
 * and the command (MuonTrap's port binary, the C original's) costs at
 * least this much.
 *
 *   floor PROGRAM ARGS...   posix_spawnp + waitpid, nothing else
 *   floor --idle            an idle dynamically linked C program (RSS floor)
 */
#include <spawn.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

int main(int argc, char **argv)
{
    pid_t pid;
    int status;

    if (argc < 2)
        return 2;
    if (strcmp(argv[1], "--idle") == 0) {
        /* Exits when the BEAM closes the port (EOF on stdin). */
        char c;
        while (read(0, &c, 1) > 0)
            ;
        return 0;
    }
    if (posix_spawnp(&pid, argv[1], NULL, NULL, argv + 1, environ) != 0)
        return 127;
    if (waitpid(pid, &status, 0) < 0)
        return 127;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
