// kvtool end to end in batch mode (-c and scripts on stdin): commands,
// quoting, JSON output, exit codes, import/export, transactions, stats,
// verify, locking. Each test drives the built binary on a fresh database.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "arenakv/db.h"
#include "escape.h"
#include "kvtool_runner.h"
#include "test_util.h"

namespace arenakv::test {
namespace {

using nlohmann::json;

class KvtoolBatchTest : public ::testing::Test {
 protected:
  std::string db() const { return dir_.Join("db"); }
  // Runs commands that must succeed; returns stdout.
  std::string Ok(const std::string& commands) {
    KvtoolResult r = Kv(db(), commands);
    EXPECT_EQ(r.exit_code, 0) << commands << "\nstderr: " << r.err;
    return r.out;
  }
  TempDir dir_;
};

std::string Trace(const KvtoolResult& r) {
  return "exit " + std::to_string(r.exit_code) + " signal " + std::to_string(r.signal) +
         "\nstdout: " + r.out + "\nstderr: " + r.err;
}

TEST_F(KvtoolBatchTest, PutGetDelAndCount) {
  EXPECT_EQ(Ok("put a 1; put b 2; put c 3; get b"), "2\n");
  EXPECT_EQ(Ok("count"), "3\n");
  EXPECT_EQ(Ok("del b; count; get c"), "2\n3\n");
  KvtoolResult r = Kv(db(), "get b");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "not found: b\n");
  // Values survive a reopen.
  EXPECT_EQ(Ok("get a; get c"), "1\n3\n");
}

TEST_F(KvtoolBatchTest, ScanRangesPrefixLimitReverse) {
  Ok("put app 1; put apple 2; put apricot 3; put b 4; put banana 5; put c 6");
  EXPECT_EQ(Ok("scan"), "app\t1\napple\t2\napricot\t3\nb\t4\nbanana\t5\nc\t6\n");
  EXPECT_EQ(Ok("scan --prefix ap"), "app\t1\napple\t2\napricot\t3\n");
  EXPECT_EQ(Ok("scan --prefix app"), "app\t1\napple\t2\n");
  EXPECT_EQ(Ok("scan apple banana"), "apple\t2\napricot\t3\nb\t4\n");  // TO is exclusive
  EXPECT_EQ(Ok("scan b"), "b\t4\nbanana\t5\nc\t6\n");
  EXPECT_EQ(Ok("scan --limit 2"), "app\t1\napple\t2\n");
  EXPECT_EQ(Ok("scan --limit=0"), "");
  EXPECT_EQ(Ok("scan --reverse --limit 2"), "c\t6\nbanana\t5\n");
  EXPECT_EQ(Ok("scan --reverse --prefix ap"), "apricot\t3\napple\t2\napp\t1\n");
  EXPECT_EQ(Ok("scan apple c --reverse"), "banana\t5\nb\t4\napricot\t3\napple\t2\n");
  EXPECT_EQ(Ok("scan --prefix zz"), "");
  EXPECT_EQ(Ok("count --prefix ap; count b; count apple c"), "3\n3\n4\n");
}

TEST_F(KvtoolBatchTest, QuotingAndEscapesRoundTrip) {
  Ok("put \"b c\" \"two words\"; put 'x;y' 'semi;colon'; put a\\x00b \"v\\x01\\xff\\t\"");
  Ok("put \"q\\\"uote\" '\\n stays literal in single quotes'");
  EXPECT_EQ(Ok("get \"b c\"; get 'x;y'"), "two words\nsemi;colon\n");
  EXPECT_EQ(Ok("get \"q\\\"uote\""), "\\\\n stays literal in single quotes\n");
  const std::string scan = Ok("scan");
  EXPECT_EQ(scan,
            "a\\x00b\tv\\x01\\xff\\t\n"
            "b c\ttwo words\n"
            "q\\\"uote\t\\\\n stays literal in single quotes\n"
            "x;y\tsemi;colon\n");
  // Every printed key, put between double quotes, reads back as the same key
  // and gets the printed value back.
  for (const std::string& line : Lines(scan)) {
    const size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos);
    const std::string key = line.substr(0, tab), value = line.substr(tab + 1);
    EXPECT_EQ(Ok("get \"" + key + "\""), value + "\n") << line;
  }
  // The key really holds a NUL byte: a key without it is a different key.
  KvtoolResult r = Kv(db(), "get ab");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.err, "not found: ab\n");
}

