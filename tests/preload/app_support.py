"""Running unmodified programs under `ivmc exec` for the tests and the benchmark (issue 17):
a host service of their own on a temporary socket, each process's library counters in a file
of its own (IVMC_PRELOAD_STATS), and the same programs on plain kernel TCP loopback."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time


class Host:
    """A temporary host socket; its service is stopped (by the pid in its lock file) at exit."""

    def __init__(self, ivmc):
        self.ivmc = ivmc
        self.dir = tempfile.mkdtemp(prefix="ivmc-apps.")
        self.socket = os.path.join(self.dir, "host.sock")
        self.counter = 0

    def close(self):
        lock = self.socket + ".lock"
        try:
            pid = int("".join(c for c in open(lock).read() if c.isdigit()))
            os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def command(self, argv, ring=True):
        """argv under `ivmc exec` (ring=True) or as is; and the counters file it will write."""
        self.counter += 1
        stats = os.path.join(self.dir, f"stats.{self.counter}")
        env = dict(os.environ, IVMC_PRELOAD_STATS=stats)
        if ring:
            argv = [self.ivmc, "exec", "--host", self.socket, "--"] + list(argv)
        return argv, env, stats


def read_stats(path):
    """The counters of every process that wrote to `path`, summed."""
    total = {}
    if not os.path.exists(path):
        return total
    for line in open(path):
        for item in line.split():
            key, _, value = item.partition("=")
            if key != "pid":
                total[key] = total.get(key, 0) + int(value)
    return total


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, proc, timeout=15.0):
    """Until something listens on `port`: checked through /proc/net/tcp, so that no test
    connection reaches the server (iperf3 -1 would take it for its client)."""
    want = f":{port:04X} "
    give_up = time.time() + timeout
    while time.time() < give_up:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                for line in open(table).readlines()[1:]:
                    fields = line.split()
                    if want.strip() in fields[1] and fields[3] == "0A":  # LISTEN
                        return
            except OSError:
                pass
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


def start_server(host, argv, port, ring=True):
    argv, env, stats = host.command(argv, ring)
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    wait_for_port(port, proc)
    return proc, stats


def stop_server(proc):
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGINT)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
