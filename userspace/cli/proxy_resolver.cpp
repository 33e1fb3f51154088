#include "cli/proxy_resolver.h"

namespace egressd::cli {
namespace {

// Placeholder until the DNS client lands: every name fails to resolve, so
// allowed names are refused with resolve-failed (fail closed).
class NoResolver final : public proxy::Resolver {
 public:
  explicit NoResolver(Loop& loop) : loop_(loop) {}
  void resolve(const std::string&, proxy::ResolveDone done) override {
    loop_.defer([done = std::move(done)] { done(proxy::ResolveResult{{}, "no resolver"}); });
  }
  std::optional<proxy::ResolveResult> cached(const std::string&) const override { return std::nullopt; }

 private:
  Loop& loop_;
};

}  // namespace

Result<std::unique_ptr<proxy::Resolver>> make_proxy_resolver(Loop& loop, const std::string&) {
  return std::unique_ptr<proxy::Resolver>(new NoResolver(loop));
}

}  // namespace egressd::cli
