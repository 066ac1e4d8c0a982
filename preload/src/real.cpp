// The C library's functions behind the interposed ones: see real.hpp.
#include "real.hpp"

#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

namespace ivmc::preload::real {
namespace {

template <class F>
void resolve(F& slot, const char* name) {
  slot = reinterpret_cast<F>(::dlsym(RTLD_NEXT, name));
  if (slot == nullptr) {
    std::fprintf(stderr, "ivmc-preload: the C library has no %s; cannot run\n", name);
    std::abort();
  }
}

Functions load() {
  Functions f{};
  resolve(f.connect, "connect");
  resolve(f.listen, "listen");
  resolve(f.accept, "accept");
  resolve(f.accept4, "accept4");
  resolve(f.close, "close");
  resolve(f.shutdown, "shutdown");
  resolve(f.dup, "dup");
  resolve(f.dup2, "dup2");
  resolve(f.dup3, "dup3");
  resolve(f.fcntl, "fcntl");
  resolve(f.ioctl, "ioctl");
  resolve(f.read, "read");
  resolve(f.write, "write");
  resolve(f.readv, "readv");
  resolve(f.writev, "writev");
  resolve(f.send, "send");
  resolve(f.recv, "recv");
  resolve(f.sendto, "sendto");
  resolve(f.recvfrom, "recvfrom");
  resolve(f.sendmsg, "sendmsg");
  resolve(f.recvmsg, "recvmsg");
  resolve(f.poll, "poll");
  resolve(f.ppoll, "ppoll");
  resolve(f.select, "select");
  resolve(f.pselect, "pselect");
  resolve(f.epoll_ctl, "epoll_ctl");
  resolve(f.epoll_wait, "epoll_wait");
  resolve(f.epoll_pwait, "epoll_pwait");
  resolve(f.execve, "execve");
  resolve(f.execv, "execv");
  resolve(f.execvp, "execvp");
  resolve(f.execvpe, "execvpe");
  resolve(f.fexecve, "fexecve");
  return f;
}

} // namespace

const Functions& fn() {
  static const Functions functions = load(); // a C++ static: initialised once, thread-safe
  return functions;
}

} // namespace ivmc::preload::real
