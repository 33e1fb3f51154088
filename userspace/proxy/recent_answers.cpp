#include "proxy/recent_answers.h"

#include <algorithm>

namespace egressd::proxy {
namespace {

constexpr int kPrunePerNote = 8;  // stale names dropped from the LRU end per note, so the work stays bounded

}  // namespace

bool RecentAnswers::stale(const Entry& e, Clock::time_point now) const {
  return std::all_of(e.addrs.begin(), e.addrs.end(), [&](const auto& a) { return a.second + opt_.max_grace < now; });
}

void RecentAnswers::note(std::string_view name, const std::vector<IpAddr>& addrs, std::chrono::seconds ttl,
                         Clock::time_point now) {
  if (addrs.empty() || opt_.max_names == 0 || opt_.max_addrs == 0) return;
  for (int i = 0; i < kPrunePerNote && !lru_.empty(); ++i) {
    auto it = entries_.find(lru_.back());
    if (!stale(it->second, now)) break;
    erase(it);
  }
  auto until = now + std::clamp(ttl, std::chrono::seconds(0), opt_.max_ttl);
  std::string key(name);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    while (entries_.size() >= opt_.max_names) erase(entries_.find(lru_.back()));  // bounded by max_names
    lru_.push_front(key);
    it = entries_.emplace(std::move(key), Entry{{}, lru_.begin()}).first;
  } else {
    lru_.splice(lru_.begin(), lru_, it->second.lru);
  }
  auto& list = it->second.addrs;
  std::erase_if(list, [&](const auto& a) { return a.second + opt_.max_grace < now; });
  for (const IpAddr& raw : addrs) {
    IpAddr a = raw.unmapped();
    auto found = std::find_if(list.begin(), list.end(), [&](const auto& x) { return x.first == a; });
    if (found != list.end()) {
      found->second = std::max(found->second, until);
      continue;
    }
    if (list.size() >= opt_.max_addrs) {
      // The address whose TTL ended first leaves.
      auto oldest = std::min_element(list.begin(), list.end(),
                                     [](const auto& x, const auto& y) { return x.second < y.second; });
      if (oldest->second >= until) continue;
      list.erase(oldest);
    }
    list.emplace_back(a, until);
  }
}

std::vector<IpAddr> RecentAnswers::within(std::string_view name, std::chrono::seconds grace,
                                          Clock::time_point now) const {
  std::vector<IpAddr> out;
  auto it = entries_.find(std::string(name));
  if (it == entries_.end()) return out;
  auto g = std::clamp(grace, std::chrono::seconds(0), opt_.max_grace);
  for (const auto& [addr, until] : it->second.addrs)
    if (until + g >= now) out.push_back(addr);
  return out;
}

void RecentAnswers::erase(std::unordered_map<std::string, Entry>::iterator it) {
  lru_.erase(it->second.lru);
  entries_.erase(it);
}

}  // namespace egressd::proxy
