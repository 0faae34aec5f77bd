#include "mem/version_node.h"

#include <cstring>
#include <new>

#include "arenakv/alloc/arena.h"

namespace arenakv::mem {

Status VersionNode::New(alloc::Arena* arena, uint64_t seq, ValueType type, std::string_view key,
                        std::string_view value, const VersionNode** node, size_t* bytes) {
  if (key.size() > UINT32_MAX || value.size() > UINT32_MAX) {
    return Status::InvalidArgument("memtable: key or value larger than 4 GiB");
  }
  const size_t n = sizeof(VersionNode) + key.size() + value.size();
  void* mem = nullptr;
  Status s = arena->Allocate(n, alignof(VersionNode), &mem);
  if (!s.ok()) return s;
  auto* v = new (mem) VersionNode();
  v->seq_ = seq;
  v->key_size_ = static_cast<uint32_t>(key.size());
  v->value_size_ = static_cast<uint32_t>(value.size());
  v->type_ = type;
  char* data = reinterpret_cast<char*>(v + 1);
  if (!key.empty()) std::memcpy(data, key.data(), key.size());
  if (!value.empty()) std::memcpy(data + key.size(), value.data(), value.size());
  *node = v;
  *bytes = n;
  return Status::OK();
}

}  // namespace arenakv::mem