TEST_F(KvtoolBatchTest, JsonOutputIsOneObjectPerCommand) {
  KvtoolResult r = Kv(
      db(), "put a 1; put \"k\\xff\" \"\\x00\"; get a; scan; count; stats; get nope", {"--json"});
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  std::vector<json> replies;
  for (const std::string& line : Lines(r.out)) {
    ASSERT_NO_THROW(replies.push_back(json::parse(line))) << line;
  }
  ASSERT_EQ(replies.size(), 7u) << r.out;
  for (size_t i = 0; i < 6; i++) EXPECT_TRUE(replies[i]["ok"].get<bool>()) << replies[i];
  EXPECT_EQ(replies[0]["cmd"], "put");
  EXPECT_EQ(replies[2]["cmd"], "get");
  EXPECT_EQ(replies[2]["value"], "1");
  EXPECT_EQ(replies[3]["count"], 2);
  EXPECT_EQ(replies[3]["items"][0]["key"], "a");
  // Not UTF-8: base64. Valid UTF-8 with a NUL: a plain string.
  EXPECT_EQ(replies[3]["items"][1]["key"], json({{"base64", "a/8="}}));
  EXPECT_EQ(replies[3]["items"][1]["value"], std::string("\0", 1));
  EXPECT_EQ(replies[4]["count"], 2);
  EXPECT_TRUE(replies[5]["pool"].contains("committed_bytes"));
  EXPECT_TRUE(replies[5]["arenas"].is_array());
  for (const char* field : {"used_bytes", "hits", "misses", "evictions", "read_ahead_pages"}) {
    EXPECT_TRUE(replies[5]["cache"].contains(field)) << field;
  }
  // The budget at work: the memtables' share of the default budget is
  // positive and nothing was refused or stalled by two small puts.
  EXPECT_GT(replies[5]["budget"]["memtable_share_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(replies[5]["budget"]["write_stalls"], 0);
  EXPECT_EQ(replies[5]["budget"]["memory_limit_errors"], 0);
  EXPECT_EQ(replies[5]["budget"]["recovery_checkpoints"], 0);
  EXPECT_FALSE(replies[6]["ok"].get<bool>());
  EXPECT_EQ(replies[6]["code"], "NotFound");
  EXPECT_EQ(replies[6]["error"], "not found: nope");
  EXPECT_EQ(r.err, "not found: nope\n");
}

TEST_F(KvtoolBatchTest, ExitCodes) {
  KvtoolResult r = RunKvtool({db(), "--frobnicate"});
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  EXPECT_NE(r.err.find("unknown option '--frobnicate'"), std::string::npos);
  r = RunKvtool({"-c", "count"});
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  EXPECT_NE(r.err.find("no database given"), std::string::npos);
  r = RunKvtool({db(), "other", "-c", "count"});
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  r = Kv(db(), "frob a");
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  EXPECT_EQ(r.err, "error: unknown command 'frob' (try help)\n");
  r = Kv(db(), "put onlykey");
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  EXPECT_NE(r.err.find("usage: put KEY VALUE"), std::string::npos);
  r = Kv(db(), "scan --limit lots");
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  r = Kv(db(), "put \"unterminated 1");
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  EXPECT_EQ(r.err, "error: -c: unterminated double quote\n");
  // A key over the engine's limit: one short line naming it.
  r = Kv(db(), "put " + std::string(kMaxKeyBytes + 1, 'k') + " v");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(Lines(r.err).size(), 1u);
  EXPECT_LT(r.err.size(), 300u) << r.err;
  EXPECT_NE(r.err.find("(16385 bytes)"), std::string::npos) << r.err;
  r = Kv(db(), "commit");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("no transaction is open"), std::string::npos);
  r = RunKvtool({"--help"});
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find("usage: kvtool"), std::string::npos);
  r = RunKvtool({db(), "--no-create", "-c", "count"});  // db() was created above
  EXPECT_EQ(r.exit_code, 0) << Trace(r);
  r = RunKvtool({dir_.Join("missing"), "--no-create", "-c", "count"});
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("error: cannot open"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("missing")));
}

TEST_F(KvtoolBatchTest, BatchStopsAtFirstFailure) {
  KvtoolResult r = Kv(db(), "put a 1; get missing; put b 2");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(r.err, "not found: missing\n");
  EXPECT_EQ(Ok("count"), "1\n");

  // A script on stdin: same rule, and the error names the line.
  r = RunKvtool({db()}, "put c 3\n# comment\nget c\nget nothing\nput d 4\n");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(r.out, "3\n");
  EXPECT_EQ(r.err, "line 4: not found: nothing\n");
  EXPECT_EQ(Ok("scan"), "a\t1\nc\t3\n");

  r = RunKvtool({db()}, "put e 5\nput 'f 6\nput g 7\n");
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  EXPECT_EQ(r.err, "error: line 2: unterminated single quote\n");
  EXPECT_EQ(Ok("count"), "3\n");
}

TEST_F(KvtoolBatchTest, ImportTsvAndJsonl) {
  WriteFileBytes(dir_.Join("in.tsv"), "k1\tv1\nk\\x002\tv\\t2\n\nk3\t\r\n");
  KvtoolResult r = Kv(db(), "import " + dir_.Join("in.tsv"));
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_NE(r.out.find("imported 3 records"), std::string::npos) << r.out;
  WriteFileBytes(dir_.Join("in.jsonl"),
                 "{\"key\":\"j1\",\"value\":\"caf\xc3\xa9\"}\n"
                 "{\"key\":{\"base64\":\"/w==\"},\"value\":\"bin key\"}\n"
                 "{\"key\":\"k1\",\"value\":\"replaced\"}\n");
  r = Kv(db(), "import " + dir_.Join("in.jsonl"));
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(Ok("scan"),
            "j1\tcaf\xc3\xa9\n"
            "k\\x002\tv\\t2\n"
            "k1\treplaced\n"
            "k3\t\n"
            "\\xff\tbin key\n");
  // --format overrides the extension.
  WriteFileBytes(dir_.Join("data.txt"), "t1\tx\n");
  r = Kv(db(), "import " + dir_.Join("data.txt"));
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  EXPECT_NE(r.err.find("--format"), std::string::npos);
  EXPECT_EQ(Ok("import --format tsv " + dir_.Join("data.txt") + "; get t1"),
            "imported 1 record from " + dir_.Join("data.txt") + "\nx\n");
  r = Kv(db(), "import " + dir_.Join("absent.tsv"));
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos);
}

