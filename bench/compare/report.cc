#include "compare/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <vector>

#include "compare/engine_adapter.h"

namespace arenakv::compare {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kMiB = 1024.0 * 1024.0;

double Median(std::vector<double> v) {
  v.erase(std::remove_if(v.begin(), v.end(), [](double x) { return std::isnan(x); }), v.end());
  if (v.empty()) return kNaN;
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

double Throughput(const RunRecord& r) {
  if (!r.ok || r.phase.seconds <= 0) return kNaN;
  return static_cast<double>(r.phase.ops) / r.phase.seconds;
}

const WorkloadRuns* Find(const ComparisonRun& run, Workload w) {
  for (const WorkloadRuns& wr : run.workloads) {
    if (wr.workload == w) return &wr;
  }
  return nullptr;
}

double MedianThroughput(const WorkloadRuns& wr, int e) {
  std::vector<double> v;
  for (const RunRecord& r : wr.runs[e]) v.push_back(Throughput(r));
  return Median(v);
}

// Per repetition, the largest value of `field` over all workloads; then the
// median of those over repetitions.
template <typename F>
double MedianOfPerRepMax(const ComparisonRun& run, int e, F field) {
  std::vector<double> per_rep;
  for (int rep = 0; rep < run.reps; ++rep) {
    double best = kNaN;
    for (const WorkloadRuns& wr : run.workloads) {
      if (rep >= static_cast<int>(wr.runs[e].size()) || !wr.runs[e][rep].ok) continue;
      double x = field(wr.runs[e][rep].phase);
      if (std::isnan(x)) continue;
      best = std::isnan(best) ? x : std::max(best, x);
    }
    per_rep.push_back(best);
  }
  return Median(per_rep);
}

double Ratio(const std::array<double, kEngineCount>& v) {
  if (std::isnan(v[kArenakv]) || std::isnan(v[kRocksdb]) || v[kRocksdb] == 0) return kNaN;
  return v[kArenakv] / v[kRocksdb];
}

std::string Printf(const char* fmt, double x) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), fmt, x);
  return buf;
}

// 1234567.8 -> "1,234,568"
std::string Grouped(double x) {
  if (std::isnan(x)) return "-";
  long long n = std::llround(x);
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string FormatValue(const SummaryRow& row, double x) {
  if (std::isnan(x)) return "-";
  if (row.throughput) return Grouped(x);
  if (row.unit == "x") return Printf("%.2fx", x);
  return Printf("%.1f", x);
}

std::string JsonString(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", c);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

std::string JsonNumber(double x) {
  if (std::isnan(x) || std::isinf(x)) return "null";
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.6g", x);
  return buf;
}

std::string JsonNumber(int64_t x) { return std::to_string(x); }
std::string JsonNumber(uint64_t x) { return std::to_string(x); }

std::string XmlEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '&':
        out += "&amp;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Pad(const std::string& s, size_t width, bool right) {
  if (s.size() >= width) return s;
  std::string fill(width - s.size(), ' ');
  return right ? fill + s : s + fill;
}

// Sets arenakv's ratio to RocksDB and to the best anchor: the other engine
// with the highest value when higher is better, the smallest otherwise.
void SetRatios(SummaryRow* row, bool higher_is_better) {
  row->ratio = Ratio(row->value);
  row->ratio_best = kNaN;
  row->best_anchor = -1;
  for (int e = 0; e < kEngineCount; ++e) {
    double x = row->value[e];
    if (e == kArenakv || std::isnan(x)) continue;
    if (row->best_anchor < 0 ||
        (higher_is_better ? x > row->value[row->best_anchor] : x < row->value[row->best_anchor])) {
      row->best_anchor = e;
    }
  }
  if (row->best_anchor >= 0 && !std::isnan(row->value[kArenakv]) &&
      row->value[row->best_anchor] != 0) {
    row->ratio_best = row->value[kArenakv] / row->value[row->best_anchor];
  }
}

void ClearRatios(SummaryRow* row) {
  row->ratio = kNaN;
  row->ratio_best = kNaN;
  row->best_anchor = -1;
}

// A value cell of the table: "not built" for an engine this program was
// built without, "-" for one not run or not measured.
std::string EngineCell(const ComparisonRun& run, const SummaryRow& row, int e) {
  if (!run.built[e]) return "not built";
  return FormatValue(row, row.value[e]);
}

std::string RatioCell(double ratio) {
  return std::isnan(ratio) ? std::string("-") : Printf("%.2fx", ratio);
}

// Bar colours of the chart, one per engine.
constexpr const char* kEngineColors[kEngineCount] = {"#3a9d4a", "#d0453a", "#e39b2d", "#4a74b5",
                                                     "#8d5bb5"};

}  // namespace

