#include "net/thread_name.hpp"

#include <pthread.h>

#include <algorithm>
#include <array>

namespace si::net {

void name_this_thread(std::string_view name) noexcept {
  std::array<char, max_thread_name + 1> buf{};
  const auto n = std::min(name.size(), max_thread_name);
  std::copy_n(name.data(), n, buf.data());
  (void)pthread_setname_np(pthread_self(), buf.data());
}

}  // namespace si::net