TEST_F(KvtoolBatchTest, MalformedImportLeavesDatabaseUnchanged) {
  Ok("put keep 1; put k1 old");
  const std::string before = Ok("scan");
  WriteFileBytes(dir_.Join("bad.tsv"), "k1\tnew\nk2\tv2\nk3\tv3\nthis line has no tab\nk5\tv5\n");
  KvtoolResult r = Kv(db(), "import " + dir_.Join("bad.tsv"));
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("line 4: no TAB between key and value"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was imported"), std::string::npos) << r.err;
  EXPECT_EQ(Ok("scan"), before);

  WriteFileBytes(dir_.Join("bad.jsonl"),
                 "{\"key\":\"k1\",\"value\":\"new\"}\n{\"key\":\"k2\",\"value\":[1]}\n");
  r = Kv(db(), "import " + dir_.Join("bad.jsonl"));
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("line 2: value: expected a string"), std::string::npos) << r.err;
  EXPECT_EQ(Ok("scan"), before);
}

TEST_F(KvtoolBatchTest, ExportThenImportRoundTrips) {
  std::mt19937_64 rng(TestSeed());
  // Random bytes, some typed as commands (through the command-line escapes),
  // most loaded from a file in one transaction.
  auto random_bytes = [&rng](size_t max_len, size_t min_len) {
    std::string b(min_len + rng() % (max_len - min_len + 1), '\0');
    for (char& c : b) c = static_cast<char>(rng());
    return b;
  };
  std::string script = "begin\n", tsv;
  for (int i = 0; i < 50; i++) {
    script += "put \"" + kvtool::Escape(random_bytes(12, 1)) + "\" \"" +
              kvtool::Escape(random_bytes(40, 0)) + "\"\n";
  }
  script += "commit\n";
  for (int i = 0; i < 500; i++) {
    std::string key(1, 'f');  // keys apart from the typed ones
    key += random_bytes(12, 4);
    tsv += kvtool::Escape(key) + "\t" + kvtool::Escape(random_bytes(60, 0)) + "\n";
  }
  KvtoolResult r = RunKvtool({db()}, script);
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  WriteFileBytes(dir_.Join("random.tsv"), tsv);
  r = Kv(db(), "import " + dir_.Join("random.tsv"));
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  const std::string original = Ok("scan");
  ASSERT_GE(Lines(original).size(), 540u);

  for (const char* name : {"dump.tsv", "dump.jsonl"}) {
    const std::string file = dir_.Join(name);
    r = Kv(db(), "export " + file);
    ASSERT_EQ(r.exit_code, 0) << Trace(r);
    const std::string fresh = dir_.Join(std::string("copy-") + name);
    r = Kv(fresh, "import " + file);
    ASSERT_EQ(r.exit_code, 0) << Trace(r);
    r = Kv(fresh, "scan");
    EXPECT_EQ(r.out, original) << name;
  }
  // scan output is itself importable TSV.
  WriteFileBytes(dir_.Join("scan.tsv"), original);
  r = Kv(dir_.Join("from-scan"), "import " + dir_.Join("scan.tsv") + "; scan");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_NE(r.out.find(original), std::string::npos);
  // No temporary file is left behind.
  for (const auto& entry : std::filesystem::directory_iterator(dir_.path())) {
    EXPECT_EQ(entry.path().filename().string().find(".tmp-"), std::string::npos) << entry.path();
  }
  EXPECT_EQ(Ok("export --prefix zzzz " + dir_.Join("empty.tsv")),
            "exported 0 records to " + dir_.Join("empty.tsv") + "\n");
  EXPECT_EQ(ReadFileBytes(dir_.Join("empty.tsv")), "");
}

TEST_F(KvtoolBatchTest, TransactionsInAScript) {
  KvtoolResult r = RunKvtool({db()},
                             "put a 0\n"
                             "begin\nput a 1\nput t 1\nget a\nrollback\nget a\n"
                             "begin; put b 2; del a; count; commit\n"
                             "scan\n");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out, "1\n0\n1\nb\t2\n");
  EXPECT_EQ(r.err, "");

  // A script that ends inside a transaction: rolled back, and it says so.
  r = RunKvtool({db()}, "begin\nput c 3\nget c\n");
  EXPECT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out, "3\n");
  EXPECT_EQ(r.err, "rolled back the open transaction\n");
  r = Kv(db(), "get c");
  EXPECT_EQ(r.exit_code, 1);

  // A failure inside a transaction stops the batch and rolls it back.
  r = Kv(db(), "begin; put d 4; get nope; commit");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(r.err, "not found: nope\nrolled back the open transaction\n");
  EXPECT_EQ(Ok("scan"), "b\t2\n");

  r = Kv(db(), "begin; begin");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("already open"), std::string::npos);
  r = Kv(db(), "begin; import x.tsv");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("a transaction is open"), std::string::npos);
}