std::vector<SummaryRow> Summarize(const ComparisonRun& run) {
  std::vector<SummaryRow> rows;
  for (const WorkloadRuns& wr : run.workloads) {
    const WorkloadInfo& info = InfoOf(wr.workload);
    SummaryRow row;
    row.label = info.name;
    row.unit = info.unit;
    row.throughput = true;
    for (int e = 0; e < kEngineCount; ++e) {
      row.value[e] = run.engines[e] ? MedianThroughput(wr, e) : kNaN;
    }
    SetRatios(&row, /*higher_is_better=*/true);
    if (info.target > 0) {
      row.target = ">= " + Printf("%g", info.target) + "x";
      if (!std::isnan(row.ratio)) row.met = row.ratio >= info.target ? 1 : 0;
    }
    for (int e = 0; e < kEngineCount; ++e) {
      uint64_t not_found = 0, mismatches = 0, conflicts = 0, failed = 0;
      for (const RunRecord& r : wr.runs[e]) {
        if (!r.ok) {
          ++failed;
          continue;
        }
        not_found += r.phase.not_found;
        mismatches += r.phase.mismatches;
        conflicts += r.phase.conflicts;
      }
      std::string part;
      if (failed > 0) part += std::to_string(failed) + " run(s) FAILED ";
      if (not_found > 0) part += std::to_string(not_found) + " NOT FOUND ";
      if (mismatches > 0) part += std::to_string(mismatches) + " WRONG ";
      if (conflicts > 0) part += std::to_string(conflicts) + " conflicts ";
      if (!part.empty()) {
        part.pop_back();
        if (!row.note.empty()) row.note += "; ";
        row.note += std::string(kEngineNames[e]) + ": " + part;
      }
    }
    rows.push_back(row);
  }

  const WorkloadRuns* one = Find(run, Workload::kSyncCommit1);
  const WorkloadRuns* four = Find(run, Workload::kSyncCommit4);
  if (one != nullptr && four != nullptr) {
    SummaryRow row;
    row.label = "synccommit 4t/1t";
    row.unit = "x";
    for (int e = 0; e < kEngineCount; ++e) {
      double a = MedianThroughput(*one, e), b = MedianThroughput(*four, e);
      row.value[e] = run.engines[e] && a > 0 ? b / a : kNaN;
    }
    ClearRatios(&row);  // a ratio of scaling factors says little
    row.target = ">= 3x (arenakv)";
    if (!std::isnan(row.value[kArenakv])) row.met = row.value[kArenakv] >= 3.0 ? 1 : 0;
    rows.push_back(row);
  }

  for (Workload w : {Workload::kFillSeq, Workload::kFillRandom}) {
    const WorkloadRuns* wr = Find(run, w);
    if (wr == nullptr) continue;
    SummaryRow row;
    row.label = std::string("disk after ") + InfoOf(w).name;
    row.unit = "MiB";
    for (int e = 0; e < kEngineCount; ++e) {
      std::vector<double> v;
      for (const RunRecord& r : wr->runs[e]) {
        v.push_back(r.ok ? static_cast<double>(r.disk.allocated_bytes) / kMiB : kNaN);
      }
      row.value[e] = run.engines[e] ? Median(v) : kNaN;
    }
    SetRatios(&row, /*higher_is_better=*/false);
    row.target = "<= 1x";
    if (!std::isnan(row.ratio)) row.met = row.ratio <= 1.0 ? 1 : 0;
    rows.push_back(row);
  }

  if (!run.workloads.empty()) {
    SummaryRow peak;
    peak.label = "peak RSS (max over workloads)";
    peak.unit = "MiB";
    SummaryRow after;
    after.label = "RSS after close - before open (max)";
    after.unit = "MiB";
    for (int e = 0; e < kEngineCount; ++e) {
      peak.value[e] = run.engines[e]
                          ? MedianOfPerRepMax(run, e,
                                              [](const PhaseResult& p) {
                                                return p.rss_peak < 0
                                                           ? kNaN
                                                           : static_cast<double>(p.rss_peak) / kMiB;
                                              })
                          : kNaN;
      after.value[e] =
          run.engines[e]
              ? MedianOfPerRepMax(
                    run, e,
                    [](const PhaseResult& p) {
                      if (p.rss_after_close < 0 || p.rss_before_open < 0) return kNaN;
                      return static_cast<double>(p.rss_after_close - p.rss_before_open) / kMiB;
                    })
              : kNaN;
    }
    SetRatios(&peak, /*higher_is_better=*/false);
    ClearRatios(&after);  // a ratio of two near-zero differences says nothing
    after.target = "<= 1 MiB (arenakv)";
    if (!std::isnan(after.value[kArenakv])) after.met = after.value[kArenakv] <= 1.0 ? 1 : 0;
    // The same without file-backed pages: the engine's code faulted in on
    // first use stays resident (and shared) but is not memory left behind.
    SummaryRow anon;
    anon.label = "anon RSS after close - before open";
    anon.unit = "MiB";
    for (int e = 0; e < kEngineCount; ++e) {
      anon.value[e] =
          run.engines[e]
              ? MedianOfPerRepMax(
                    run, e,
                    [](const PhaseResult& p) {
                      if (p.anon_rss_after_close < 0 || p.anon_rss_before_open < 0) return kNaN;
                      return static_cast<double>(p.anon_rss_after_close - p.anon_rss_before_open) /
                             kMiB;
                    })
              : kNaN;
    }
    ClearRatios(&anon);
    rows.push_back(peak);
    rows.push_back(after);
    rows.push_back(anon);
  }
  return rows;
}

