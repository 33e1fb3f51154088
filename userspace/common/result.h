// result.h: Result<T> for the OS boundary. An Error carries the errno and
// what we were doing, so messages read "open /sys/fs/bpf/x: No such file".
// Exceptions are for config parsing and start-up only; never on data paths.
#pragma once

#include <string>
#include <utility>
#include <variant>

namespace egressd {

struct Error {
  int err = 0;          // errno, 0 when not an OS error
  std::string context;  // what failed, e.g. "open /sys/fs/bpf/egressd"
  std::string message() const;  // "context: strerror(err)"
};

// Error from the current errno (or an explicit one, e.g. libbpf's -ret).
Error sys_error(std::string context, int err = -1);
// Error that is not an errno (validation, protocol).
inline Error logic_error(std::string context) { return Error{0, std::move(context)}; }

template <class T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}
  Result(Error error) : v_(std::move(error)) {}
  bool ok() const { return v_.index() == 0; }
  explicit operator bool() const { return ok(); }
  T& value() & { return std::get<0>(v_); }
  T&& value() && { return std::get<0>(std::move(v_)); }
  const T& value() const& { return std::get<0>(v_); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T&& operator*() && { return std::move(*this).value(); }
  const Error& error() const { return std::get<1>(v_); }

 private:
  std::variant<T, Error> v_;
};

template <>
class [[nodiscard]] Result<void> {
 public:
  Result() = default;
  Result(Error error) : err_(std::move(error)), failed_(true) {}
  bool ok() const { return !failed_; }
  explicit operator bool() const { return ok(); }
  const Error& error() const { return err_; }

 private:
  Error err_;
  bool failed_ = false;
};

using Status = Result<void>;

}  // namespace egressd

// Propagate an error from an expression returning Result<...>.
#define EGD_TRY(expr)                              \
  do {                                             \
    auto egd_try_r_ = (expr);                      \
    if (!egd_try_r_.ok()) return egd_try_r_.error(); \
  } while (0)
