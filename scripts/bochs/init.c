// PID 1 of the Bochs guest of scripts/run-in-bochs.sh, which builds it (static).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static void say(const char *s) { (void)!write(1, s, strlen(s)); }

// A file of NUL-terminated strings as a NULL-terminated array.
static char **read_list(const char *path) {
  size_t size = 0, cap = 1 << 16;
  char *buf = malloc(cap);
  int fd = open(path, O_RDONLY);
  if (fd >= 0) {
    for (;;) {
      if (size == cap) buf = realloc(buf, cap *= 2);
      ssize_t n = read(fd, buf + size, cap - size);
      if (n <= 0) break;
      size += (size_t)n;
    }
    close(fd);
  }
  size_t count = 0;
  for (size_t i = 0; i < size; i++) count += buf[i] == '\0';
  char **list = calloc(count + 1, sizeof *list);
  for (size_t i = 0, k = 0; k < count; k++) {
    list[k] = buf + i;
    i += strlen(buf + i) + 1;
  }
  return list;
}

int main(void) {
  mkdir("/dev", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  int fd = open("/dev/console", O_RDWR);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
  }
  mkdir("/proc", 0555);
  mount("proc", "/proc", "proc", 0, NULL);
  mkdir("/sys", 0555);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
  mkdir("/tmp", 01777);
  mkdir("/dev/shm", 01777);
  mount("tmpfs", "/dev/shm", "tmpfs", 0, NULL);

  char **argv = read_list("/bochs/argv"); // the path to run, then argv
  char **envp = read_list("/bochs/env");
  if (chdir("/work") != 0) say("init: cannot enter /work\n");
  say("\n@@BOCHS-BEGIN@@\n");
  int code = 125;
  pid_t pid = argv[0] && argv[1] ? fork() : -1;
  if (pid == 0) {
    int null = open("/dev/null", O_RDONLY);
    if (null >= 0) dup2(null, 0);
    execve(argv[0], argv + 1, envp);
    fprintf(stderr, "init: cannot run %s: %s\n", argv[0], strerror(errno));
    _exit(127);
  }
  if (pid > 0) {
    int status;
    for (;;) {
      pid_t w = waitpid(-1, &status, 0);
      if (w == pid) break;
      if (w < 0 && errno != EINTR) {
        status = -1;
        break;
      }
    }
    if (status == -1) {
      fprintf(stderr, "init: waitpid: %s\n", strerror(errno));
    } else if (WIFEXITED(status)) {
      code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
      code = 128 + WTERMSIG(status);
      fprintf(stderr, "init: %s killed by signal %d (%s)%s\n", argv[1], WTERMSIG(status),
              strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    }
  } else {
    fprintf(stderr, "init: fork: %s\n", strerror(errno));
  }
  char line[64];
  snprintf(line, sizeof line, "@@BOCHS-EXIT-STATUS=%d@@\n", code);
  say(line);
  tcdrain(1); // the serial port has sent everything before the power goes
  sync();
  reboot(RB_POWER_OFF);
  for (;;) pause();
}