bool AllRunsClean(const ComparisonRun& run) {
  for (const WorkloadRuns& wr : run.workloads) {
    for (int e = 0; e < kEngineCount; ++e) {
      for (const RunRecord& r : wr.runs[e]) {
        if (!r.ok || r.phase.not_found > 0 || r.phase.mismatches > 0) return false;
      }
    }
  }
  return true;
}

std::string FormatTable(const ComparisonRun& run) {
  std::vector<SummaryRow> rows = Summarize(run);
  std::string out;
  // Columns: label, unit, one per engine, vs rocksdb, vs best anchor, best
  // anchor, target, met, notes.
  constexpr size_t kLabelW = 36, kUnitW = 9, kValueW = 12, kRatioW = 10, kBestW = 11, kTargetW = 18,
                   kMetW = 4;
  auto line = [&](const std::vector<std::string>& cells) {
    size_t i = 0;
    out += Pad(cells[i++], kLabelW, false);
    out += " " + Pad(cells[i++], kUnitW, false);
    for (int e = 0; e < kEngineCount; ++e) out += " " + Pad(cells[i++], kValueW, true);
    out += " " + Pad(cells[i++], kRatioW, true);
    out += " " + Pad(cells[i++], kRatioW, true);
    out += "  " + Pad(cells[i++], kBestW, false);
    out += " " + Pad(cells[i++], kTargetW, false);
    out += " " + Pad(cells[i++], kMetW, false);
    if (!cells[i].empty()) out += "  " + cells[i];
    while (!out.empty() && out.back() == ' ') out.pop_back();
    out += "\n";
  };
  std::vector<std::string> header = {"workload / measure", "unit"};
  std::vector<std::string> rule = {std::string(kLabelW, '-'), std::string(kUnitW, '-')};
  for (int e = 0; e < kEngineCount; ++e) {
    header.push_back(kEngineNames[e]);
    rule.push_back(std::string(kValueW, '-'));
  }
  for (const char* h : {"vs rocksdb", "vs best", "best anchor", "target", "met", "notes"}) {
    header.push_back(h);
  }
  for (size_t w : {kRatioW, kRatioW, kBestW, kTargetW, kMetW}) rule.push_back(std::string(w, '-'));
  rule.push_back("");
  line(header);
  line(rule);
  for (const SummaryRow& row : rows) {
    std::vector<std::string> cells = {row.label, row.unit};
    for (int e = 0; e < kEngineCount; ++e) cells.push_back(EngineCell(run, row, e));
    cells.push_back(RatioCell(row.ratio));
    cells.push_back(RatioCell(row.ratio_best));
    cells.push_back(row.best_anchor < 0 ? "" : kEngineNames[row.best_anchor]);
    cells.push_back(row.target);
    cells.push_back(row.met == 1 ? "yes" : row.met == 0 ? "NO" : "");
    cells.push_back(row.note);
    line(cells);
  }
  out +=
      "\nvs rocksdb: arenakv / RocksDB (what the targets are set against); vs best: arenakv / "
      "the best anchor of the row (highest throughput, smallest size or memory)\n";

  // Memory per workload: where the peak and the residue come from.
  out +=
      "\nmemory per workload (MiB, medians): peak RSS of the child; RSS after close "
      "minus RSS before open (all, and anonymous only); the program's code pages are "
      "faulted in before the pre-open RSS is taken; LMDB's peak counts the pages of its "
      "memory map it touched\n";
  struct Block {
    const char* title;
    double (*field)(const PhaseResult&);
  };
  const Block blocks[] = {
      {"peak RSS", [](const PhaseResult& p) { return static_cast<double>(p.rss_peak) / kMiB; }},
      {"RSS after close - before open",
       [](const PhaseResult& p) {
         return static_cast<double>(p.rss_after_close - p.rss_before_open) / kMiB;
       }},
      {"anon RSS after close - before open",
       [](const PhaseResult& p) {
         return static_cast<double>(p.anon_rss_after_close - p.anon_rss_before_open) / kMiB;
       }},
  };
  for (const Block& block : blocks) {
    out += "\n" + Pad(block.title, 36, false);
    for (int e = 0; e < kEngineCount; ++e) out += Pad(kEngineNames[e], 13, true);
    out += "\n";
    for (const WorkloadRuns& wr : run.workloads) {
      out += Pad(InfoOf(wr.workload).name, 36, false);
      for (int e = 0; e < kEngineCount; ++e) {
        std::vector<double> v;
        for (const RunRecord& r : wr.runs[e]) {
          if (r.ok) v.push_back(block.field(r.phase));
        }
        double m = Median(v);
        std::string cell = !run.built[e] ? "not built" : std::isnan(m) ? "-" : Printf("%.1f", m);
        out += Pad(cell, 13, true);
      }
      out += "\n";
    }
  }
  return out;
}

