#include "kernels/collectives.h"

#include <cstdlib>

#include "base/check.h"

namespace radlads {

void SelfCommunicator::Send(const float*, std::size_t, int peer, int) {
  RADLADS_CHECK(false) << "SelfCommunicator: no peer " << peer << " to send to";
}

void SelfCommunicator::Recv(float*, std::size_t, int peer, int) {
  RADLADS_CHECK(false) << "SelfCommunicator: no peer " << peer << " to receive from";
}

void SelfCommunicator::SendBytes(const std::string&, int peer, int) {
  RADLADS_CHECK(false) << "SelfCommunicator: no peer " << peer << " to send to";
}

void SelfCommunicator::Abort(int code) { std::_Exit(code); }

}  // namespace radlads