// The engine names a transaction's arena "txn@<id>".
size_t TransactionArenas(const json& stats) {
  size_t n = 0;
  for (const json& a : stats["arenas"]) {
    if (a["name"].get<std::string>().rfind("txn", 0) == 0) n++;
  }
  return n;
}

TEST_F(KvtoolBatchTest, StatsShowTheTransactionArenaOnlyWhileOpen) {
  KvtoolResult r = Kv(db(), "put a 1; stats; begin; put k v; stats; commit; stats", {"--json"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  std::vector<json> stats;
  for (const std::string& line : Lines(r.out)) {
    json j = json::parse(line);
    if (j["cmd"] == "stats") stats.push_back(j);
  }
  ASSERT_EQ(stats.size(), 3u);
  EXPECT_FALSE(stats[0]["transaction"]["open"].get<bool>());
  EXPECT_TRUE(stats[1]["transaction"]["open"].get<bool>());
  EXPECT_GT(stats[1]["transaction"]["buffer_bytes"].get<uint64_t>(), 0u);
  EXPECT_EQ(stats[1]["open_transactions"], 1);
  EXPECT_EQ(stats[2]["open_transactions"], 0);
  // The transaction's arena is listed while it is open and gone after commit.
  EXPECT_EQ(TransactionArenas(stats[0]), 0u) << stats[0]["arenas"];
  EXPECT_EQ(TransactionArenas(stats[1]), 1u) << stats[1]["arenas"];
  EXPECT_EQ(TransactionArenas(stats[2]), 0u) << stats[2]["arenas"];
  EXPECT_GT(stats[0]["pool"]["committed_bytes"].get<uint64_t>(), 0u);

  // The human form names the same things, in human units.
  r = Kv(db(), "begin; put k v; stats");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  for (const char* field : {"reserved", "committed", "in use", "retained", "arenas (", "page cache",
                            "transaction (this shell)", " B"}) {
    EXPECT_NE(r.out.find(field), std::string::npos) << field << "\n" << r.out;
  }
  r = Kv(db(), "begin; put k v; commit; stats");
  EXPECT_EQ(r.out.find("transaction (this shell)"), std::string::npos) << r.out;
}

// --map-reads: a database larger than the cache is read through the
// mapping, and stats say how much of it is mapped.
TEST_F(KvtoolBatchTest, MapReadsReadsThroughTheMappingAndStatsShowIt) {
  std::string tsv;
  uint64_t x = 12345;
  auto value = [&x] {
    std::string v;
    for (int i = 0; i < 100; ++i) {
      x = x * 6364136223846793005ull + 1442695040888963407ull;
      v.push_back("0123456789abcdef"[x >> 60]);
    }
    return v;
  };
  std::string v7;
  for (int i = 0; i < 30000; ++i) {
    const std::string v = value();
    if (i == 7) v7 = v;
    tsv += "key" + std::to_string(100000 + i) + "\t" + v + "\n";
  }
  WriteFileBytes(dir_.Join("in.tsv"), tsv);
  KvtoolResult r = Kv(db(), "import " + dir_.Join("in.tsv"));
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  r = Kv(db(), "get key100007; stats", {"--map-reads", "--cache-mb", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_EQ(lines.size(), 2u) << r.out;
  EXPECT_EQ(json::parse(lines[0])["value"], v7) << lines[0];
  const json stats = json::parse(lines[1]);
  EXPECT_GT(stats["mapped_bytes"].get<uint64_t>(), 1u << 20) << lines[1];
  EXPECT_GE(stats["pool"]["charged_bytes"].get<uint64_t>(), stats["mapped_bytes"].get<uint64_t>());
  r = Kv(db(), "stats", {"--map-reads", "--cache-mb", "1"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_NE(r.out.find("of the file for reads"), std::string::npos) << r.out;
  r = Kv(db(), "stats", {"--cache-mb", "1", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(json::parse(Lines(r.out).at(0))["mapped_bytes"], 0) << "off by default";
}

// --shared-budget-mb opens the database under a MemoryBudget; stats show
// it (capacity, used, this database's part), in text and in JSON.
TEST_F(KvtoolBatchTest, StatsShowTheSharedBudget) {
  KvtoolResult r = Kv(db(), "put a 1; stats", {"--shared-budget-mb", "128", "--json"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  const json stats = json::parse(Lines(r.out).at(1));
  EXPECT_EQ(stats["shared_budget"]["capacity_bytes"], 128u << 20) << r.out;
  EXPECT_EQ(stats["shared_budget"]["databases"], 1) << r.out;
  EXPECT_GT(stats["shared_budget"]["own_bytes"].get<uint64_t>(), 0u) << r.out;
  EXPECT_EQ(stats["shared_budget"]["used_bytes"], stats["shared_budget"]["own_bytes"]) << r.out;
  r = Kv(db(), "stats", {"--shared-budget-mb", "128"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_NE(r.out.find("budget 128.0 MiB"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("used by 1 databases"), std::string::npos) << r.out;
  r = Kv(db(), "stats");
  EXPECT_NE(r.out.find("no shared budget"), std::string::npos) << r.out;
  r = Kv(db(), "stats", {"--shared-budget-mb", "8"});  // below one 64 MiB cache's minimum
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("shared memory budget"), std::string::npos) << r.err;
  r = Kv(db(), "stats", {"--shared-budget-mb", "x"});
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
}

std::string DataFile(const std::string& db) {
  std::string best;
  uintmax_t best_size = 0;
  for (const auto& entry : std::filesystem::directory_iterator(db)) {
    const std::string name = entry.path().filename().string();
    if (!entry.is_regular_file() || name.rfind("wal", 0) == 0 || name == "LOCK") continue;
    if (entry.file_size() >= best_size) {
      best = entry.path().string();
      best_size = entry.file_size();
    }
  }
  return best;
}

TEST_F(KvtoolBatchTest, VerifyGoodAndCorruptDatabases) {
  std::string tsv;
  for (int i = 0; i < 3000; i++) {
    tsv += "key" + std::to_string(i * 7919 % 10007) + "\tvalue-" + std::to_string(i) + "-" +
           std::string(40, static_cast<char>('a' + i % 26)) + "\n";
  }
  WriteFileBytes(dir_.Join("load.tsv"), tsv);
  KvtoolResult r = Kv(db(), "import " + dir_.Join("load.tsv") + "; put extra 1; checkpoint");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  r = Kv(db(), "verify");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out.rfind("ok: ", 0), 0u) << r.out;
  r = Kv(db(), "verify", {"--json"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_GT(json::parse(r.out)["pages"].get<uint64_t>(), 1u);

  // Flip bytes all over the data file (not its first 8 KiB) while closed.
  const std::string data = DataFile(db());
  ASSERT_FALSE(data.empty());
  std::string bytes = ReadFileBytes(data);
  ASSERT_GT(bytes.size(), 16384u) << data;
  for (size_t off = 8192 + 100; off + 16 < bytes.size(); off += 4096) {
    for (size_t k = 0; k < 16; k++) bytes[off + k] = static_cast<char>(bytes[off + k] ^ 0x5a);
  }
  WriteFileBytes(data, bytes);

  r = Kv(db(), "verify");
  EXPECT_EQ(r.signal, 0) << Trace(r);
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("Corruption"), std::string::npos) << Trace(r);
  EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;
}

// A database another process holds: commands that write get a clear error;
// commands that only read open it read-only by themselves, and say so.
TEST_F(KvtoolBatchTest, ADatabaseInUseIsReadOnlyForReadsAndAClearErrorForWrites) {
  ASSERT_EQ(Kv(db(), "put a 1").exit_code, 0);
  {
    std::unique_ptr<DB> held;
    ASSERT_OK(DB::Open(Options{}, db(), &held));
    ASSERT_OK(held->Put(WriteOptions{}, "b", "2"));  // in its log only
    KvtoolResult r = Kv(db(), "put c 3");
    EXPECT_EQ(r.signal, 0) << Trace(r);
    EXPECT_EQ(r.exit_code, 1) << Trace(r);
    EXPECT_NE(r.err.find("locked"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("Busy"), std::string::npos) << r.err;
    EXPECT_EQ(Lines(r.err).size(), 1u) << r.err;

    r = Kv(db(), "get a; get b; count");
    EXPECT_EQ(r.exit_code, 0) << Trace(r);
    EXPECT_EQ(r.out, "1\n2\n2\n") << Trace(r);
    EXPECT_NE(r.err.find("opened read-only"), std::string::npos) << r.err;

    // Asked for, read-only refuses writes with a reason.
    r = RunKvtool({db(), "--read-only", "-c", "get a; put d 4"});
    EXPECT_EQ(r.exit_code, 1) << Trace(r);
    EXPECT_EQ(r.out, "1\n") << Trace(r);
    EXPECT_NE(r.err.find("read-only"), std::string::npos) << r.err;
    ASSERT_OK(held->Close());
  }
  EXPECT_EQ(alloc::GetProcessPoolStats().mapped_bytes, 0u);
  EXPECT_EQ(alloc::GetProcessPoolStats().live_pools, 0u);
  EXPECT_EQ(Ok("get a"), "1\n");
  EXPECT_EQ(Ok("get b"), "2\n");
  // A missing database, read-only: an error, and nothing is created.
  KvtoolResult r = RunKvtool({dir_.Join("missing"), "--read-only", "-c", "count"});
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("no database at"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir_.Join("missing")));
}

TEST_F(KvtoolBatchTest, BackupMakesACopyThatOpensOnItsOwn) {
  ASSERT_EQ(Kv(db(), "put a 1; checkpoint; put b 2").exit_code, 0);
  KvtoolResult r = Kv(db(), "backup " + dir_.Join("copy") + "; put c 3");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  r = Kv(dir_.Join("copy"), "scan; verify");
  EXPECT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out.substr(0, r.out.find('\n', r.out.find('\n') + 1) + 1), "a\t1\nb\t2\n")
      << Trace(r);
  r = Kv(db(), "backup " + dir_.Join("copy"));
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("not empty"), std::string::npos) << r.err;
}

TEST_F(KvtoolBatchTest, AnApproximateCountNeedsNoScan) {
  ASSERT_EQ(Kv(db(), "put a 1; put b 2; put c 3; checkpoint").exit_code, 0);
  EXPECT_EQ(Ok("count --approx"), "~3\n");  // exact right after a checkpoint
  // Since then: a new key, an overwrite and a delete count one each.
  EXPECT_EQ(Ok("put d 4; put a 5; del b; count --approx; count"), "~6\n3\n");
  KvtoolResult r = Kv(db(), "count a --approx");
  EXPECT_NE(r.exit_code, 0) << Trace(r);
  EXPECT_NE(r.err.find("--approx counts the whole database"), std::string::npos) << r.err;
}

TEST_F(KvtoolBatchTest, ReadRunsAFileAndContinueOnErrorGoesOn) {
  const std::string script = dir_.Join("setup.kv");
  std::ofstream(script) << "put a 1\nget missing\nput b 2\n";
  // A failure stops the file, naming it and the line.
  KvtoolResult r = Kv(db(), ".read " + script + "; put c 3");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find(script + ":2: "), std::string::npos) << r.err;
  EXPECT_EQ(Ok("count"), "1\n");  // a only: neither b nor c
  // --continue-on-error: the rest runs, the status still says it failed.
  r = RunKvtool({db(), "--continue-on-error", "-c", ".read " + script + "; put c 3; count"});
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(r.out, "3\n") << Trace(r);
  r = RunKvtool({db(), "--continue-on-error"}, "get nothing\nput d 4\ncount\n");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(r.out, "4\n") << Trace(r);
  EXPECT_NE(r.err.find("line 1: "), std::string::npos) << r.err;
  r = Kv(db(), ".read " + dir_.Join("no-such-file"));
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("cannot open"), std::string::npos) << r.err;
  // A file that reads itself stops at a depth, it does not recurse for ever.
  const std::string loop = dir_.Join("loop.kv");
  std::ofstream(loop) << ".read " << loop << "\n";
  r = Kv(db(), ".read " + loop);
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("deep"), std::string::npos) << r.err;
}

TEST_F(KvtoolBatchTest, TimerPrintsEachCommandsTime) {
  KvtoolResult r = Kv(db(), "timer on; put a 1; get a; timer off; get a");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out, "timer on\n1\ntimer off\n1\n") << Trace(r);
  size_t times = 0;
  for (size_t at = r.err.find("time: "); at != std::string::npos;
       at = r.err.find("time: ", at + 1)) {
    ++times;
  }
  EXPECT_EQ(times, 2u) << r.err;  // put and the first get
  EXPECT_NE(r.err.find(" ms\n"), std::string::npos) << r.err;
}

TEST_F(KvtoolBatchTest, ScanPrintsKeysOnlyHexAndCsv) {
  ASSERT_EQ(Kv(db(), "put a 1; put 'b,c' 'say \"hi\"'; put d ' padded'").exit_code, 0);
  EXPECT_EQ(Ok("scan --keys-only"), "a\nb,c\nd\n");
  EXPECT_EQ(Ok("scan --hex --limit 2"), "61\t31\n622c63\t7361792022686922\n");
  EXPECT_EQ(Ok("scan --csv"), "a,1\n\"b,c\",\"say \"\"hi\"\"\"\nd,\" padded\"\n");
  EXPECT_EQ(Ok("scan --csv --keys-only --reverse"), "d\n\"b,c\"\na\n");
  KvtoolResult r = Kv(db(), "scan --hex --csv");
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
}

TEST_F(KvtoolBatchTest, SnapshotHoldsReadsWhileWritesGoOn) {
  KvtoolResult r =
      Kv(db(), "put a 1; snapshot; put a 2; put b 3; get a; count; snapshot off; get a; count");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out.substr(0, 9), "snapshot ") << Trace(r);
  EXPECT_NE(r.out.find("\n1\n1\nsnapshot released\n2\n2\n"), std::string::npos) << Trace(r);
  r = Kv(db(), "snapshot off");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("no snapshot"), std::string::npos) << r.err;
}

// A file larger than a batch streams in several commits; --atomic states
// its limit before reading anything.
TEST_F(KvtoolBatchTest, ImportStreamsInBatchesAndAtomicSaysItsLimitFirst) {
  const std::string tsv = dir_.Join("big.tsv");
  constexpr int kRecords = 120000;  // about 20 MiB: three batches
  {
    std::ofstream out(tsv);
    const std::string value(150, 'v');
    for (int i = 0; i < kRecords; ++i) out << "key" << i << '\t' << value << i << '\n';
  }
  KvtoolResult r = Kv(db(), "import " + tsv + "; count");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out, "imported 120,000 records from " + tsv + "\n120000\n") << Trace(r);
  {
    std::unique_ptr<DB> opened;
    ASSERT_OK(DB::Open(Options{}, db(), &opened));
    std::string v;
    ASSERT_OK(opened->Get(ReadOptions{}, "key119999", &v));
    EXPECT_EQ(v, std::string(150, 'v') + "119999");
    ASSERT_OK(opened->Close());
  }
  // A malformed last line: the check before the import stops it all.
  { std::ofstream(tsv, std::ios::app) << "no tab on this line\n"; }
  r = Kv(db(), "import " + tsv);
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("line 120001"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("nothing was imported"), std::string::npos) << r.err;
  // --atomic refuses a file larger than a transaction may buffer, up front.
  const std::string huge = dir_.Join("huge.tsv");
  { std::ofstream(huge) << "a\t1\n"; }
  std::filesystem::resize_file(huge, (size_t{600} << 20));  // sparse
  r = Kv(db(), "import --atomic " + huge);
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("more than the 512.0 MiB"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("without --atomic"), std::string::npos) << r.err;
}

TEST_F(KvtoolBatchTest, DeleteRangeAndPrefix) {
  ASSERT_EQ(Kv(db(), "put a1 1; put a2 2; put b1 3; put b2 4; put c1 5").exit_code, 0);
  EXPECT_EQ(Ok("deleterange a2 b2; scan --keys-only"), "a1\nb2\nc1\n");
  EXPECT_EQ(Ok("deleterange --prefix b; scan --keys-only"), "a1\nc1\n");
  KvtoolResult r = Kv(db(), "deleterange a1");
  EXPECT_EQ(r.exit_code, 2) << Trace(r);
  r = Kv(db(), "deleterange c a");
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("InvalidArgument"), std::string::npos) << r.err;
  EXPECT_EQ(Ok("count"), "2\n");
}

TEST_F(KvtoolBatchTest, BenchReportsEveryPhase) {
  KvtoolResult r = Kv(db(), "bench --keys 200");
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  for (const char* phase : {"fill", "read", "scan"}) {
    EXPECT_NE(r.out.find(std::string("  ") + phase), std::string::npos) << r.out;
  }
  EXPECT_NE(r.out.find("ops/s"), std::string::npos);
  EXPECT_NE(r.out.find("200 random keys"), std::string::npos);
  // The scratch database is not the user's.
  EXPECT_EQ(Ok("count"), "0\n");
  r = Kv(db(), "bench --keys 100", {"--json"});
  ASSERT_EQ(r.exit_code, 0) << Trace(r);
  json j = json::parse(r.out);
  ASSERT_EQ(j["phases"].size(), 3u);
  for (const json& p : j["phases"]) {
    EXPECT_EQ(p["ops"], 100);
    EXPECT_GT(p["ops_per_sec"].get<double>(), 0.0);
  }
  EXPECT_EQ(Kv(db(), "bench --keys 0").exit_code, 2);
}

TEST_F(KvtoolBatchTest, HelpAndCheckpoint) {
  const std::string help = Ok("help");
  for (const char* c :
       {"get KEY", "put KEY VALUE", "del KEY", "scan [FROM [TO]]", "count", "begin", "commit",
        "rollback", "stats", "checkpoint", "verify", "import", "export", "bench", "help", "quit"}) {
    EXPECT_NE(help.find(c), std::string::npos) << c;
  }
  EXPECT_EQ(Ok("help scan").rfind("usage: scan", 0), 0u);
  EXPECT_EQ(Ok("put a 1; checkpoint; get a; quit; get nothing"), "1\n");
}

// Commands that only read do not create a database: a mistyped path is an
// error, not an empty database (left behind, too). One that may write
// creates it, as before.
TEST_F(KvtoolBatchTest, MissingDatabaseIsAnErrorForReads) {
  const std::string typo = dir_.Join("dbb");
  for (const std::string cmds : {"get a", "scan; count", "stats", "verify", "export -"}) {
    KvtoolResult r = Kv(typo, cmds);
    EXPECT_EQ(r.exit_code, 1) << cmds << "\n" << Trace(r);
    EXPECT_EQ(r.err, "error: no database at " + typo +
                         " (the commands only read; a command that writes creates one)\n")
        << cmds;
    EXPECT_FALSE(std::filesystem::exists(typo)) << cmds << " created " << typo;
  }
  KvtoolResult r = Kv(typo, "put a 1; get a");
  EXPECT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out, "1\n");
  r = Kv(typo, "get a");  // it exists now
  EXPECT_EQ(r.out, "1\n");
}

// export writes to standard output for "-" and /dev/stdout (the summary
// goes to stderr), in place into a pipe, and through a symbolic link to its
// target. It used to rename a temporary file over the name: /dev/stdout and
// links were replaced by regular files, and "-" became a file named "-".
TEST_F(KvtoolBatchTest, ExportToStandardOutputPipesAndLinks) {
  Ok("put a 1; put b 2");
  for (const std::string target : {"-", "/dev/stdout"}) {
    KvtoolResult r = Kv(db(), "export " + target);
    EXPECT_EQ(r.exit_code, 0) << Trace(r);
    EXPECT_EQ(r.out, "a\t1\nb\t2\n") << target;
    EXPECT_EQ(r.err, "exported 2 records to standard output\n") << target;
  }
  EXPECT_FALSE(std::filesystem::exists("-"));
  KvtoolResult r = Kv(db(), "export --format jsonl -");
  EXPECT_EQ(r.out, "{\"key\":\"a\",\"value\":\"1\"}\n{\"key\":\"b\",\"value\":\"2\"}\n");

  // A named pipe, read by another process while kvtool writes.
  const std::string fifo = dir_.Join("pipe");
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  std::string piped;
  std::thread reader([&] {
    std::ifstream in(fifo, std::ios::binary);
    piped.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  });
  r = Kv(db(), "export " + fifo);
  reader.join();
  EXPECT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(piped, "a\t1\nb\t2\n");
  struct stat st;
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode)) << "the pipe was replaced";

  // A link to a regular file: the target gets the records, the link stays.
  const std::string real = dir_.Join("real.tsv"), link = dir_.Join("link.tsv");
  WriteFileBytes(real, "old\n");
  std::filesystem::create_symlink(real, link);
  EXPECT_EQ(Ok("export " + link), "exported 2 records to " + link + "\n");
  EXPECT_TRUE(std::filesystem::is_symlink(link));
  EXPECT_EQ(ReadFileBytes(real), "a\t1\nb\t2\n");
}