std::string FormatJson(const ComparisonRun& run) {
  std::string out = "{\n";
  const MachineInfo& m = run.machine;
  out += "  \"machine\": {\"cpus\": " + std::to_string(m.cpus) +
         ", \"cpu_model\": " + JsonString(m.cpu_model) + ", \"kernel\": " + JsonString(m.kernel) +
         ", \"memory_bytes\": " + JsonNumber(m.memory_bytes) + ", \"disk\": " + JsonString(m.disk) +
         "},\n";
  out += "  \"command\": " + JsonString(run.command) + ",\n";
  out += "  \"load_average\": {\"start\": " + JsonString(run.load_at_start) +
         ", \"end\": " + JsonString(run.load_at_end) + "},\n";
  auto engine_list = [&](bool ran) {
    std::string list = "[";
    for (int e = 0; e < kEngineCount; ++e) {
      if ((ran ? run.engines[e] : !run.built[e])) {
        if (list.size() > 1) list += ", ";
        list += JsonString(kEngineNames[e]);
      }
    }
    return list + "]";
  };
  out += "  \"engines\": " + engine_list(true) + ",\n";
  out += "  \"not_built\": " + engine_list(false) + ",\n";
  out += "  \"config\": {\"keys\": " + JsonNumber(run.config.keys) +
         ", \"reps\": " + std::to_string(run.reps) +
         ", \"seconds\": " + JsonNumber(run.config.seconds) +
         ", \"seed\": " + JsonNumber(run.config.seed) +
         ", \"key_bytes\": 16, \"value_bytes\": 100, \"cache_bytes\": " +
         JsonNumber(static_cast<int64_t>(Memory().cache_bytes)) +
         ", \"arenakv_memory_budget_bytes\": " +
         JsonNumber(static_cast<int64_t>(Memory().memory_budget_bytes)) +
         ", \"arenakv_map_reads\": " + (Memory().map_reads ? "true" : "false") + "},\n";
  out += "  \"workloads\": [\n";
  for (size_t i = 0; i < run.workloads.size(); ++i) {
    const WorkloadRuns& wr = run.workloads[i];
    const WorkloadInfo& info = InfoOf(wr.workload);
    out += "    {\"name\": " + JsonString(info.name) + ", \"unit\": " + JsonString(info.unit) +
           ", \"description\": " + JsonString(info.what) +
           ", \"target_ratio\": " + (info.target > 0 ? JsonNumber(info.target) : "null");
    for (int e = 0; e < kEngineCount; ++e) {
      if (!run.engines[e]) continue;
      out += ",\n      " + JsonString(kEngineNames[e]) +
             ": {\"median\": " + JsonNumber(MedianThroughput(wr, e)) + ", \"runs\": [";
      for (size_t r = 0; r < wr.runs[e].size(); ++r) {
        const RunRecord& rec = wr.runs[e][r];
        const PhaseResult& p = rec.phase;
        out += r == 0 ? "\n        " : ",\n        ";
        if (!rec.ok) {
          out += "{\"ok\": false, \"error\": " + JsonString(rec.error) + "}";
          continue;
        }
        out += "{\"ok\": true, \"ops\": " + JsonNumber(p.ops) +
               ", \"seconds\": " + JsonNumber(p.seconds) +
               ", \"ops_per_sec\": " + JsonNumber(Throughput(rec)) +
               ", \"not_found\": " + JsonNumber(p.not_found) +
               ", \"mismatches\": " + JsonNumber(p.mismatches) +
               ", \"conflicts\": " + JsonNumber(p.conflicts) +
               ", \"prep_seconds\": " + JsonNumber(p.prep_seconds) +
               ", \"open_seconds\": " + JsonNumber(p.open_seconds) +
               ", \"persist_seconds\": " + JsonNumber(p.persist_seconds) +
               ", \"close_seconds\": " + JsonNumber(p.close_seconds) +
               ", \"rss_before_open\": " + JsonNumber(p.rss_before_open) +
               ", \"rss_peak\": " + JsonNumber(p.rss_peak) +
               ", \"rss_after_close\": " + JsonNumber(p.rss_after_close) +
               ", \"anon_rss_before_open\": " + JsonNumber(p.anon_rss_before_open) +
               ", \"anon_rss_after_close\": " + JsonNumber(p.anon_rss_after_close) +
               ", \"peak_reset_at_open\": " + (p.peak_reset ? "true" : "false");
        if (info.fills) {
          out += ", \"disk_allocated_bytes\": " + JsonNumber(rec.disk.allocated_bytes) +
                 ", \"disk_apparent_bytes\": " + JsonNumber(rec.disk.apparent_bytes) +
                 ", \"disk_files\": " + JsonNumber(rec.disk.files);
        }
        out += "}";
      }
      out += "]}";
    }
    out += i + 1 < run.workloads.size() ? "},\n" : "}\n";
  }
  out += "  ],\n  \"summary\": [\n";
  std::vector<SummaryRow> rows = Summarize(run);
  for (size_t i = 0; i < rows.size(); ++i) {
    const SummaryRow& row = rows[i];
    out += "    {\"label\": " + JsonString(row.label) + ", \"unit\": " + JsonString(row.unit);
    for (int e = 0; e < kEngineCount; ++e) {
      out += ", " + JsonString(kEngineNames[e]) + ": " + JsonNumber(row.value[e]);
    }
    out += ", \"ratio\": " + JsonNumber(row.ratio) +
           ", \"ratio_vs_best_anchor\": " + JsonNumber(row.ratio_best) + ", \"best_anchor\": " +
           (row.best_anchor < 0 ? "null" : JsonString(kEngineNames[row.best_anchor])) +
           ", \"target\": " + JsonString(row.target) + ", \"met\": " +
           (row.met == 1   ? "true"
            : row.met == 0 ? "false"
                           : "null") +
           ", \"note\": " + JsonString(row.note) + "}" + (i + 1 < rows.size() ? ",\n" : "\n");
  }
  out += "  ]\n}\n";
  return out;
}

