// Opens a database, writes and reads a key in a transaction, closes it, and
// shows the pool's memory is gone. Usage: embed_example DIR
#include <arenakv/db.h>

#include <cstdio>
#include <string>

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR\n", argv[0]);
    return 2;
  }
  std::unique_ptr<arenakv::DB> db;
  arenakv::Status s = arenakv::DB::Open(arenakv::Options{}, argv[1], &db);
  if (s.ok()) {
    auto txn = db->BeginTransaction(arenakv::WriteOptions{});
    s = txn->Put("greeting", "hello");
    if (s.ok()) s = txn->Commit();
  }
  std::string value;
  if (s.ok()) s = db->Get(arenakv::ReadOptions{}, "greeting", &value);
  if (s.ok()) s = db->Close();
  if (!s.ok()) {
    std::fprintf(stderr, "error: %s\n", s.ToString().c_str());
    return 1;
  }
  const auto pools = arenakv::alloc::GetProcessPoolStats();
  std::printf("greeting=%s mapped_after_close=%zu\n", value.c_str(), pools.mapped_bytes);
  return value == "hello" && pools.mapped_bytes == 0 ? 0 : 1;
}