// A log a crash cut short: kvtool says what recovery cut, and
// --strict-recovery refuses to open instead.
TEST_F(KvtoolBatchTest, ReportsWhatRecoveryCutAndStrictRecoveryRefuses) {
  // A process that commits and dies without closing: its log holds commits.
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::unique_ptr<DB> child;
    if (!DB::Open(Options{}, db(), &child).ok()) _exit(2);
    for (int i = 0; i < 20; ++i) {
      if (!child->Put(WriteOptions{.sync = true}, "k" + std::to_string(i), "v").ok()) _exit(3);
    }
    _exit(0);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  std::string log;
  for (const auto& e : std::filesystem::directory_iterator(db())) {
    if (e.path().filename().string().rfind("wal-", 0) == 0) log = e.path().string();
  }
  ASSERT_FALSE(log.empty());
  std::string bytes = ReadFileBytes(log);
  size_t end = bytes.size();
  while (end > 32 && bytes[end - 1] == '\0') --end;  // past the zeros written ahead
  std::filesystem::resize_file(log, end - 3);

  KvtoolResult r = Kv(db(), "get k0", {"--strict-recovery"});
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_NE(r.err.find("torn record"), std::string::npos) << Trace(r);
  EXPECT_EQ(std::filesystem::file_size(log), end - 3) << "the strict open changed the log";

  r = Kv(db(), "get k0; get k18");
  EXPECT_EQ(r.exit_code, 0) << Trace(r);
  EXPECT_EQ(r.out, "v\nv\n");
  EXPECT_NE(r.err.find("note: recovery cut a log a crash left torn: " +
                       std::filesystem::path(log).filename().string()),
            std::string::npos)
      << Trace(r);
  r = Kv(db(), "get k19");  // the torn commit is gone, and nothing is left to report
  EXPECT_EQ(r.exit_code, 1) << Trace(r);
  EXPECT_EQ(r.err, "not found: k19\n");
}

