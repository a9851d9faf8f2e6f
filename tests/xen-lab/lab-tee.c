/*
 * lab-tee.c - `tee FILE` for the Xen lab's dom0, with big reads.
 *
 *   lab-tee FILE     copy stdin to stdout and to FILE
 *
 * Captures the bytes of a live `xl migrate` between sender and receiver.
 * Busybox's tee moves 4 KiB per read() and write(); in a PV dom0 under
 * QEMU TCG every system call is slow, and that alone made a localhost
 * migration take ~110 s instead of ~15 s.  This one grows the input
 * pipe to 1 MiB and moves up to 1 MiB per call.
 *
 * Built by build-image.sh with the host's gcc, installed in dom0 as
 * /opt/xlmig/bin/lab-tee.  Exit status 0 only if every byte reached
 * both outputs.
 */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BUF_SIZE (1024 * 1024)

static int write_all(int fd, const char *buf, size_t len)
{
    ssize_t r;

    while (len) {
        r = write(fd, buf, len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        buf += r;
        len -= (size_t)r;
    }
    return 0;
}

int main(int argc, char **argv)
{
    char *buf;
    ssize_t r;
    int fd;

    if (argc != 2) {
        fprintf(stderr, "usage: lab-tee FILE\n");
        return 2;
    }
    fd = open(argv[1], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        fprintf(stderr, "lab-tee: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    buf = malloc(BUF_SIZE);
    if (!buf) {
        fprintf(stderr, "lab-tee: out of memory\n");
        return 1;
    }
    (void)fcntl(0, F_SETPIPE_SZ, BUF_SIZE); /* not a pipe: no matter */
    for (;;) {
        r = read(0, buf, BUF_SIZE);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "lab-tee: read: %s\n", strerror(errno));
            return 1;
        }
        if (r == 0)
            break;
        if (write_all(1, buf, (size_t)r) || write_all(fd, buf, (size_t)r)) {
            fprintf(stderr, "lab-tee: write: %s\n", strerror(errno));
            return 1;
        }
    }
    if (close(fd)) {
        fprintf(stderr, "lab-tee: %s: %s\n", argv[1], strerror(errno));
        return 1;
    }
    free(buf);
    return 0;
}