std::string FormatSvg(const ComparisonRun& run) {
  // Two panels. The first: per row two diverging bars on a log2 axis
  // centred on parity (1x), arenakv / RocksDB (green: target met; red:
  // missed; grey: no target; a black tick marks the target) and arenakv /
  // the best anchor (in that anchor's colour, named). Bars to the right mean
  // arenakv is faster (or, for sizes, larger), to the left slower. The
  // second: every engine's median throughput per workload, on a linear scale
  // per workload (the longest bar is the fastest engine).
  std::vector<SummaryRow> all = Summarize(run);
  std::vector<SummaryRow> rows;
  for (const SummaryRow& row : all) {
    if (!std::isnan(row.ratio) || !std::isnan(row.ratio_best)) rows.push_back(row);
  }
  double lo = 0.25, hi = 8;
  for (const SummaryRow& row : rows) {
    for (double r : {row.ratio, row.ratio_best}) {
      if (std::isnan(r) || r <= 0) continue;
      lo = std::min(lo, r / 1.5);
      hi = std::max(hi, r * 1.5);
    }
  }
  double log_lo = std::floor(std::log2(lo)), log_hi = std::ceil(std::log2(hi));
  const int label_w = 260, plot_w = 520, row_h = 34, top = 50, right_pad = 150;
  int ran = 0;
  for (int e = 0; e < kEngineCount; ++e) ran += run.engines[e] ? 1 : 0;
  const int bar_h = 13;
  std::vector<const SummaryRow*> throughput_rows;
  for (const SummaryRow& row : all) {
    if (row.throughput) throughput_rows.push_back(&row);
  }
  const int block_h = bar_h * ran + 14;
  const int panel1_h = top + row_h * static_cast<int>(rows.size()) + 50;
  const int top2 = panel1_h + 50;
  const int height = top2 + block_h * static_cast<int>(throughput_rows.size()) + 40;
  const int width = label_w + plot_w + right_pad;
  auto x_of = [&](double ratio) {
    double t = (std::log2(ratio) - log_lo) / (log_hi - log_lo);
    return label_w + t * plot_w;
  };
  std::string out;
  char buf[768];
  std::snprintf(buf, sizeof(buf),
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
                "font-family=\"sans-serif\" font-size=\"12\">\n"
                "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                width, height);
  out += buf;
  std::snprintf(buf, sizeof(buf),
                "<text x=\"%d\" y=\"22\" font-size=\"15\" font-weight=\"bold\">arenakv / RocksDB "
                "and arenakv / best anchor (medians of %d reps, %s keys)</text>\n",
                label_w - 200, run.reps, Grouped(static_cast<double>(run.config.keys)).c_str());
  out += buf;
  for (double e = log_lo; e <= log_hi; e += 1) {
    double x = x_of(std::exp2(e));
    std::snprintf(buf, sizeof(buf),
                  "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"%s\"/>\n"
                  "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%gx</text>\n",
                  x, top - 8, x, panel1_h - 40, e == 0 ? "black" : "#dddddd", x, panel1_h - 24,
                  std::exp2(e));
    out += buf;
  }
  double x1 = x_of(1.0);
  auto bar = [&](double ratio, int y, const char* color, const std::string& suffix) {
    if (std::isnan(ratio) || ratio <= 0) return;
    double xr = x_of(ratio);
    std::snprintf(buf, sizeof(buf),
                  "<rect x=\"%.1f\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n"
                  "<text x=\"%.1f\" y=\"%d\" font-size=\"11\">%.2fx%s</text>\n",
                  std::min(x1, xr), y, std::max(1.0, std::abs(xr - x1)), bar_h, color,
                  std::max(x1, xr) + 4, y + bar_h - 2, ratio, XmlEscape(suffix).c_str());
    out += buf;
  };
  for (size_t i = 0; i < rows.size(); ++i) {
    const SummaryRow& row = rows[i];
    int y = top + row_h * static_cast<int>(i);
    std::snprintf(buf, sizeof(buf), "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">%s</text>\n",
                  label_w - 8, y + 20, XmlEscape(row.label).c_str());
    out += buf;
    const char* color = row.met == 1 ? "#3a9d4a" : row.met == 0 ? "#d0453a" : "#8a8a8a";
    bar(row.ratio, y + 3, color, " vs rocksdb");
    if (row.best_anchor >= 0) {
      bar(row.ratio_best, y + 4 + bar_h, kEngineColors[row.best_anchor],
          std::string(" vs best: ") + kEngineNames[row.best_anchor]);
    }
    double target = 0;
    if (!std::isnan(row.ratio) && (std::sscanf(row.target.c_str(), ">= %lfx", &target) == 1 ||
                                   std::sscanf(row.target.c_str(), "<= %lfx", &target) == 1)) {
      double xt = x_of(target);
      std::snprintf(buf, sizeof(buf),
                    "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"black\" "
                    "stroke-width=\"2\"/>\n",
                    xt, y + 2, xt, y + 4 + bar_h);
      out += buf;
    }
  }
  std::snprintf(buf, sizeof(buf),
                "<text x=\"%d\" y=\"%d\" fill=\"#555555\">upper bar arenakv/rocksdb, lower bar "
                "arenakv/best anchor; log scale; black tick = design target</text>\n",
                label_w, panel1_h - 6);
  out += buf;

  // Panel 2: every engine's median.
  std::snprintf(buf, sizeof(buf),
                "<text x=\"%d\" y=\"%d\" font-size=\"15\" font-weight=\"bold\">median throughput "
                "of every engine (linear, per workload)</text>\n",
                label_w - 200, top2 - 20);
  out += buf;
  int lx = label_w;
  for (int e = 0; e < kEngineCount; ++e) {
    if (!run.engines[e]) continue;
    std::snprintf(buf, sizeof(buf),
                  "<rect x=\"%d\" y=\"%d\" width=\"10\" height=\"10\" fill=\"%s\"/>\n"
                  "<text x=\"%d\" y=\"%d\">%s</text>\n",
                  lx, top2 - 12, kEngineColors[e], lx + 14, top2 - 3, kEngineNames[e]);
    out += buf;
    lx += 100;
  }
  for (size_t i = 0; i < throughput_rows.size(); ++i) {
    const SummaryRow& row = *throughput_rows[i];
    int y = top2 + 8 + block_h * static_cast<int>(i);
    double best = 0;
    for (int e = 0; e < kEngineCount; ++e) {
      if (!std::isnan(row.value[e])) best = std::max(best, row.value[e]);
    }
    std::snprintf(buf, sizeof(buf),
                  "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-weight=\"bold\">%s</text>\n",
                  label_w - 90, y + bar_h, XmlEscape(row.label).c_str());
    out += buf;
    int k = 0;
    for (int e = 0; e < kEngineCount; ++e) {
      if (!run.engines[e]) continue;
      int yb = y + bar_h * k++;
      double w = best > 0 && !std::isnan(row.value[e]) ? row.value[e] / best * plot_w : 0;
      std::snprintf(buf, sizeof(buf),
                    "<text x=\"%d\" y=\"%d\" text-anchor=\"end\" font-size=\"10\">%s</text>\n"
                    "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" fill=\"%s\"/>\n"
                    "<text x=\"%.1f\" y=\"%d\" font-size=\"10\">%s %s</text>\n",
                    label_w - 6, yb + bar_h - 3, kEngineNames[e], label_w, yb + 1, std::max(1.0, w),
                    bar_h - 2, kEngineColors[e], label_w + w + 4, yb + bar_h - 3,
                    Grouped(row.value[e]).c_str(), XmlEscape(row.unit).c_str());
      out += buf;
    }
  }
  out += "</svg>\n";
  return out;
}

}  // namespace arenakv::compare