// --repair salvages a database whose data file is damaged, says what was
// lost, and leaves one that opens; the damaged files are kept aside.
TEST_F(KvtoolBatchTest, RepairSalvagesAndSaysWhatWasLost) {
  std::string puts;
  for (int i = 0; i < 400; ++i) puts += "put key" + std::to_string(1000 + i) + " value; ";
  ASSERT_EQ(Kv(db(), puts + "checkpoint").exit_code, 0);
  ASSERT_EQ(Kv(db(), "put late 1").exit_code, 0);
  {
    // Damage the tree's pages: a few bytes in every 256 of the file past
    // its header and meta blocks.
    const auto size = std::filesystem::file_size(db() + "/data.akv");
    std::fstream f(db() + "/data.akv", std::ios::in | std::ios::out | std::ios::binary);
    for (uint64_t at = 12288 + 100; at + 4 < size; at += 256) {
      f.seekp(static_cast<std::streamoff>(at));
      f.write("\xde\xad\xbe\xef", 4);
    }
  }
  KvtoolResult r = Kv(db(), "verify");
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  r = RunKvtool({"--repair", db()});
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("repaired " + db()), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lost:"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("Corruption"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("the original files are in " + db() + "/lost"), std::string::npos) << r.out;
  r = Kv(db(), "verify; put after repair");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_NE(r.out.find("ok: "), std::string::npos) << r.out;
  r = RunKvtool({"--repair", db(), "-c", "get late"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
}

}  // namespace
}  // namespace arenakv::test
