#include "bpf/fence.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <map>

#include "bpf/loader.h"
#include "common/unique_fd.h"

namespace egressd {
namespace {

struct LinkInfo {
  uint32_t prog_id = 0;
  uint32_t attach_type = 0;
  uint64_t cgroup_id = 0;  // 0 once the cgroup is gone (a defunct link)
};

Result<LinkInfo> pinned_link_info(const PinLayout& pins, const std::string& prog) {
  std::string path = pins.link(prog);
  UniqueFd fd(bpf_obj_get(path.c_str()));
  if (!fd.valid()) return sys_error("open " + path);
  bpf_link_info info{};
  __u32 len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd.get(), &info, &len) != 0) return sys_error("inspect " + path);
  return LinkInfo{info.prog_id, info.cgroup.attach_type, info.cgroup.cgroup_id};
}

// Program ids attached directly to the cgroup for one attach type.
Result<std::vector<uint32_t>> attached_progs(int cgroup_fd, uint32_t attach_type) {
  std::vector<uint32_t> ids(64);
  for (int attempt = 0; attempt < 4; ++attempt) {
    __u32 cnt = static_cast<__u32>(ids.size());
    __u32 flags = 0;
    int rc = bpf_prog_query(cgroup_fd, static_cast<bpf_attach_type>(attach_type), 0, &flags, ids.data(), &cnt);
    if (rc == 0) {
      ids.resize(cnt);
      return ids;
    }
    if (errno != ENOSPC) return sys_error("BPF_PROG_QUERY");
    ids.resize(std::max<size_t>(cnt, ids.size() * 2));
  }
  return logic_error("BPF_PROG_QUERY: the list of attached programs keeps growing");
}

// Undoes a half-made move: links cut, pins and the directory removed.
void remove_new_pins(const PinLayout& to, std::vector<UniqueFd>& links) {
  for (UniqueFd& l : links) bpf_link_detach(l.get());
  links.clear();
  for (const std::string& prog : program_names()) unlink(to.link(prog).c_str());
}

}  // namespace

std::string_view fence_state_name(FenceCheck::State s) {
  switch (s) {
    case FenceCheck::State::kEnforcing: return "enforcing";
    case FenceCheck::State::kUnfenced: return "unfenced";
    case FenceCheck::State::kStale: return "stale";
  }
  return "?";
}

FenceCheck check_fence(const PinLayout& pins, const std::string& cgroup_path, const std::vector<uint64_t>& pinned) {
  FenceCheck c;
  UniqueFd cg(open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.valid()) {
    int err = errno;
    if (err == ENOENT) {
      c.state = FenceCheck::State::kStale;
      c.reason = "cgroup " + cgroup_path + " no longer exists";
    } else {
      c.reason = sys_error("cannot open " + cgroup_path, err).message();
    }
    return c;
  }
  struct stat st {};
  if (fstat(cg.get(), &st) != 0) {
    c.reason = sys_error("stat " + cgroup_path).message();
    return c;
  }
  c.current_id = st.st_ino;
  std::string id = std::to_string(pins.cgroup_id), now = std::to_string(c.current_id);
  if (c.current_id != pins.cgroup_id) {
    if (std::find(pinned.begin(), pinned.end(), c.current_id) != pinned.end()) {
      c.state = FenceCheck::State::kStale;
      c.reason = "cgroup id " + id + " is gone; " + cgroup_path + " is now cgroup id " + now +
                 ", which has its own attachment";
    } else {
      c.reason = cgroup_path + " was made again (now cgroup id " + now + "; the fence was on id " + id +
                 ", which is gone) and nothing is attached to it";
    }
    return c;
  }
  std::map<uint32_t, std::vector<uint32_t>> by_type;  // one query per attach type
  std::string missing;
  const std::vector<std::string>& progs = program_names();
  for (const std::string& prog : progs) {
    auto link = pinned_link_info(pins, prog);
    bool ok = false;
    if (link) {
      auto it = by_type.find(link->attach_type);
      if (it == by_type.end()) {
        auto ids = attached_progs(cg.get(), link->attach_type);
        if (!ids) {
          c.reason = ids.error().message();
          return c;
        }
        it = by_type.emplace(link->attach_type, std::move(*ids)).first;
      }
      ok = std::find(it->second.begin(), it->second.end(), link->prog_id) != it->second.end();
    }
    if (ok) {
      ++c.attached;
    } else {
      missing += (missing.empty() ? "" : ", ") + prog;
    }
  }
  if (missing.empty()) {
    c.state = FenceCheck::State::kEnforcing;
  } else {
    c.reason = std::to_string(progs.size() - static_cast<size_t>(c.attached)) + " of " + std::to_string(progs.size()) +
               " programs are not attached to " + cgroup_path + ": " + missing;
  }
  return c;
}

