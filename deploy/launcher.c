/* pycoredns-launcher: the image's entrypoint and its only file with cap_net_bind_service.
 *
 * It keeps the capability for the one program it starts and for nothing else: it moves the
 * capability from its permitted set into the ambient set (which survives an exec of a file
 * without capabilities), then execs `python -I -u -m pycoredns ARGS...` of the image's venv.
 * -I (isolated mode) ignores PYTHON* variables, the user site and the current directory, so the
 * capability cannot be borrowed to run other code. The general interpreter has no capability.
 * Started without the file capability (no_new_privs, or a runtime that drops it) the launcher
 * goes on without: binding a port below 1024 then fails with pycoredns's usual message.
 */
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef PYTHON
#define PYTHON "/opt/pycoredns/bin/python"
#endif

static void keep_bind_capability(void) {
    struct __user_cap_header_struct head = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    if (syscall(SYS_capget, &head, data) != 0)
        return;
    if (!(data[0].permitted & (1u << CAP_NET_BIND_SERVICE)))
        return;
    data[0].inheritable |= 1u << CAP_NET_BIND_SERVICE;
    if (syscall(SYS_capset, &head, data) != 0)
        return;
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0);
}

int main(int argc, char **argv) {
    char **args = calloc((size_t)argc + 5, sizeof *args);
    if (args == NULL)
        return 1;
    keep_bind_capability();
    args[0] = PYTHON;
    args[1] = "-I"; /* isolated: no PYTHON* variables (so -u for unbuffered logs), no user site, no cwd */
    args[2] = "-u";
    args[3] = "-m";
    args[4] = "pycoredns";
    for (int i = 1; i < argc; i++)
        args[i + 4] = argv[i];
    execv(PYTHON, args);
    perror("pycoredns-launcher: exec " PYTHON);
    return 127;
}
