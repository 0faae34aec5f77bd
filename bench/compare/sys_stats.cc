#include "compare/sys_stats.h"

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <thread>

namespace arenakv::compare {
namespace {

// Reads "<field>:   1234 kB" from /proc/self/status.
int64_t ReadStatusKb(const std::string& field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.compare(0, field.size(), field) == 0 && line.size() > field.size() &&
        line[field.size()] == ':') {
      return std::stoll(line.substr(field.size() + 1)) * 1024;
    }
  }
  return -1;
}

std::string ReadFirstLine(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

}  // namespace

int64_t CurrentRssBytes() { return ReadStatusKb("VmRSS"); }
int64_t AnonRssBytes() { return ReadStatusKb("RssAnon"); }
int64_t PeakRssBytes() { return ReadStatusKb("VmHWM"); }

std::string LoadAverage() {
  std::string line = ReadFirstLine("/proc/loadavg");
  size_t end = 0;
  for (int field = 0; field < 3 && end != std::string::npos; ++field) {
    end = line.find(' ', end == 0 ? 0 : end + 1);
  }
  return end == std::string::npos ? line : line.substr(0, end);
}

bool ResetPeakRss() {
  std::ofstream out("/proc/self/clear_refs");
  if (!out) return false;
  out << "5";
  out.flush();
  return static_cast<bool>(out);
}

void PrefaultCode() {
  std::ifstream in("/proc/self/maps");
  std::string line;
  const long page = sysconf(_SC_PAGESIZE);
  while (std::getline(in, line)) {
    // "start-end perms offset dev inode path"
    unsigned long start = 0, end = 0;
    char perms[5] = {};
    if (std::sscanf(line.c_str(), "%lx-%lx %4s", &start, &end, perms) != 3) continue;
    const bool executable_file =
        perms[0] == 'r' && perms[2] == 'x' && line.find('/') != std::string::npos;
    if (!executable_file) continue;
    for (unsigned long p = start; p < end; p += static_cast<unsigned long>(page)) {
      [[maybe_unused]] volatile char c = *reinterpret_cast<const volatile char*>(p);
    }
  }
}

DiskUsage MeasureDiskUsage(const std::string& dir) {
  DiskUsage usage;
  std::error_code ec;
  if (!std::filesystem::exists(dir, ec)) return usage;
  for (auto it = std::filesystem::recursive_directory_iterator(dir, ec);
       !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
    struct stat st;
    if (::lstat(it->path().c_str(), &st) != 0) continue;
    usage.allocated_bytes += static_cast<uint64_t>(st.st_blocks) * 512;
    if (S_ISREG(st.st_mode)) {
      usage.apparent_bytes += static_cast<uint64_t>(st.st_size);
      ++usage.files;
    }
  }
  return usage;
}

MachineInfo DescribeMachine(const std::string& dir) {
  MachineInfo info;
  info.cpus = std::thread::hardware_concurrency();
  {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.rfind("model name", 0) == 0) {
        size_t colon = line.find(':');
        if (colon != std::string::npos) info.cpu_model = line.substr(colon + 2);
        break;
      }
    }
  }
  struct utsname uts;
  if (::uname(&uts) == 0) info.kernel = std::string(uts.sysname) + " " + uts.release;
  long pages = ::sysconf(_SC_PHYS_PAGES);
  long page_size = ::sysconf(_SC_PAGESIZE);
  if (pages > 0 && page_size > 0) {
    info.memory_bytes = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size);
  }

  // The block device holding `dir`: /sys/dev/block/MAJ:MIN is the device or
  // a partition of it; the queue (with the rotational flag) is on the disk.
  struct stat st;
  if (::stat(dir.c_str(), &st) == 0) {
    std::string sys = "/sys/dev/block/" + std::to_string(major(st.st_dev)) + ":" +
                      std::to_string(minor(st.st_dev));
    std::error_code ec;
    std::filesystem::path real = std::filesystem::canonical(sys, ec);
    if (!ec) {
      std::string rotational = ReadFirstLine(real.string() + "/queue/rotational");
      std::string name = real.filename().string();
      if (rotational.empty()) {
        rotational = ReadFirstLine(real.parent_path().string() + "/queue/rotational");
        name = real.parent_path().filename().string();
      }
      info.disk = name;
      if (!rotational.empty()) {
        info.disk += rotational == "1" ? " (reports rotational)" : " (reports non-rotational)";
      }
    } else {
      info.disk = "unknown (no block device, e.g. tmpfs or overlay)";
    }
  }
  return info;
}

}  // namespace arenakv::compare
