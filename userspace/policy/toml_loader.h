// toml_loader.h: TOML text -> Policy. Start-up/config code: errors throw.
#pragma once

#include <stdexcept>
#include <string>
#include <string_view>

#include "policy/model.h"

namespace egressd::policy {

// what() is "FILE:LINE:COLUMN: KEY: message" (KEY is the dotted key path,
// e.g. "allow_cidr[2].ports"; omitted when the error is TOML syntax).
class PolicyError : public std::runtime_error {
 public:
  PolicyError(SourcePos pos, std::string key, const std::string& message);
  const SourcePos& pos() const { return pos_; }
  const std::string& key() const { return key_; }

 private:
  SourcePos pos_;
  std::string key_;
};

// Parses and validates. `source` names the text in errors.
Policy parse_policy(std::string_view text, const std::string& source);

// Reads the file (errors: "FILE: cannot read: strerror") and parses it.
Policy load_policy_file(const std::string& path);

}  // namespace egressd::policy