Result<MovedFence> move_fence(const MapFds& maps, const PinLayout& from, int cgroup_fd, uint64_t new_id,
                              const std::map<std::string, UniqueFd>* loaded) {
  // Everything the move needs is read before anything changes.
  struct Prog {
    std::string name;
    UniqueFd fd;
    uint32_t attach_type;
  };
  std::vector<Prog> progs;
  for (const std::string& name : program_names()) {
    auto link = pinned_link_info(from, name);
    if (!link) return link.error();
    auto own = loaded ? loaded->find(name) : decltype(loaded->end()){};
    UniqueFd fd(loaded && own != loaded->end() ? fcntl(own->second.get(), F_DUPFD_CLOEXEC, 3)
                                               : bpf_prog_get_fd_by_id(link->prog_id));
    if (!fd.valid()) return sys_error("open program " + name);
    progs.push_back({name, std::move(fd), link->attach_type});
  }
  std::vector<std::pair<std::string, UniqueFd>> map_pins;  // every map of the attachment, as pinned in `from`
  for (const std::string& name : map_names()) {
    UniqueFd fd(bpf_obj_get(from.map(name).c_str()));
    if (!fd.valid()) return sys_error("open pinned map " + from.map(name));
    map_pins.emplace_back(name, std::move(fd));
  }
  auto meta = read_meta(maps);
  if (!meta) return meta.error();

  PinLayout to = pins_for(new_id);
  if (mkdir(to.dir.c_str(), 0700) != 0)
    return sys_error("create pin directory " + to.dir + (errno == EEXIST ? " (another attachment has it)" : ""));
  std::vector<UniqueFd> links;
  auto undo = [&](Error e) -> Result<MovedFence> {
    remove_new_pins(to, links);
    for (const auto& [name, fd] : map_pins) unlink(to.map(name).c_str());
    rmdir(to.dir.c_str());
    (void)write_meta(maps, *meta);
    return e;
  };
  // egd_meta first: the new pins are never visible naming the old cgroup.
  egd_meta moved = *meta;
  moved.cgroup_id = new_id;
  moved.reattached += 1;
  if (auto s = write_meta(maps, moved); !s) return undo(s.error());
  for (const auto& [name, fd] : map_pins) {
    if (bpf_obj_pin(fd.get(), to.map(name).c_str()) != 0) return undo(sys_error("pin map " + to.map(name)));
  }
  // The loader's order: socket creation first, the connect hooks last.
  for (Prog& p : progs) {
    UniqueFd link(bpf_link_create(p.fd.get(), cgroup_fd, static_cast<bpf_attach_type>(p.attach_type), nullptr));
    if (!link.valid()) return undo(sys_error("attach " + p.name + " to the new cgroup"));
    if (bpf_obj_pin(link.get(), to.link(p.name).c_str()) != 0) {
      links.push_back(std::move(link));
      return undo(sys_error("pin link " + to.link(p.name)));
    }
    links.push_back(std::move(link));
  }
  // The old directory names a cgroup that is gone: its links are defunct,
  // its map pins are duplicates of the new ones.
  MovedFence out{to, {}};
  if (auto s = detach_cgroup(from.cgroup_id); !s) out.warning = "removing the old pins: " + s.error().message();
  return out;
}

}  // namespace egressd
