// Fuzz the policy parser and compiler: any input either parses into a
// policy that compiles, or throws PolicyError/CompileError; nothing else
// (no crash, no other exception, no sanitizer report).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "policy/compiler.h"
#include "policy/toml_loader.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    auto policy = egressd::policy::parse_policy(text, "fuzz.toml");
    (void)egressd::policy::compile(policy, 1);
    (void)egressd::policy::summarize(policy);
  } catch (const egressd::policy::PolicyError&) {
  } catch (const egressd::policy::CompileError&) {
  }
  return 0;
}
