#include "common/caps.h"

#include <linux/capability.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace egressd {
namespace {

constexpr int kCapBpf = 39;  // not in Debian 12's older libc headers' view

bool effective(const __user_cap_data_struct data[2], int cap) {
  return (data[cap / 32].effective >> (cap % 32)) & 1u;
}

}  // namespace

Status check_bpf_privileges() {
  __user_cap_header_struct hdr{_LINUX_CAPABILITY_VERSION_3, 0};
  __user_cap_data_struct data[2]{};
  if (syscall(SYS_capget, &hdr, data) != 0) return sys_error("capget");
  bool bpf = effective(data, kCapBpf) || effective(data, CAP_SYS_ADMIN);
  bool net = effective(data, CAP_NET_ADMIN);
  if (bpf && net) return {};
  std::string missing;
  if (!bpf) missing += "CAP_BPF (or CAP_SYS_ADMIN)";
  if (!net) missing += std::string(missing.empty() ? "" : " and ") + "CAP_NET_ADMIN";
  return logic_error("missing " + missing + ": run egressd as root (sudo) or grant these capabilities");
}

}  // namespace egressd
