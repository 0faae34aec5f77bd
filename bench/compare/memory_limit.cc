#include "compare/memory_limit.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string_view>

namespace arenakv::compare {
namespace {

bool WriteFile(const std::string& path, const std::string& text, std::string* error) {
  std::ofstream f(path);
  f << text;
  f.flush();
  if (!f) {
    *error = "cannot write " + path + ": " + std::strerror(errno);
    return false;
  }
  return true;
}

// The directory a new cgroup goes in: the v2 root when it has the memory
// controller, else the v1 memory hierarchy. 0 when neither is mounted.
int FindHierarchy(std::string* root) {
  for (const char* v2 : {"/sys/fs/cgroup", "/sys/fs/cgroup/unified"}) {
    std::ifstream controllers(std::string(v2) + "/cgroup.controllers");
    std::string line;
    if (controllers && std::getline(controllers, line) &&
        (" " + line + " ").find(" memory ") != std::string::npos) {
      *root = v2;
      return 2;
    }
  }
  if (std::filesystem::exists("/sys/fs/cgroup/memory/memory.limit_in_bytes")) {
    *root = "/sys/fs/cgroup/memory";
    return 1;
  }
  return 0;
}

}  // namespace

bool MemoryLimit::Create(size_t bytes, MemoryLimit* limit, std::string* error) {
  std::string root;
  const int version = FindHierarchy(&root);
  if (version == 0) {
    *error = "no cgroup memory controller is mounted";
    return false;
  }
  MemoryLimit l;
  l.version_ = version;
  l.bytes_ = bytes;
  l.dir_ = root + "/arenakv-compare-" + std::to_string(::getpid());
  if (::mkdir(l.dir_.c_str(), 0755) != 0 && errno != EEXIST) {
    *error = "cannot create " + l.dir_ + ": " + std::strerror(errno);
    l.dir_.clear();
    return false;
  }
  l.limit_file_ = l.dir_ + (version == 2 ? "/memory.max" : "/memory.limit_in_bytes");
  if (!WriteFile(l.limit_file_, std::to_string(bytes), error)) return false;
  if (version == 2) {
    std::string ignored;  // swap may be off: then there is nothing to forbid
    WriteFile(l.dir_ + "/memory.swap.max", "0", &ignored);
  }
  *limit = std::move(l);
  return true;
}

MemoryLimit::MemoryLimit(MemoryLimit&& other) noexcept { *this = std::move(other); }

MemoryLimit& MemoryLimit::operator=(MemoryLimit&& other) noexcept {
  if (this != &other) {
    if (!dir_.empty()) ::rmdir(dir_.c_str());
    dir_ = std::move(other.dir_);
    limit_file_ = std::move(other.limit_file_);
    version_ = other.version_;
    bytes_ = other.bytes_;
    other.dir_.clear();
  }
  return *this;
}

MemoryLimit::~MemoryLimit() {
  if (!dir_.empty()) ::rmdir(dir_.c_str());
}

bool MemoryLimit::Join(std::string* error) const {
  const std::string procs = dir_ + (version_ == 2 ? "/cgroup.procs" : "/tasks");
  return WriteFile(procs, std::to_string(::getpid()), error);
}

std::string MemoryLimit::Describe() const {
  return "cgroup v" + std::to_string(version_) + ", " + std::to_string(bytes_ >> 20) +
         " MiB (process + page cache)";
}

void EvictPageCache(const std::string& dir) {
  std::error_code ec;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    if (!it->is_regular_file(ec)) continue;
    const int fd = ::open(it->path().c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ::fdatasync(fd);  // dirty pages are not dropped
    ::posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
    ::close(fd);
  }
}

}  // namespace arenakv::compare
