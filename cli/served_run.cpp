#include "cli/served_run.h"

#include <unistd.h>

#include "base/file.h"
#include "rpc/client.h"
#include "rpc/secret.h"

namespace radlads {

Result<std::unique_ptr<ServedRun>> ServedRun::Start(const std::string& run_dir, Scheduler& sched,
                                                    const ServerOptions& options) {
  RADLADS_ASSIGN_OR_RETURN(const RunSecret secret, EnsureRunSecret(run_dir));
  std::unique_ptr<ServedRun> r(new ServedRun());
  RADLADS_ASSIGN_OR_RETURN(r->server_, Server::Start(options, &sched, SystemClock::Default(), secret));
  r->addr_path_ = CoordinatorAddressPath(run_dir);
  r->advertised_ = r->server_->address() + "\n";
  RADLADS_RETURN_IF_ERROR(AtomicWriteFile(r->addr_path_, r->advertised_));
  ServedRun* self = r.get();
  r->loop_ = std::thread([self] {
    self->code_ = self->server_->Run();
    self->done_.store(true);
  });
  return r;
}

int ServedRun::Stop(int code) {
  if (stopped_) return code_;
  stopped_ = true;
  if (!loop_.joinable()) return code;  // Start failed before the loop ran
  if (!done_.load()) server_->Shutdown(code);
  loop_.join();
  if (auto now = ReadFileToString(addr_path_); now.ok() && *now == advertised_) ::unlink(addr_path_.c_str());
  return code_;
}

ServedRun::~ServedRun() { (void)Stop(kExitFailure); }

}  // namespace radlads
